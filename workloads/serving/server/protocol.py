"""Open Inference Protocol (KServe v2) messages for a text classifier: JSON, and the binary tensor extension.

Input: one BYTES tensor `text` of shape [N] or [N, 1] holding N texts, either as JSON strings (flat, or for
[N, 1] nested as [[s], ...]) or in the binary extension: the body starts with the JSON header, whose size the
`Inference-Header-Content-Length` header gives, and the tensor's `parameters.binary_data_size` bytes follow it,
each text a 4-byte little-endian length and then its UTF-8 bytes (what tritonclient sends by default).
Outputs: `label` (BYTES, the input's shape) and `probabilities` (FP32, [N, classes]); a request's `outputs`
picks some. Each output comes as JSON data, or in binary when its `parameters.binary_data` (or the request's
`parameters.binary_data_output`) asks for it.
Every text is checked here, before it can join a batch: one bad text must fail only its own request.
Every error is a `ProtocolError` with the HTTP status to answer and a message saying what to fix.
"""

from __future__ import annotations

import json
import re
import struct
import unicodedata
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
BINARY_HEADER_LENGTH = "inference-header-content-length"
"""Request and response header: the size of the JSON header in a body that carries binary tensor data."""
EXTENSIONS = ("binary_tensor_data",)
_LENGTH_PREFIX = struct.Struct("<I")
_DECIMAL = re.compile(r"^[0-9]{1,18}$")
_SURROGATE = re.compile("[\ud800-\udfff]")
"""JSON's \\ud800 escapes decode to lone surrogates: valid JSON, but no UTF-8 can hold them (tokenizers fail)."""
_CONTENT_CATEGORIES = frozenset("LNPS")
"""Unicode categories that carry meaning: letters, numbers, punctuation, symbols. A text with none of them
(whitespace, control or format characters only) tokenizes to nothing, and the model would still answer."""
_UNSUPPORTED_TENSOR_PARAMETERS = ("shared_memory_region", "shared_memory_byte_size", "shared_memory_offset")


class ProtocolError(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool
    """Whether to send it in the binary extension instead of as JSON data."""


@dataclass(frozen=True)
class InferRequest:
    texts: list[str]
    shape: tuple[int, ...]
    """The input's shape, [N] or [N, 1]: the `label` output has the same."""
    outputs: tuple[RequestedOutput, ...]
    """The outputs to return, in the order to return them."""
    id: str | None = None
    timeout_seconds: float | None = None
    """The client's deadline from `parameters.timeout` (Triton's, given in microseconds), if it set one."""


@dataclass(frozen=True)
class TextLimits:
    max_texts: int
    max_text_chars: int


@dataclass(frozen=True)
class EncodedResponse:
    body: bytes
    binary_header_length: int | None
    """The JSON header's size when binary tensor data follows it (sent as `Inference-Header-Content-Length`)."""


def parse_infer_request(body: bytes, binary_header_length: str | None, limits: TextLimits) -> InferRequest:
    """The request in `body`; `binary_header_length` is the `Inference-Header-Content-Length` header, if sent."""
    header, binary = _split_body(body, binary_header_length)
    try:
        message = json.loads(header)
    except (ValueError, RecursionError) as error:  # RecursionError: absurdly deep nesting
        raise ProtocolError(f"request body is not valid JSON: {error}") from None
    if not isinstance(message, dict):
        raise ProtocolError("request body must be a JSON object with an 'inputs' list")
    request_id = message.get("id")
    if request_id is not None:
        request_id = _checked_string(request_id, "id")
    binary_output, timeout_seconds = _parse_parameters(message.get("parameters"))
    inputs = message.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise ProtocolError(f"'inputs' must be a list of exactly one tensor, {INPUT_NAME!r}; got {_describe(inputs)}")
    texts, shape = _parse_text_tensor(inputs[0], binary, limits)
    outputs = _parse_outputs(message.get("outputs"), binary_output)
    return InferRequest(texts, shape, outputs, request_id, timeout_seconds)


def _split_body(body: bytes, binary_header_length: str | None) -> tuple[bytes, memoryview]:
    """The JSON header and the binary data after it (empty without the binary extension)."""
    if binary_header_length is None:
        return body, memoryview(b"")
    if not _DECIMAL.match(binary_header_length) or not 0 < int(binary_header_length) <= len(body):
        raise ProtocolError(
            f"Inference-Header-Content-Length={binary_header_length!r}: must be the size in bytes of the JSON "
            f"header that starts the body, 1 to {len(body)}"
        )
    size = int(binary_header_length)
    return body[:size], memoryview(body)[size:]


def _describe(value: object) -> str:
    return f"a list of {len(value)}" if isinstance(value, list) else type(value).__name__


def _checked_string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"{where}={value!r}: must be a string")
    if _SURROGATE.search(value):
        raise ProtocolError(f"{where}={value!r}: holds a lone surrogate (\\ud800-\\udfff), which no UTF-8 can encode")
    return value


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_parameters(parameters: object) -> tuple[bool, float | None]:
    """The request's `binary_data_output` and `timeout` (microseconds, as seconds); other parameters are
    extensions this model has no use for, and are ignored as the protocol allows."""
    if parameters is None:
        return False, None
    if not isinstance(parameters, dict):
        raise ProtocolError(f"'parameters' must be an object, not {type(parameters).__name__}")
    binary_output = parameters.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise ProtocolError(f"parameters.binary_data_output={binary_output!r}: must be true or false")
    timeout = parameters.get("timeout")
    if timeout is not None and (not _is_integer(timeout) or timeout < 1):
        raise ProtocolError(f"parameters.timeout={timeout!r}: must be a whole number of microseconds above 0")
    return binary_output, None if timeout is None else timeout / 1_000_000


