"""The naive baseline for `benchmarks.serving`: FastAPI + uvicorn, one forward pass per request, as tutorials write it.

It answers the same Open-Inference-shaped JSON as modelplane's server, on the same export, with no batching:
the handler is `async def` and runs the model on the event loop, so requests run one at a time on the same
torch threads as every other contender (a `def` handler would run several forward passes at once in threads).

    .venv/bin/python -m benchmarks.serving_naive --model-dir DIR [--port 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from modelplane.workloads.model_artifact import load_model


class InputTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    data: list[str]


class InferRequest(BaseModel):
    inputs: list[InputTensor]


def build_app(model_dir: Path) -> FastAPI:
    model, tokenizer, manifest = load_model(model_dir)
    app = FastAPI()

    @app.post("/v2/models/{model_name}/infer")
    async def infer(model_name: str, request: InferRequest) -> dict:
        texts = request.inputs[0].data
        inputs = tokenizer(texts, padding=True, truncation=True, max_length=manifest.max_length, return_tensors="pt")
        with torch.no_grad():
            probabilities = torch.softmax(model(**inputs).logits, dim=-1)
        return {
            "model_name": model_name,
            "outputs": [
                {
                    "name": "label",
                    "datatype": "BYTES",
                    "shape": [len(texts)],
                    "data": [manifest.labels[i] for i in probabilities.argmax(dim=-1).tolist()],
                },
                {
                    "name": "probabilities",
                    "datatype": "FP32",
                    "shape": list(probabilities.shape),
                    "data": probabilities.flatten().tolist(),
                },
            ],
        }

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free one (logged at start)")
    args = parser.parse_args()
    uvicorn.run(build_app(args.model_dir), host="127.0.0.1", port=args.port, log_level="info", access_log=False)


if __name__ == "__main__":
    main()
