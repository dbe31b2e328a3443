"""`python -m workloads.training`: fine-tune, checkpoint and export a text classifier (run it under torchrun)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from workloads.training.config import TrainerConfig
from workloads.training.train import train


def main(argv: Sequence[str] | None = None) -> None:
    try:
        config = TrainerConfig.from_args(argv)
    except ValueError as error:
        sys.exit(f"python -m workloads.training: {error}")
    # Rank 0 speaks for the job; the other ranks report only problems.
    is_main = os.environ.get("RANK", "0") == "0"
    logging.basicConfig(
        level=logging.INFO if is_main else logging.WARNING,
        format="%(asctime)s %(levelname)s [rank " + os.environ.get("RANK", "0") + "] %(name)s: %(message)s",
    )
    result = train(config)
    logging.getLogger(__name__).info("done at step %d after %d restarts", result.step, result.restarts)


if __name__ == "__main__":
    main()
