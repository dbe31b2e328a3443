"""The training function: DeepSpeed fine-tuning with checkpoints, resume, evaluation, metrics and export.

Every rank runs `train`; rank 0 alone logs, serves metrics, commits checkpoints and exports.
"""

from __future__ import annotations

import itertools
import logging
import math
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from prometheus_client import REGISTRY, CollectorRegistry
from tqdm import tqdm

from modelplane.terms.log_lines import LogFormat
from modelplane.workloads import storage
from modelplane.workloads.model_artifact import ModelManifest
from modelplane.workloads.training.trainer import distributed
from modelplane.workloads.training.trainer.base_model import fetch_base_model, load_classifier
from modelplane.workloads.training.trainer.checkpoints import CheckpointMarker, CheckpointStore, tag_for
from modelplane.workloads.training.trainer.config import TrainerConfig, load_deepspeed_config
from modelplane.workloads.training.trainer.data import (
    Example,
    Loaders,
    check_labels_known,
    label_names,
    make_loaders,
    read_examples,
    split_train_eval,
)
from modelplane.workloads.training.trainer.distributed import Ranks
from modelplane.workloads.training.trainer.evaluate import EvalReport, confusion_matrix, report_from_confusion
from modelplane.workloads.training.trainer.export import consolidated_state_dict, export_model
from modelplane.workloads.training.trainer.metrics import TrainingMetrics, serve_metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inputs:
    train: list[Example]
    evaluation: list[Example]
    labels: list[str]
    base_model_dir: Path


@dataclass(frozen=True)
class TrainingResult:
    step: int
    restarts: int
    report: EvalReport | None


@dataclass(frozen=True)
class Resumed:
    tag: str | None
    """The checkpoint resumed from; None on a fresh start."""
    step: int
    restarts: int
    last_checkpoint: float


class NonFiniteLossError(FloatingPointError):
    """Training diverged; every further step would waste GPU time."""


def local_path(uri: str, download_to: Path) -> Path:
    """Where a file or model at `uri` is read from on this node: itself, or its download when on S3."""
    return download_to if storage.is_s3(uri) else Path(uri)


def prepare_inputs(config: TrainerConfig, ranks: Ranks, scratch: Path) -> Inputs:
    """Download what lives on S3 (once per node), read the data, split it and fix the label order."""
    inputs = scratch / "inputs"
    train_file = inputs / ("train" + Path(config.dataset_uri).suffix)
    eval_file = inputs / ("eval" + Path(config.eval_dataset_uri or "").suffix)
    model_dir = inputs / "base-model"
    if ranks.is_node_leader:
        for uri, destination in ((config.dataset_uri, train_file), (config.eval_dataset_uri, eval_file)):
            if uri and storage.is_s3(uri):
                storage.download_file(uri, destination)
        fetch_base_model(config.base_model, model_dir)
    distributed.barrier()
    examples = read_examples(local_path(config.dataset_uri, train_file))
    if config.eval_dataset_uri:
        train, evaluation = examples, read_examples(local_path(config.eval_dataset_uri, eval_file))
    else:
        train, evaluation = split_train_eval(examples, config.eval_fraction, config.seed)
    labels = label_names(train)
    check_labels_known(evaluation, labels, "evaluation data")
    return Inputs(train, evaluation, labels, local_path(config.base_model, model_dir))


def resume(engine: Any, store: CheckpointStore, ranks: Ranks, started_at: float) -> Resumed:
    """Load the newest complete checkpoint, if any; the resumed run counts one more restart."""
    latest = store.latest()
    if latest is None:
        log.info("no complete checkpoint under %s: starting from the base model", store.uri)
        return Resumed(tag=None, step=0, restarts=0, last_checkpoint=started_at)
    marker = latest.marker
    if marker.zero_stage > 0 and marker.world_size != ranks.world_size:
        raise RuntimeError(
            f"checkpoint {store.uri}/{latest.tag} holds ZeRO-{marker.zero_stage} shards of {marker.world_size} ranks: "
            f"resume with {marker.world_size} ranks (not {ranks.world_size}) or use a new checkpoint_uri"
        )
    if ranks.is_node_leader:
        store.fetch(latest.tag)
    distributed.barrier()
    directory = store.local_copy(latest.tag)
    loaded, _client_state = engine.load_checkpoint(str(directory.parent), tag=directory.name)
    if loaded is None:
        raise RuntimeError(f"DeepSpeed could not load checkpoint {directory}")
    log.info(
        "resumed from %s at step %d (restart %d)",
        latest.tag,
        marker.step,
        marker.restarts + 1,
        extra={"step": marker.step, "restarts": marker.restarts + 1},
    )
    return Resumed(tag=latest.tag, step=marker.step, restarts=marker.restarts + 1, last_checkpoint=marker.timestamp)