def _parse_text_tensor(tensor: object, binary: memoryview, limits: TextLimits) -> tuple[list[str], tuple[int, ...]]:
    if not isinstance(tensor, dict):
        raise ProtocolError(f"inputs[0] must be a tensor object, not {type(tensor).__name__}")
    name, datatype, shape, data = (tensor.get(key) for key in ("name", "datatype", "shape", "data"))
    if name != INPUT_NAME:
        raise ProtocolError(f"inputs[0].name={name!r}: this model's input is {INPUT_NAME!r}")
    if datatype != "BYTES":
        raise ProtocolError(f"inputs[0].datatype={datatype!r}: must be 'BYTES' (UTF-8 strings)")
    if (
        not isinstance(shape, list)
        or not all(_is_integer(d) for d in shape)
        or len(shape) not in (1, 2)
        or (len(shape) == 2 and shape[1] != 1)
    ):
        raise ProtocolError(f"inputs[0].shape={shape!r}: must be [N] or [N, 1] for N texts")
    count = shape[0]
    if count < 1:
        raise ProtocolError(f"inputs[0].shape={shape}: send at least one text")
    if count > limits.max_texts:
        raise ProtocolError(f"inputs[0].shape={shape}: at most {limits.max_texts} texts per request; split the request")
    binary_size = _binary_data_size(tensor.get("parameters"))
    if binary_size is None:
        if len(binary):
            raise ProtocolError(
                f"the body holds {len(binary)} bytes after its JSON header, but inputs[0] declares no "
                "parameters.binary_data_size"
            )
        texts = _json_texts(data, shape)
    else:
        if data is not None:
            raise ProtocolError("inputs[0] has both 'data' and parameters.binary_data_size: send the texts once")
        if binary_size != len(binary):
            raise ProtocolError(
                f"inputs[0].parameters.binary_data_size={binary_size}, but the body holds {len(binary)} bytes "
                "after its JSON header (Inference-Header-Content-Length)"
            )
        texts = _binary_texts(binary, count)
    for index, text in enumerate(texts):
        _check_text(index, text, limits.max_text_chars)
    return texts, tuple(shape)


def _binary_data_size(parameters: object) -> int | None:
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise ProtocolError(f"inputs[0].parameters must be an object, not {type(parameters).__name__}")
    for unsupported in _UNSUPPORTED_TENSOR_PARAMETERS:
        if unsupported in parameters:
            raise ProtocolError(f"inputs[0].parameters.{unsupported}: shared memory is not supported; send the data")
    size = parameters.get("binary_data_size")
    if size is not None and (not _is_integer(size) or size < 0):
        raise ProtocolError(f"inputs[0].parameters.binary_data_size={size!r}: must be a whole number of bytes")
    return size


def _json_texts(data: object, shape: list[int]) -> list[str]:
    """The texts of JSON tensor data, flat or (for [N, 1] only) nested row by row, as the protocol allows."""
    count = shape[0]
    if not isinstance(data, list):
        raise ProtocolError(f"inputs[0].data must be a list of {count} strings, not {type(data).__name__}")
    if len(data) != count:
        raise ProtocolError(f"inputs[0].data holds {len(data)} texts but inputs[0].shape={shape} says {count}")
    nested = len(shape) == 2 and isinstance(data[0], list)
    texts: list[str] = []
    for index, row in enumerate(data):
        if nested:
            if not isinstance(row, list) or len(row) != 1:
                raise ProtocolError(
                    f"inputs[0].data[{index}] must be a list of one string, as data[0] is (shape {shape})"
                )
            row = row[0]
            where = f"inputs[0].data[{index}][0]"
        else:
            where = f"inputs[0].data[{index}]"
        if not isinstance(row, str):
            expected = "a string" if len(shape) == 2 else f"a string: shape {shape} holds no nested lists"
            raise ProtocolError(f"{where} is {type(row).__name__}: must be {expected}")
        texts.append(row)
    return texts


