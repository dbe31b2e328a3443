"""Open Inference Protocol (KServe v2) messages for a text classifier, in the protocol's JSON form.

Input: one BYTES tensor `text`, shape [N] or [N, 1], its data N UTF-8 strings (flat, or nested as [[s], ...]).
Outputs: `label` (BYTES, [N]) and `probabilities` (FP32, [N, classes]); a request's `outputs` picks some.
Every error is a `ProtocolError` with the HTTP status to answer and a message saying what to fix.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelplane.workloads.serving.server.classifier import Prediction

PLATFORM = "pytorch"
MODEL_VERSION = "1"
INPUT_NAME = "text"
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"
OUTPUT_NAMES = (LABEL_OUTPUT, PROBABILITIES_OUTPUT)
BINARY_DATA_HEADER = "inference-header-content-length"
BINARY_DATA_UNSUPPORTED = (
    "binary tensor data is not supported: send the texts as JSON strings "
    "(tritonclient: InferInput.set_data_from_numpy(array, binary_data=False))"
)


class ProtocolError(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class InferRequest:
    texts: list[str]
    outputs: tuple[str, ...]
    """Names of the outputs to return, in the order to return them."""
    id: str | None = None


def parse_infer_request(body: bytes, max_texts: int, max_text_chars: int) -> InferRequest:
    try:
        message = json.loads(body)
    except (ValueError, RecursionError) as error:  # RecursionError: absurdly deep nesting
        raise ProtocolError(f"request body is not valid JSON: {error}") from None
    if not isinstance(message, dict):
        raise ProtocolError("request body must be a JSON object with an 'inputs' list")
    request_id = message.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError(f"id={request_id!r}: must be a string")
    inputs = message.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise ProtocolError(f"'inputs' must be a list of exactly one tensor, {INPUT_NAME!r}; got {_describe(inputs)}")
    texts = _parse_text_tensor(inputs[0], max_texts, max_text_chars)
    return InferRequest(texts, _parse_outputs(message.get("outputs")), request_id)


def _describe(value: object) -> str:
    return f"a list of {len(value)}" if isinstance(value, list) else type(value).__name__


def _parse_text_tensor(tensor: object, max_texts: int, max_text_chars: int) -> list[str]:
    if not isinstance(tensor, dict):
        raise ProtocolError(f"inputs[0] must be a tensor object, not {type(tensor).__name__}")
    name, datatype, shape, data = (tensor.get(key) for key in ("name", "datatype", "shape", "data"))
    if name != INPUT_NAME:
        raise ProtocolError(f"inputs[0].name={name!r}: this model's input is {INPUT_NAME!r}")
    if isinstance(tensor.get("parameters"), dict) and "binary_data_size" in tensor["parameters"]:
        raise ProtocolError(BINARY_DATA_UNSUPPORTED)
    if datatype != "BYTES":
        raise ProtocolError(f"inputs[0].datatype={datatype!r}: must be 'BYTES' (UTF-8 strings)")
    if (
        not isinstance(shape, list)
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
        or len(shape) not in (1, 2)
        or (len(shape) == 2 and shape[1] != 1)
    ):
        raise ProtocolError(f"inputs[0].shape={shape!r}: must be [N] or [N, 1] for N texts")
    count = shape[0]
    if count < 1:
        raise ProtocolError(f"inputs[0].shape={shape}: send at least one text")
    if count > max_texts:
        raise ProtocolError(f"inputs[0].shape={shape}: at most {max_texts} texts per request; split the request")
    if not isinstance(data, list):
        raise ProtocolError(f"inputs[0].data must be a list of {count} strings, not {type(data).__name__}")
    # The protocol allows [N, 1] data nested row by row as well as flat.
    flat = [row[0] if isinstance(row, list) and len(row) == 1 else row for row in data]
    if len(flat) != count:
        raise ProtocolError(f"inputs[0].data holds {len(flat)} texts but inputs[0].shape={shape} says {count}")
    for index, text in enumerate(flat):
        if not isinstance(text, str):
            raise ProtocolError(f"inputs[0].data[{index}] is {type(text).__name__}: must be a string")
        if len(text) > max_text_chars:
            raise ProtocolError(f"inputs[0].data[{index}] has {len(text)} characters: at most {max_text_chars}")
    return flat


def _parse_outputs(requested: object) -> tuple[str, ...]:
    if requested is None:
        return OUTPUT_NAMES
    if not isinstance(requested, list):
        raise ProtocolError(f"'outputs' must be a list of {{'name': ...}} objects, not {type(requested).__name__}")
    names: list[str] = []
    for index, output in enumerate(requested):
        name = output.get("name") if isinstance(output, dict) else None
        if name not in OUTPUT_NAMES:
            raise ProtocolError(f"outputs[{index}].name={name!r}: this model's outputs are {', '.join(OUTPUT_NAMES)}")
        if name not in names:
            names.append(name)
    # An empty list asks for nothing in particular, which the protocol answers with every output.
    return tuple(names) or OUTPUT_NAMES


def infer_response(model_name: str, request: InferRequest, predictions: Sequence[Prediction]) -> dict[str, Any]:
    """Outputs in the protocol's JSON form (the binary extension is optional, so clients asking for it get JSON)."""
    count, classes = len(predictions), len(predictions[0].probabilities)
    tensors = {
        LABEL_OUTPUT: {"datatype": "BYTES", "shape": [count], "data": [p.label for p in predictions]},
        PROBABILITIES_OUTPUT: {
            "datatype": "FP32",
            "shape": [count, classes],
            "data": [value for p in predictions for value in p.probabilities],
        },
    }
    response: dict[str, Any] = {
        "model_name": model_name,
        "model_version": MODEL_VERSION,
        "outputs": [{"name": name, **tensors[name]} for name in request.outputs],
    }
    if request.id is not None:
        response["id"] = request.id
    return response


def model_metadata(model_name: str, labels: Sequence[str]) -> dict[str, Any]:
    return {
        "name": model_name,
        "versions": [MODEL_VERSION],
        "platform": PLATFORM,
        "inputs": [{"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": LABEL_OUTPUT, "datatype": "BYTES", "shape": [-1]},
            {"name": PROBABILITIES_OUTPUT, "datatype": "FP32", "shape": [-1, len(labels)]},
        ],
    }


def server_metadata(version: str) -> dict[str, Any]:
    return {"name": "modelplane", "version": version, "extensions": []}


def error_body(message: str) -> dict[str, str]:
    return {"error": message}