def save_checkpoint(engine: Any, store: CheckpointStore, ranks: Ranks, marker: CheckpointMarker, keep: int) -> None:
    """Every rank writes its part into the staging directory; rank 0 commits with the marker, then prunes."""
    tag = tag_for(marker.step)
    staged = store.staging_dir(tag)
    # A crashed attempt's files (perhaps from more ranks) must not mix into this one.
    if ranks.is_main:
        store.discard(tag)
    if ranks.is_node_leader:
        shutil.rmtree(staged, ignore_errors=True)
    distributed.barrier()
    engine.save_checkpoint(str(staged.parent), tag=staged.name, save_latest=False)
    distributed.barrier()
    if ranks.is_node_leader:
        store.upload(tag)
    distributed.barrier()
    if ranks.is_main:
        store.commit(tag, marker)
        pruned = store.prune(keep)
        log.info(
            "checkpoint %s committed%s",
            tag,
            f"; pruned {', '.join(pruned)}" if pruned else "",
            extra={"step": marker.step},
        )


def model_inputs(batch: dict[str, torch.Tensor], device: Any, with_labels: bool) -> dict[str, torch.Tensor]:
    return {
        name: tensor.to(device)
        for name, tensor in batch.items()
        if name != "counted" and (with_labels or name != "labels")
    }


def evaluate_model(engine: Any, loader: Iterable[dict[str, torch.Tensor]], labels: list[str]) -> EvalReport:
    """Scores over the whole evaluation set: every rank counts its shard, the counts are summed."""
    engine.eval()
    confusion = torch.zeros(len(labels), len(labels), dtype=torch.long)
    with torch.no_grad():
        for batch in loader:
            logits = engine(**model_inputs(batch, engine.device, with_labels=False)).logits
            counted = batch["counted"]
            predictions = logits.argmax(dim=-1).cpu()
            confusion += confusion_matrix(predictions[counted], batch["labels"][counted], len(labels))
    engine.train()
    # NCCL reduces only tensors on the GPU; gloo takes them anywhere.
    summed = distributed.all_reduce_sum(confusion.to(engine.device)).cpu()
    return report_from_confusion(summed, labels)


@dataclass(frozen=True)
class Schedule:
    """How optimizer steps map onto epochs and micro-batches; fixed for a job, so a resume lands where it left."""

    steps_per_epoch: int
    total_steps: int
    accumulation: int
    micro_batch_size: int

    def epoch_of(self, step: int) -> int:
        """The epoch in which `step` (1-based) was taken."""
        return (step - 1) // self.steps_per_epoch


def schedule_for(config: TrainerConfig, engine: Any, micro_batches_per_epoch: int, train_rows: int) -> Schedule:
    accumulation = engine.gradient_accumulation_steps()
    steps_per_epoch = micro_batches_per_epoch // accumulation
    if steps_per_epoch == 0:
        raise ValueError(
            f"dataset_uri={config.dataset_uri!r}: {train_rows} training rows give {micro_batches_per_epoch} "
            f"micro-batches per rank, fewer than gradient_accumulation_steps={accumulation}; add data or shrink batches"
        )
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    return Schedule(steps_per_epoch, total_steps, accumulation, engine.train_micro_batch_size_per_gpu())


