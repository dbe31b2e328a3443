"""`python -m modelplane.workloads.training.trainer`: fine-tune, checkpoint and export a text classifier
(run it under torchrun)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from modelplane.terms.log_lines import LogFormat, configure_logging
from modelplane.workloads.training.trainer.config import TrainerConfig
from modelplane.workloads.training.trainer.train import train


def route_library_output(log_format: str) -> None:
    """transformers logs through the root's handler, in the job's format; with JSON, without its progress bars
    (each redraws one line in place, which would reach the log shipper as one long line that is not JSON)."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_default_handler()
    transformers_logging.enable_propagation()
    if log_format == LogFormat.JSON:
        transformers_logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> None:
    try:
        config = TrainerConfig.from_args(argv)
    except ValueError as error:
        sys.exit(f"python -m modelplane.workloads.training.trainer: {error}")
    rank = os.environ.get("RANK", "0")
    # Rank 0 speaks for the job; the other ranks report only problems. Every line names the job and its rank.
    configure_logging(
        logging.INFO if rank == "0" else logging.WARNING,
        config.log_format,
        {"job": config.job_name, "rank": int(rank) if rank.isdigit() else rank},
    )
    route_library_output(config.log_format)
    log = logging.getLogger(__name__)
    try:
        result = train(config)
    except Exception:
        # The traceback as one line of the job's log format, with the rank that died, so the log shipper
        # keeps it whole and `modelplane logs` shows it; the exit status is Python's for an uncaught error.
        log.exception("training failed")
        sys.exit(1)
    log.info("done at step %d after %d restarts", result.step, result.restarts, extra={"step": result.step})


if __name__ == "__main__":
    main()
