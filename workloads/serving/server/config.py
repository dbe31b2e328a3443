"""The server's settings: each one a CLI option `--some-name` or, when the option is absent, `MODELPLANE_SOME_NAME`."""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from modelplane.terms.log_lines import LogFormat
from modelplane.workloads.storage import is_s3, parse_s3

ENV_PREFIX = "MODELPLANE_"
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
RUNTIMES = ("torchscript", "eager")
"""How the model's forward pass runs: traced for TorchScript (see `traced`) or Hugging Face's eager module."""
MAX_TIMEOUT_SECONDS = 3600


def _setting(default: Any, help: str) -> Any:
    """A field with its help text (typed Any, as `dataclasses.field` is, so the annotation rules)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class ServerConfig:
    """One process serving one model; scale out with replicas, not workers (each worker would hold a model copy).

    On CPUs, OMP_NUM_THREADS sizes torch's thread pool: set it to the container's CPU limit, since torch
    otherwise takes one thread per core of the node.
    """

    model_uri: str = field(metadata={"help": "The exported model: a local directory or an s3://bucket/prefix."})
    model_name: str = _setting("model", "The name clients address: /v2/models/<name>.")
    model_cache_dir: str = _setting(
        os.path.join(tempfile.gettempdir(), "modelplane-models"), "Where an s3:// model is downloaded to."
    )
    host: str = _setting("127.0.0.1", "Address to listen on; 0.0.0.0 in a container.")
    port: int = _setting(8080, "Port to listen on; 0 picks a free one (logged at start).")
    device: str = _setting("auto", "auto (cuda when available), cpu, cuda or cuda:N.")
    model_runtime: str = _setting(
        "torchscript",
        "torchscript (traced at load and checked against the eager model, which it falls back to) or eager.",
    )
    max_batch_size: int = _setting(32, "Most texts run through the model at once; also the most per request.")
    max_queue_size: int = _setting(
        256, "Texts allowed to wait for the model; beyond it (or beyond what a shutdown can finish), 503 at once."
    )
    max_text_chars: int = _setting(4096, "Longest text accepted, in characters.")
    max_body_bytes: int = _setting(1024 * 1024, "Largest request body accepted, in bytes.")
    header_timeout_seconds: float = _setting(5.0, "Longest a connection may take to send a request's headers.")
    body_timeout_seconds: float = _setting(10.0, "Longest a request may take to send its body (then 408).")
    request_timeout_seconds: float = _setting(
        10.0,
        "Deadline of a request from its arrival, unless the client sets a shorter one; queued work past it is "
        "dropped (504).",
    )
    shutdown_timeout_seconds: int = _setting(
        25,
        "After SIGTERM, how long accepted requests may take to finish; keep it below the pod's grace period. "
        "The queue takes no more than the model can finish in half this time.",
    )
    model_poll_seconds: float = _setting(
        30.0, "While the model is not there yet (not trained or seeded), how often to look again."
    )
    log_level: str = _setting("info", f"One of {', '.join(LOG_LEVELS)}.")
    access_log: bool = _setting(True, "Log one line per request (with its id, status and duration): true or false.")
    log_format: str = _setting(
        LogFormat.JSON.value, "json (one object per line, what the cluster's log shipper parses) or text."
    )

    def __post_init__(self) -> None:
        if not self.model_uri:
            raise ValueError("model_uri='': set --model-uri or MODELPLANE_MODEL_URI to a directory or s3:// prefix")
        if is_s3(self.model_uri):
            parse_s3(self.model_uri)
        if not MODEL_NAME.match(self.model_name):
            raise ValueError(f"model_name={self.model_name!r}: use 1-64 letters, digits, '.', '_' or '-'")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port={self.port}: must be 0-65535")
        if not DEVICE.match(self.device):
            raise ValueError(f"device={self.device!r}: must be auto, cpu, cuda or cuda:N")
        if self.model_runtime not in RUNTIMES:
            raise ValueError(f"model_runtime={self.model_runtime!r}: must be one of {', '.join(RUNTIMES)}")
        if self.model_poll_seconds <= 0:
            raise ValueError(f"model_poll_seconds={self.model_poll_seconds}: must be more than 0")
        for name in ("max_batch_size", "max_queue_size", "max_text_chars", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be at least 1")
        for name in ("header_timeout_seconds", "body_timeout_seconds", "request_timeout_seconds"):
            if not 0 < getattr(self, name) <= MAX_TIMEOUT_SECONDS:
                raise ValueError(f"{name}={getattr(self, name)}: must be above 0 and at most {MAX_TIMEOUT_SECONDS}")
        if self.shutdown_timeout_seconds < 1:
            raise ValueError(f"shutdown_timeout_seconds={self.shutdown_timeout_seconds}: must be at least 1, e.g. 25")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"log_level={self.log_level!r}: must be one of {', '.join(LOG_LEVELS)}")
        if self.log_format not in {choice.value for choice in LogFormat}:
            raise ValueError(f"log_format={self.log_format!r}: must be one of {', '.join(LogFormat)}")


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


# Field types as `from __future__ import annotations` leaves them: strings.
_PARSERS: dict[str, Callable[[str], object]] = {"str": str, "int": int, "float": float, "bool": _parse_bool}


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def config_from_args(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> ServerConfig:
    """Options win over environment variables; settings given in neither keep their defaults."""
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="python -m modelplane.workloads.serving.server", description=__doc__)
    for setting in fields(ServerConfig):
        option = "--" + setting.name.replace("_", "-")
        parser.add_argument(option, dest=setting.name, help=f"{setting.metadata['help']} [{env_name(setting.name)}]")
    args = parser.parse_args(argv)
    values: dict[str, Any] = {}
    for setting in fields(ServerConfig):
        cli_value = getattr(args, setting.name)
        source, raw = (
            ("--" + setting.name.replace("_", "-"), cli_value)
            if cli_value is not None
            else (env_name(setting.name), environ.get(env_name(setting.name)))
        )
        if raw is None:
            continue
        try:
            values[setting.name] = _PARSERS[str(setting.type)](raw)
        except ValueError as error:
            parser.error(f"{source}={raw!r}: {error}")
    if "model_uri" not in values:
        parser.error(f"--model-uri or {env_name('model_uri')} is required")
    try:
        return ServerConfig(**values)
    except ValueError as error:
        parser.error(str(error))