class TrainingRun:
    """The epoch loop of one rank: steps, loss checks, metrics, checkpoints and evaluation."""

    def __init__(
        self,
        config: TrainerConfig,
        ranks: Ranks,
        engine: Any,
        loaders: Loaders,
        labels: list[str],
        store: CheckpointStore,
        metrics: TrainingMetrics,
        resumed: Resumed,
        schedule: Schedule,
    ) -> None:
        self.config, self.ranks, self.engine, self.loaders = config, ranks, engine, loaders
        self.labels, self.store, self.metrics, self.resumed = labels, store, metrics, resumed
        self.schedule = schedule
        # Set by `initialize_engine` when DeepSpeed skips its gradient all-reduce (and the zero-filling in it).
        self.fills_gradients = getattr(engine, "enable_backward_allreduce", True) is False
        self.step = resumed.step
        self.saved_step = resumed.step if resumed.tag else None
        self.evaluated_step: int | None = None
        self.report: EvalReport | None = None
        self.interval_start, self.interval_step = time.monotonic(), self.step
        self.started = time.monotonic()
        log.info(
            "%d steps of %d samples (%d per epoch), from step %d",
            self.schedule.total_steps,
            self.engine.train_batch_size(),
            self.schedule.steps_per_epoch,
            self.step,
            extra={"step": self.step},
        )
        self.bar = tqdm(
            total=self.schedule.total_steps,
            initial=self.step,
            # The bar redraws one line in place: in JSON logs it would be one endless non-JSON line.
            disable=not (ranks.is_main and config.progress and config.log_format == LogFormat.TEXT),
            desc=config.job_name,
        )

    def run(self) -> None:
        """Train up to the last step, then make sure the end state is checkpointed and evaluated."""
        try:
            for epoch in range(self.step // self.schedule.steps_per_epoch, self.config.epochs):
                if self.step >= self.schedule.total_steps:
                    break
                self.train_epoch(epoch)
                if self.step % self.schedule.steps_per_epoch == 0:
                    self.evaluate(f"epoch {epoch}")
            if self.saved_step != self.step:
                self.checkpoint(self.schedule.epoch_of(self.step))
            if self.evaluated_step != self.step:
                self.evaluate("final")
        finally:
            self.bar.close()

    def train_epoch(self, epoch: int) -> None:
        # from_pretrained hands the model over in eval mode: dropout must be on from the first step.
        self.engine.train()
        schedule = self.schedule
        done_in_epoch = self.step - epoch * schedule.steps_per_epoch
        self.loaders.train_sampler.set_epoch(epoch)
        self.loaders.train_sampler.skip = done_in_epoch * schedule.accumulation * schedule.micro_batch_size
        # Micro-batches past the last whole step of an epoch are dropped, so steps map to epochs exactly.
        micro_batches = itertools.islice(
            self.loaders.train, (schedule.steps_per_epoch - done_in_epoch) * schedule.accumulation
        )
        step_loss = 0.0
        for index, batch in enumerate(micro_batches, start=1):
            loss = self.engine(**model_inputs(batch, self.engine.device, with_labels=True)).loss
            self.engine.backward(loss)
            if self.fills_gradients and self.engine.is_gradient_accumulation_boundary():
                fill_missing_gradients(self.engine.module)
            self.engine.step()
            step_loss += loss.item() / schedule.accumulation
            if index % schedule.accumulation == 0:
                self.end_step(epoch, step_loss)
                step_loss = 0.0
                if self.step >= schedule.total_steps:
                    return

    def end_step(self, epoch: int, step_loss: float) -> None:
        """After an optimizer step: the loss over all ranks, its check, metrics, logs and maybe a checkpoint."""
        self.step += 1
        total = distributed.all_reduce_sum(torch.tensor([step_loss], device=self.engine.device)).item()
        loss = total / self.ranks.world_size
        self.metrics.stepped(self.step, loss)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4f}", epoch=epoch)
        # Every rank sees the same reduced loss, so all stop together instead of hanging in a collective.
        if not math.isfinite(loss):
            raise NonFiniteLossError(
                f"step {self.step}: loss is {loss}; lower learning_rate or set gradient_clipping in the "
                f"DeepSpeed config, then resume from a checkpoint before step {self.step}"
            )
        if self.step % self.config.log_every_steps == 0:
            now = time.monotonic()
            throughput = (self.step - self.interval_step) * self.engine.train_batch_size() / (now - self.interval_start)
            self.metrics.samples_per_second.set(throughput)
            self.interval_start, self.interval_step = now, self.step
            log.info(
                "epoch %d step %d/%d loss %.4f %.1f samples/s",
                epoch,
                self.step,
                self.schedule.total_steps,
                loss,
                throughput,
                extra={"step": self.step, "epoch": epoch, "loss": loss, "samples_per_second": round(throughput, 1)},
            )
        if self.step % self.config.checkpoint_every_steps == 0:
            self.checkpoint(epoch)
        if self.past_deadline():
            if self.saved_step != self.step:
                self.checkpoint(epoch)
            raise DeadlineExceeded(
                f"step {self.step}: ran past max_run_minutes={self.config.max_run_minutes}; "
                "checkpointed, so a new run resumes here"
            )

    def past_deadline(self) -> bool:
        if self.config.max_run_minutes is None:
            return False
        # Every rank must agree, or one would stop while the others wait in a collective.
        late = time.monotonic() - self.started > self.config.max_run_minutes * 60
        return distributed.all_reduce_sum(torch.tensor([float(late)], device=self.engine.device)).item() > 0

    def checkpoint(self, epoch: int) -> None:
        marker = CheckpointMarker(
            step=self.step,
            epoch=epoch,
            restarts=self.resumed.restarts,
            timestamp=time.time(),
            world_size=self.ranks.world_size,
            zero_stage=self.engine.zero_optimization_stage(),
        )
        save_checkpoint(self.engine, self.store, self.ranks, marker, self.config.keep_checkpoints)
        self.saved_step = self.step
        self.metrics.checkpointed(marker.timestamp)

    def evaluate(self, when: str) -> None:
        if self.loaders.eval is None:
            return
        self.report, self.evaluated_step = evaluate_model(self.engine, self.loaders.eval, self.labels), self.step
        self.metrics.evaluated(self.report)
        log.info(
            "%s evaluation at step %d: accuracy %.4f",
            when,
            self.step,
            self.report.accuracy,
            extra={"step": self.step, "accuracy": self.report.accuracy},
        )


