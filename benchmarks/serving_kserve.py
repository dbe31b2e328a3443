"""The peer for `benchmarks.serving`: KServe's Python `ModelServer` serving the same export, written as KServe's
examples write a custom model (a synchronous `predict`, no batching: KServe batches in a separate agent).

KServe listens on 0.0.0.0 and logs every request, twice; here it listens on 127.0.0.1 only, without the access log,
as the other contenders do. It reads texts sent as JSON or in the binary tensor extension, and answers in binary
when asked, as KServe's own data plane allows. It runs in the venv `make kserve-venv` builds.

    build/kserve-venv/bin/python -m benchmarks.serving_kserve --model-dir DIR --port PORT
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import kserve
import kserve.protocol.rest.server as kserve_rest
import numpy as np
import torch
import uvicorn
from kserve import InferOutput, InferRequest, InferResponse

from modelplane.workloads.model_artifact import load_model


class Classifier(kserve.Model):
    def __init__(self, name: str, model_dir: Path):
        super().__init__(name)
        self.model_dir = model_dir
        self.load()

    def load(self) -> bool:
        self.model, self.tokenizer, self.manifest = load_model(self.model_dir)
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        texts = [t.decode() if isinstance(t, bytes) else str(t) for t in payload.inputs[0].as_numpy().reshape(-1)]
        inputs = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.manifest.max_length, return_tensors="pt"
        )
        with torch.no_grad():
            probabilities = torch.softmax(self.model(**inputs).logits, dim=-1)
        labels = [self.manifest.labels[i] for i in probabilities.argmax(dim=-1).tolist()]
        binary = payload.use_binary_outputs
        label = InferOutput("label", [len(texts)], "BYTES")
        label.set_data_from_numpy(np.array(labels, dtype=np.object_), binary_data=binary)
        scores = InferOutput("probabilities", list(probabilities.shape), "FP32")
        scores.set_data_from_numpy(probabilities.numpy(), binary_data=binary)
        return InferResponse(
            payload.id or "",
            self.name,
            [label, scores],
            use_binary_outputs=binary,
            requested_outputs=payload.request_outputs,
        )


UVICORN_CONFIG = uvicorn.Config


def local_only_config(*args: Any, **kwargs: Any) -> uvicorn.Config:
    return UVICORN_CONFIG(*args, **{**kwargs, "host": "127.0.0.1", "access_log": False})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args, _ = parser.parse_known_args()
    kserve_rest.uvicorn.Config = local_only_config
    server = kserve.ModelServer(http_port=args.port, enable_grpc=False, enable_latency_logging=False)
    for logger in ("uvicorn.access", "kserve.trace"):  # one line per request otherwise (set after kserve's setup)
        logging.getLogger(logger).setLevel(logging.WARNING)
    server.start([Classifier("model", args.model_dir)])


if __name__ == "__main__":
    main()
