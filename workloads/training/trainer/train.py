"""The training function: DeepSpeed fine-tuning with checkpoints, resume, evaluation, metrics and export.

Every rank runs `train`; rank 0 alone logs, serves metrics, commits checkpoints and exports. On SIGTERM (how
Kubernetes announces a preemption) every rank finishes its step, the group checkpoints and stops with
`Preempted`, so the restart loses nothing.
"""

from __future__ import annotations

import gc
import itertools
import logging
import math
import shutil
import signal
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from prometheus_client import REGISTRY, CollectorRegistry
from tqdm import tqdm

from modelplane.terms.log_lines import LogFormat
from modelplane.workloads.model_artifact import ModelManifest
from modelplane.workloads.training.trainer import cpu_dropout, distributed
from modelplane.workloads.training.trainer.base_model import load_classifier
from modelplane.workloads.training.trainer.checkpoints import (
    CheckpointMarker,
    CheckpointStore,
    CompleteCheckpoint,
    tag_for,
)
from modelplane.workloads.training.trainer.config import TrainerConfig, load_deepspeed_config
from modelplane.workloads.training.trainer.data import Loaders, make_loaders
from modelplane.workloads.training.trainer.distributed import Ranks
from modelplane.workloads.training.trainer.evaluate import EvalReport, confusion_matrix, report_from_confusion
from modelplane.workloads.training.trainer.export import consolidated_state_dict, export_model
from modelplane.workloads.training.trainer.lease import CheckpointLease
from modelplane.workloads.training.trainer.metrics import TrainingMetrics, serve_metrics
from modelplane.workloads.training.trainer.outcome import Preempted
from modelplane.workloads.training.trainer.preflight import Inputs, preflight

log = logging.getLogger(__name__)


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


class StopRequest:
    """Set by SIGTERM, Kubernetes' notice that the pod must go (a spot node reclaimed, a preempting job): the
    handler only records it; the step loop acts on it between steps, where every rank can agree to stop."""

    def __init__(self) -> None:
        self.requested = False

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """The handler for the duration of the run; the previous one after (train() may run inside a bigger
        program, a test runner, that must still stop on SIGTERM)."""
        previous = signal.signal(signal.SIGTERM, self.on_signal)
        try:
            yield self
        finally:
            signal.signal(signal.SIGTERM, previous)

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if not self.requested:
            log.warning("got %s: checkpointing at the end of this step, then stopping", signal.Signals(signum).name)
        self.requested = True


def resume(
    engine: Any, store: CheckpointStore, ranks: Ranks, latest: CompleteCheckpoint | None, started_at: float
) -> Resumed:
    """Load `latest` (the newest complete checkpoint), if any; resuming after a failure counts one more restart,
    resuming after a preemption does not."""
    if latest is None:
        log.info("no complete checkpoint under %s: starting from the base model", store.uri)
        return Resumed(tag=None, step=0, restarts=0, last_checkpoint=started_at)
    marker = latest.marker
    if ranks.is_node_leader:
        store.fetch(latest.tag)
    distributed.barrier()
    directory = store.local_copy(latest.tag)
    loaded, _client_state = engine.load_checkpoint(str(directory.parent), tag=directory.name)
    if loaded is None:
        raise RuntimeError(f"DeepSpeed could not load checkpoint {directory}")
    restarts = marker.restarts if marker.preempted else marker.restarts + 1
    log.info(
        "resumed from %s at step %d (%s)",
        latest.tag,
        marker.step,
        f"after preemption; {restarts} restarts" if marker.preempted else f"restart {restarts}",
        extra={"step": marker.step, "restarts": restarts},
    )
    return Resumed(tag=latest.tag, step=marker.step, restarts=restarts, last_checkpoint=marker.timestamp)