class RestartBudgetExhausted(RuntimeError):
    pass


class DeadlineExceeded(RuntimeError):
    pass


TORCH_OPTIMIZERS = {"AdamW": torch.optim.AdamW, "Adam": torch.optim.Adam, "SGD": torch.optim.SGD}


def client_optimizer(ds_config: dict[str, Any], model: Any, default_lr: float) -> tuple[dict[str, Any], Any]:
    """The config to hand DeepSpeed and the torch optimizer to pass it (None: DeepSpeed builds its own).

    DeepSpeed's own Adam is a C++ op compiled on first use (minutes, and a CUDA toolkit in the image);
    a torch optimizer with the same settings needs none. Optimizer offload needs DeepSpeed's CPU Adam.
    """
    if "offload_optimizer" in ds_config.get("zero_optimization", {}):
        return ds_config, None
    remaining = {key: value for key, value in ds_config.items() if key != "optimizer"}
    section = ds_config.get("optimizer", {"type": "AdamW", "params": {"lr": default_lr}})
    kind = TORCH_OPTIMIZERS.get(section.get("type", "AdamW"))
    if kind is None:
        raise ValueError(f"optimizer.type={section.get('type')!r}: use one of {', '.join(TORCH_OPTIMIZERS)}")
    params = dict(section.get("params", {}))
    if "betas" in params:
        params["betas"] = tuple(params["betas"])
    return remaining, kind(model.parameters(), **params)


def initialize_engine(model: Any, optimizer: Any, ds_config: dict[str, Any], ranks: Ranks) -> Any:
    """The DeepSpeed engine; on a lone fp32 process without ZeRO, with its gradient all-reduce turned off.

    There the all-reduce averages over one rank, an identity that still flattens every gradient into one buffer
    and copies it back each step (about 6% of a MiniLM step on CPU). `TrainingRun` then does the one other
    thing it did: give parameters that got no gradient zeros, so the optimizer still steps them.
    """
    import deepspeed

    engine, *_ = deepspeed.initialize(
        model=model, optimizer=optimizer, model_parameters=model.parameters(), config=ds_config
    )
    plain_fp32 = engine.zero_optimization_stage() == 0 and not (engine.bfloat16_enabled() or engine.fp16_enabled())
    if ranks.world_size == 1 and plain_fp32:
        engine.enable_backward_allreduce = False
    return engine