def _binary_texts(data: memoryview, count: int) -> list[str]:
    """`count` length-prefixed UTF-8 strings that fill `data` exactly."""
    texts: list[str] = []
    offset = 0
    for index in range(count):
        if offset + _LENGTH_PREFIX.size > len(data):
            raise ProtocolError(
                f"inputs[0] binary data ends after {index} texts; its shape says {count} (each text is a 4-byte "
                "little-endian length, then its bytes)"
            )
        (length,) = _LENGTH_PREFIX.unpack_from(data, offset)
        offset += _LENGTH_PREFIX.size
        if offset + length > len(data):
            raise ProtocolError(
                f"inputs[0] binary text {index} claims {length} bytes; only {len(data) - offset} remain"
            )
        try:
            texts.append(str(data[offset : offset + length], "utf-8"))
        except UnicodeDecodeError as error:
            raise ProtocolError(f"inputs[0] binary text {index} is not valid UTF-8: {error.reason}") from None
        offset += length
    if offset != len(data):
        raise ProtocolError(f"inputs[0] binary data holds {len(data) - offset} bytes after its {count} texts")
    return texts


def _check_text(index: int, text: str, max_text_chars: int) -> None:
    if len(text) > max_text_chars:
        raise ProtocolError(f"inputs[0].data[{index}] has {len(text)} characters: at most {max_text_chars}")
    if _SURROGATE.search(text):
        raise ProtocolError(
            f"inputs[0].data[{index}] holds a lone surrogate (\\ud800-\\udfff), which is not text: encode the "
            "characters themselves, or a surrogate pair for one beyond U+FFFF"
        )
    if not any(unicodedata.category(char)[0] in _CONTENT_CATEGORIES for char in text):
        raise ProtocolError(
            f"inputs[0].data[{index}] is blank (only whitespace, control or format characters): send text to classify"
        )


def _parse_outputs(requested: object, binary_default: bool) -> tuple[RequestedOutput, ...]:
    every = tuple(RequestedOutput(name, binary_default) for name in OUTPUT_NAMES)
    if requested is None:
        return every
    if not isinstance(requested, list):
        raise ProtocolError(f"'outputs' must be a list of {{'name': ...}} objects, not {type(requested).__name__}")
    outputs: dict[str, RequestedOutput] = {}
    for index, output in enumerate(requested):
        name = output.get("name") if isinstance(output, dict) else None
        if name not in OUTPUT_NAMES:
            raise ProtocolError(f"outputs[{index}].name={name!r}: this model's outputs are {', '.join(OUTPUT_NAMES)}")
        binary = _output_binary(index, output.get("parameters"), binary_default)
        outputs.setdefault(name, RequestedOutput(name, binary))
    # An empty list asks for nothing in particular, which the protocol answers with every output.
    return tuple(outputs.values()) or every


def _output_binary(index: int, parameters: object, binary_default: bool) -> bool:
    if parameters is None:
        return binary_default
    if not isinstance(parameters, dict):
        raise ProtocolError(f"outputs[{index}].parameters must be an object, not {type(parameters).__name__}")
    for unsupported in (*_UNSUPPORTED_TENSOR_PARAMETERS, "classification"):
        if unsupported in parameters:
            raise ProtocolError(f"outputs[{index}].parameters.{unsupported} is not supported by this server")
    binary = parameters.get("binary_data", binary_default)
    if not isinstance(binary, bool):
        raise ProtocolError(f"outputs[{index}].parameters.binary_data={binary!r}: must be true or false")
    return binary


def _bytes_tensor(values: Sequence[str]) -> bytes:
    return b"".join(_LENGTH_PREFIX.pack(len(raw)) + raw for raw in (value.encode() for value in values))


def infer_response(model_name: str, request: InferRequest, predictions: Sequence[Prediction]) -> EncodedResponse:
    """The outputs `request` asked for, as JSON data or, where asked, binary data after the JSON header."""
    count, classes = len(predictions), len(predictions[0].probabilities)
    labels = [p.label for p in predictions]
    probabilities = [value for p in predictions for value in p.probabilities]
    tensors: dict[str, tuple[str, list[int], list[Any]]] = {
        LABEL_OUTPUT: ("BYTES", list(request.shape), labels),
        PROBABILITIES_OUTPUT: ("FP32", [count, classes], probabilities),
    }
    outputs: list[dict[str, Any]] = []
    binary_parts: list[bytes] = []
    for output in request.outputs:
        datatype, shape, data = tensors[output.name]
        tensor: dict[str, Any] = {"name": output.name, "datatype": datatype, "shape": shape}
        if output.binary:
            raw = _bytes_tensor(data) if datatype == "BYTES" else struct.pack(f"<{len(data)}f", *data)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            binary_parts.append(raw)
        else:
            tensor["data"] = data
        outputs.append(tensor)
    response: dict[str, Any] = {"model_name": model_name, "model_version": MODEL_VERSION, "outputs": outputs}
    if request.id is not None:
        response["id"] = request.id
    header = encode_json(response)
    if not binary_parts:
        return EncodedResponse(header, None)
    return EncodedResponse(header + b"".join(binary_parts), len(header))


def encode_json(message: object) -> bytes:
    """ASCII JSON: nothing a client sent can make it unencodable, and NaN is refused rather than sent."""
    return json.dumps(message, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


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
    return {"name": "modelplane", "version": version, "extensions": list(EXTENSIONS)}


def error_body(message: str) -> dict[str, str]:
    return {"error": message}