def save_checkpoint(
    engine: Any,
    store: CheckpointStore,
    ranks: Ranks,
    marker: CheckpointMarker,
    keep: int,
    lease: CheckpointLease | None,
) -> None:
    """Every rank writes its part into the staging directory; rank 0 commits with the marker, then prunes.

    Rank 0 checks it still holds the location first: a run that lost it must not touch another run's checkpoints.
    """
    tag = tag_for(marker.step)
    staged = store.staging_dir(tag)
    # A crashed attempt's files (perhaps from more ranks) must not mix into this one.
    if lease is not None:
        lease.check()
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
    if lease is not None:
        lease.check()
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
        *,
        stop: StopRequest,
        lease: CheckpointLease | None,
    ) -> None:
        self.config, self.ranks, self.engine, self.loaders = config, ranks, engine, loaders
        self.labels, self.store, self.metrics, self.resumed = labels, store, metrics, resumed
        self.schedule, self.stop, self.lease = schedule, stop, lease
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
        """After an optimizer step: the loss over all ranks, its check, metrics, logs and maybe a checkpoint.

        One all-reduce carries the loss and whether any rank is past the deadline or was told to stop, so every
        rank decides alike (one stopping alone would leave the others waiting in a collective).
        """
        self.step += 1
        late = self.config.max_run_minutes is not None and (
            time.monotonic() - self.started > self.config.max_run_minutes * 60
        )
        reduced = distributed.all_reduce_sum(
            torch.tensor([step_loss, float(late), float(self.stop.requested)], device=self.engine.device)
        ).tolist()
        loss, any_late, any_stopped = reduced[0] / self.ranks.world_size, reduced[1] > 0, reduced[2] > 0
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
        if any_stopped:
            if self.saved_step != self.step:
                self.checkpoint(epoch, preempted=True)
            raise Preempted(
                f"preempted at step {self.step} (SIGTERM): checkpoint {tag_for(self.step)} is committed; "
                "the restart resumes there"
            )
        if self.step % self.config.checkpoint_every_steps == 0:
            self.checkpoint(epoch)
        if any_late:
            if self.saved_step != self.step:
                self.checkpoint(epoch)
            raise DeadlineExceeded(
                f"step {self.step}: ran past max_run_minutes={self.config.max_run_minutes}; "
                "checkpointed, so a new run resumes here"
            )

    def checkpoint(self, epoch: int, preempted: bool = False) -> None:
        marker = CheckpointMarker(
            step=self.step,
            epoch=epoch,
            restarts=self.resumed.restarts,
            timestamp=time.time(),
            world_size=self.ranks.world_size,
            zero_stage=self.engine.zero_optimization_stage(),
            labels=self.labels,
            preempted=preempted,
        )
        save_checkpoint(self.engine, self.store, self.ranks, marker, self.config.keep_checkpoints, self.lease)
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
    a torch optimizer with the same settings needs none. It is torch's fused kernel: one pass over all
    parameters instead of a loop of small ops per tensor (on CPU an AdamW step of MiniLM takes a sixth of the
    time of torch's default). Optimizer offload needs DeepSpeed's CPU Adam.
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
    return remaining, kind(model.parameters(), **params, fused=True)


def initialize_engine(model: Any, optimizer: Any, ds_config: dict[str, Any], ranks: Ranks) -> Any:
    """The DeepSpeed engine; on CPU with `cpu_dropout`'s masks, and on a lone fp32 process without ZeRO, with its
    gradient all-reduce turned off.

    There the all-reduce averages over one rank, an identity that still flattens every gradient into one buffer
    and copies it back each step (about 6% of a MiniLM step on CPU). `TrainingRun` then does the one other
    thing it did: give parameters that got no gradient zeros, so the optimizer still steps them.
    """
    import deepspeed

    engine, *_ = deepspeed.initialize(
        model=model, optimizer=optimizer, model_parameters=model.parameters(), config=ds_config
    )
    if engine.device.type == "cpu":
        cpu_dropout.install(engine.module)
    plain_fp32 = engine.zero_optimization_stage() == 0 and not (engine.bfloat16_enabled() or engine.fp16_enabled())
    if ranks.world_size == 1 and plain_fp32:
        engine.enable_backward_allreduce = False
    return engine


def keep_collections_off_the_run() -> None:
    """Move what the run holds from now to its end (torch, transformers, the model, the engine, the rows) out of
    the garbage collector's reach.

    A full collection walks every object the process holds: 150-260 ms, about every half minute, in the training
    benchmark's process (MiniLM); and a rank stalled in it holds every peer at the next collective. Collected
    once, what survives is moved to the permanent generation, which collections skip; they then walk only what
    the steps allocate.
    """
    gc.collect()
    gc.freeze()


def fill_missing_gradients(module: torch.nn.Module) -> None:
    """Zeros for the trainable parameters without a gradient, as DeepSpeed's gradient all-reduce gives them."""
    for parameter in module.parameters():
        if parameter.requires_grad and parameter.grad is None and parameter.numel() > 0:
            parameter.grad = torch.zeros_like(parameter)


def train(config: TrainerConfig, registry: CollectorRegistry = REGISTRY) -> TrainingResult:
    """Run (or resume) the job described by `config` on this rank; returns where it ended."""
    with StopRequest().installed() as stop:
        return train_until_stopped(config, registry, stop)


def train_until_stopped(config: TrainerConfig, registry: CollectorRegistry, stop: StopRequest) -> TrainingResult:
    started_at = time.time()
    ranks = Ranks.from_env()
    # The same file and world size on every rank: each fails alike, before any collective.
    ds_config = load_deepspeed_config(config.deepspeed_config, ranks.world_size)
    distributed.init_process_group(ranks, config.collective_timeout_seconds)
    scratch = Path(config.work_dir) / config.job_name
    store = CheckpointStore(config.checkpoint_uri, scratch)
    lease, inputs = preflight(config, ranks, scratch, store)
    try:
        result, server = run_training(config, ds_config, registry, ranks, store, lease, inputs, stop, started_at)
    finally:
        if lease is not None:
            lease.release()
    if server is not None:
        # Only after success: give Prometheus time to scrape the final values. A failed rank must exit at once,
        # so the group restarts without waiting on it.
        log.info("metrics stay up %ds for a last scrape", config.metrics_linger_seconds)
        time.sleep(config.metrics_linger_seconds)
        server.shutdown()
    return result


def run_training(
    config: TrainerConfig,
    ds_config: dict[str, Any],
    registry: CollectorRegistry,
    ranks: Ranks,
    store: CheckpointStore,
    lease: CheckpointLease | None,
    inputs: Inputs,
    stop: StopRequest,
    started_at: float,
) -> tuple[TrainingResult, Any]:
    """From the checked inputs to the export; the result and the metrics server (rank 0's, if any)."""
    from transformers import set_seed

    log.info(
        "%d training rows, %d evaluation rows, labels %s", len(inputs.train), len(inputs.evaluation), inputs.labels
    )
    latest = inputs.latest
    if latest is not None and config.restart_budget is not None and not latest.marker.preempted:
        restarts = latest.marker.restarts + 1
        if restarts > config.restart_budget:
            raise RestartBudgetExhausted(
                f"restart {restarts} exceeds restart_budget={config.restart_budget}: the job keeps failing; "
                f"read the previous run's log, fix the cause, then raise the budget or start a new job"
            )
    set_seed(config.seed)
    model, tokenizer = load_classifier(inputs.base_model_dir, inputs.labels)
    engine_config, optimizer = client_optimizer(ds_config, model, config.learning_rate)
    engine = initialize_engine(model, optimizer, engine_config, ranks)
    distributed.bound_every_group(config.collective_timeout_seconds)
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
    schedule = schedule_for(config, engine, len(loaders.train), len(inputs.train))
    resumed = resume(engine, store, ranks, latest, started_at)
    keep_collections_off_the_run()
    metrics = TrainingMetrics(config.job_name, registry)
    metrics.started(resumed.step, resumed.restarts, resumed.last_checkpoint)
    server = None
    if ranks.is_main and config.metrics_port:
        server = serve_metrics(registry, config.metrics_port, config.metrics_address)
        log.info("metrics at http://%s:%d/metrics", config.metrics_address, config.metrics_port)
    try:
        run = TrainingRun(
            config, ranks, engine, loaders, inputs.labels, store, metrics, resumed, schedule, stop=stop, lease=lease
        )
        run.run()
        if ranks.is_main:
            export(config, engine, tokenizer, store, inputs.labels, run.report, run.step)
        distributed.shutdown(ranks)
    except BaseException:
        if server is not None:
            server.shutdown()
        raise
    return TrainingResult(step=run.step, restarts=resumed.restarts, report=run.report), server


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
