"""Everything a run can find wrong before its first step, checked on every rank, so no GPU hour is spent first.

Two rounds, each ending with every rank learning every rank's problem (they fail together, with one line):
first the checkpoint location's lease, write access to the checkpoint and model locations and the downloads
(each node's leader); then every rank reads its data: encoding, rows, labels against the job's label set, and
whether the newest checkpoint can be resumed with these labels and this many ranks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelplane.workloads import storage
from modelplane.workloads.training.trainer import distributed
from modelplane.workloads.training.trainer.base_model import fetch_base_model
from modelplane.workloads.training.trainer.checkpoints import CheckpointStore, CompleteCheckpoint
from modelplane.workloads.training.trainer.config import TrainerConfig
from modelplane.workloads.training.trainer.data import (
    Example,
    check_labels_known,
    label_names,
    max_text_chars,
    read_examples,
    split_train_eval,
)
from modelplane.workloads.training.trainer.distributed import Ranks
from modelplane.workloads.training.trainer.lease import CheckpointLease, Holder, LeaseHeld, lease_for

CHECKED_ERRORS = (OSError, ValueError, LeaseHeld)
"""What a check raises when the input is wrong; anything else is a bug and keeps its traceback."""


class PreflightFailed(RuntimeError):
    """One or more ranks found a problem before the first step; the message holds each one once."""


@dataclass(frozen=True)
class Inputs:
    train: list[Example]
    evaluation: list[Example]
    labels: list[str]
    base_model_dir: Path
    latest: CompleteCheckpoint | None
    """The checkpoint the run resumes from; None for a fresh start."""


@dataclass(frozen=True)
class Downloads:
    train_file: Path
    eval_file: Path
    model_dir: Path


def local_path(uri: str, download_to: Path) -> Path:
    """Where a file or model at `uri` is read from on this node: itself, or its download when on S3."""
    return download_to if storage.is_s3(uri) else Path(uri)


def agree(problem: str | None) -> None:
    if problems := distributed.gather_problems(problem):
        raise PreflightFailed("; ".join(problems))


def preflight(
    config: TrainerConfig, ranks: Ranks, scratch: Path, store: CheckpointStore
) -> tuple[CheckpointLease | None, Inputs]:
    """The lease on the checkpoint location (rank 0 holds it for the run) and the checked inputs."""
    lease = lease_for(store.uri, config.checkpoint_lease_seconds) if ranks.is_main else None
    downloads = Downloads(
        train_file=scratch / "inputs" / ("train" + Path(config.dataset_uri).suffix),
        eval_file=scratch / "inputs" / ("eval" + Path(config.eval_dataset_uri or "").suffix),
        model_dir=scratch / "inputs" / "base-model",
    )
    problem = None
    try:
        if ranks.is_node_leader:
            check_checkpoint_location(store)
        if lease is not None:
            lease.acquire(Holder.this_process())
            check_model_location(config.model_uri)
        if ranks.is_node_leader:
            fetch_inputs(config, downloads)
    except CHECKED_ERRORS as error:
        problem = str(error)
    try:
        agree(problem)
        problem = None
        try:
            inputs = read_inputs(config, ranks, store, downloads)
        except CHECKED_ERRORS as error:
            problem = str(error)
        agree(problem)
    except BaseException:
        if lease is not None:
            lease.release()
        raise
    return lease, inputs


def check_model_location(model_uri: str) -> None:
    """The export replaces `model_uri` whole; locally through a temporary sibling, so its parent must be writable."""
    if storage.is_s3(model_uri):
        storage.probe_writable(model_uri)
        return
    target = Path(model_uri)
    storage.probe_writable(str(target.parent))
    if target.exists():
        storage.probe_writable(str(target))


def check_checkpoint_location(store: CheckpointStore) -> None:
    """A node leader's part: its ranks write their checkpoint files there (on S3: staged on the node first)."""
    storage.probe_writable(store.uri)
    if store.on_s3:
        storage.probe_writable(str(store.staging_root))


def fetch_inputs(config: TrainerConfig, downloads: Downloads) -> None:
    """A node leader's part: the data and base model are there, and what is on S3 is downloaded once per node."""
    for uri, destination in (
        (config.dataset_uri, downloads.train_file),
        (config.eval_dataset_uri, downloads.eval_file),
    ):
        if uri is None:
            continue
        storage.require_object(uri)
        if storage.is_s3(uri):
            storage.download_file(uri, destination)
    fetch_base_model(config.base_model, downloads.model_dir)


def read_inputs(config: TrainerConfig, ranks: Ranks, store: CheckpointStore, downloads: Downloads) -> Inputs:
    """Read, cut and split the rows, fix the label order and check every label and the checkpoint to resume."""
    max_chars = max_text_chars(config.max_length)
    examples = read_examples(local_path(config.dataset_uri, downloads.train_file), max_chars, config.dataset_uri)
    if config.eval_dataset_uri:
        eval_path = local_path(config.eval_dataset_uri, downloads.eval_file)
        train, evaluation = examples, read_examples(eval_path, max_chars, config.eval_dataset_uri)
    else:
        train, evaluation = split_train_eval(examples, config.eval_fraction, config.seed)
    declared = config.label_set
    if declared is None:
        labels = label_names(train)
        check_labels_known(evaluation, labels, "the labels of the training rows")
    else:
        labels = declared
        check_labels_known(train + evaluation, labels, "the job's labels")
    latest = store.latest()
    if latest is not None:
        check_resumable(store, latest, labels, ranks)
    return Inputs(train, evaluation, labels, local_path(config.base_model, downloads.model_dir), latest)


def check_resumable(store: CheckpointStore, latest: CompleteCheckpoint, labels: list[str], ranks: Ranks) -> None:
    marker, where = latest.marker, storage.join(store.uri, latest.tag)
    if marker.zero_stage > 0 and marker.world_size != ranks.world_size:
        raise ValueError(
            f"checkpoint {where} holds ZeRO-{marker.zero_stage} shards of {marker.world_size} ranks: "
            f"resume with {marker.world_size} ranks (not {ranks.world_size}) or use a new checkpoint_uri"
        )
    if marker.labels is not None and marker.labels != labels:
        raise ValueError(
            f"checkpoint {where} was trained on the labels {', '.join(marker.labels)}; this run has "
            f"{', '.join(labels)}: fix the data or the job's labels, or use a new checkpoint_uri"
        )
