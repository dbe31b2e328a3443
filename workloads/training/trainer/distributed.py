"""Which process this is among the job's ranks, and the few collectives the trainer needs."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from modelplane.terms.log_lines import send_to_root
from modelplane.workloads.training.trainer.outcome import LAUNCHER_PID_VARIABLE

# What torchrun sets; a plain `python -m modelplane.workloads.training.trainer` runs as the only rank
# of a one-process group.
SINGLE_PROCESS_ENV = {
    "RANK": "0",
    "WORLD_SIZE": "1",
    "LOCAL_RANK": "0",
    "MASTER_ADDR": "127.0.0.1",
    "MASTER_PORT": "29500",
}


@dataclass(frozen=True)
class Ranks:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, serves metrics, commits checkpoints and exports."""
        return self.rank == 0

    @property
    def is_node_leader(self) -> bool:
        """Local rank 0 downloads and uploads node-local files once for every rank on its node."""
        return self.local_rank == 0

    @classmethod
    def from_env(cls, environ: MutableMapping[str, str] | None = None) -> Ranks:
        """The ranks torchrun (or the Kubeflow trainer) set; fills in a one-process group when there are none.

        DeepSpeed looks for MPI when RANK is missing, so a lone process gets the variables too.
        """
        environ = os.environ if environ is None else environ
        if "RANK" not in environ:
            for name, value in SINGLE_PROCESS_ENV.items():
                environ.setdefault(name, value)
        return cls(int(environ["RANK"]), int(environ["WORLD_SIZE"]), int(environ.get("LOCAL_RANK", "0")))


def backend() -> str:
    """NCCL between GPUs; gloo when there are none (CPU runs and tests)."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def init_process_group(ranks: Ranks, collective_timeout_seconds: float) -> None:
    """Join the job's group; a collective that waits longer than `collective_timeout_seconds` for a peer fails
    (gloo and NCCL both enforce it; DeepSpeed's default would leave a stalled rank hanging the job for 30 min)."""
    import deepspeed

    # DeepSpeed prints plain text to stdout through a handler of its own; through the root's, its lines come
    # out in the job's log format, with the job and the rank on them.
    send_to_root("DeepSpeed")
    if torch.cuda.is_available():
        torch.cuda.set_device(ranks.local_rank)
    deepspeed.init_distributed(
        dist_backend=backend(),
        auto_mpi_discovery=False,
        rank=ranks.rank,
        world_size=ranks.world_size,
        verbose=False,
        timeout=timedelta(seconds=collective_timeout_seconds),
    )


def bound_every_group(collective_timeout_seconds: float) -> None:
    """Give every process group the job's collective timeout, not only the default one.

    DeepSpeed makes groups of its own (ZeRO all-reduces its gradients in a clone of the world group) with torch's
    default timeout, 30 minutes for gloo: a stalled rank would hang its peers there. torch's `_set_pg_timeout` is
    the call for exactly this (its docstring: a timeout other than the default); groups are listed by `_world`.
    """
    timeout = timedelta(seconds=collective_timeout_seconds)
    for group in list(dist.distributed_c10d._world.pg_map):
        dist.distributed_c10d._set_pg_timeout(timeout, group)


def die_with_launcher() -> None:
    """Ask Linux to SIGKILL this worker when the launcher that started it dies.

    torchrun starts each worker in a session of its own, so a launcher killed without its children's groups
    (SIGKILL, an OOM kill) would leave them training and checkpointing on, unseen. Only under modelplane's
    launcher, which names its PID: that is how a worker knows whether it is already orphaned.
    """
    launcher = os.environ.get(LAUNCHER_PID_VARIABLE)
    if launcher is None or not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    # The launcher may have died before the request was made: then this worker has another parent already.
    if os.getppid() != int(launcher):
        os.kill(os.getpid(), signal.SIGKILL)


def gather_problems(problem: str | None) -> list[str]:
    """Every rank's problem (each told once, in rank order), on every rank: ranks that check different things
    (downloads, write access, their own data) fail together, instead of one failing while the others wait."""
    gathered: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, problem)
    return [found for found in dict.fromkeys(gathered) if found]


def barrier() -> None:
    dist.barrier()


def shutdown(ranks: Ranks) -> None:
    """Every rank leaves the group together: a rank that exits while a peer's transport still runs can be aborted
    by it at interpreter exit (gloo's "terminate called without an active exception"). A lone rank has no peer
    and keeps its group, which DeepSpeed holds on to for the rest of the process."""
    if dist.is_initialized():
        dist.barrier()
        if ranks.world_size > 1:
            dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` summed over every rank, in place."""
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