def fill_missing_gradients(module: torch.nn.Module) -> None:
    """Zeros for the trainable parameters without a gradient, as DeepSpeed's gradient all-reduce gives them."""
    for parameter in module.parameters():
        if parameter.requires_grad and parameter.grad is None and parameter.numel() > 0:
            parameter.grad = torch.zeros_like(parameter)


def train(config: TrainerConfig, registry: CollectorRegistry = REGISTRY) -> TrainingResult:
    """Run (or resume) the job described by `config` on this rank; returns where it ended."""
    from transformers import set_seed

    started_at = time.time()
    ranks = Ranks.from_env()
    distributed.init_process_group(ranks)
    ds_config = load_deepspeed_config(config.deepspeed_config)
    scratch = Path(config.work_dir) / config.job_name
    inputs = prepare_inputs(config, ranks, scratch)
    log.info(
        "%d training rows, %d evaluation rows, labels %s", len(inputs.train), len(inputs.evaluation), inputs.labels
    )
    set_seed(config.seed)
    model, tokenizer = load_classifier(inputs.base_model_dir, inputs.labels)
    ds_config, optimizer = client_optimizer(ds_config, model, config.learning_rate)
    engine = initialize_engine(model, optimizer, ds_config, ranks)
    loaders = make_loaders(
        inputs.train,
        inputs.evaluation,
        inputs.labels,
        tokenizer,
        max_length=config.max_length,
        micro_batch_size=engine.train_micro_batch_size_per_gpu(),
        rank=ranks.rank,
        world_size=ranks.world_size,
        seed=config.seed,
    )
    store = CheckpointStore(config.checkpoint_uri, scratch)
    resumed = resume(engine, store, ranks, started_at)
    if config.restart_budget is not None and resumed.restarts > config.restart_budget:
        raise RestartBudgetExhausted(
            f"restart {resumed.restarts} exceeds restart_budget={config.restart_budget}: the job keeps failing; "
            f"read the previous run's log, fix the cause, then raise the budget or start a new job"
        )
    metrics = TrainingMetrics(config.job_name, registry)
    metrics.started(resumed.step, resumed.restarts, resumed.last_checkpoint)
    server = None
    if ranks.is_main and config.metrics_port:
        server = serve_metrics(registry, config.metrics_port, config.metrics_address)
        log.info("metrics at http://%s:%d/metrics", config.metrics_address, config.metrics_port)
    try:
        schedule = schedule_for(config, engine, len(loaders.train), len(inputs.train))
        run = TrainingRun(config, ranks, engine, loaders, inputs.labels, store, metrics, resumed, schedule)
        run.run()
        if ranks.is_main:
            export(config, engine, tokenizer, store, inputs.labels, run.report, run.step)
        distributed.shutdown(ranks)
    finally:
        if server is not None:
            # The process is about to exit: give Prometheus time to scrape the final values, among them a
            # non-finite loss that explains why the run stopped.
            log.info("metrics stay up %ds for a last scrape", config.metrics_linger_seconds)
            time.sleep(config.metrics_linger_seconds)
            server.shutdown()
    return TrainingResult(step=run.step, restarts=resumed.restarts, report=run.report)


def export(
    config: TrainerConfig,
    engine: Any,
    tokenizer: Any,
    store: CheckpointStore,
    labels: list[str],
    report: EvalReport | None,
    step: int,
) -> None:
    """Rank 0: the final checkpoint's consolidated fp32 weights, saved with the manifest and uploaded to model_uri."""
    tag = tag_for(step)
    directory = store.fetch(tag)
    manifest = ModelManifest(
        labels=labels,
        max_length=config.max_length,
        job_name=config.job_name,
        metrics={"train_steps": step, **(report.as_dict() if report else {})},
    )
    export_model(engine.module.config, tokenizer, consolidated_state_dict(directory), manifest, config.model_uri)
    log.info("exported the model of %s to %s", tag, config.model_uri, extra={"step": step})
