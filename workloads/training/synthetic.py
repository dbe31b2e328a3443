"""SYNTHETIC financial-news sentiment data: templated sentences labelled positive, negative or neutral.

Not real news and not a benchmark: the sentences are filled-in templates, so a model learns the templates'
wording. It exists to exercise the trainer end to end; the same seed always gives the same rows.
Run `python -m modelplane.workloads.training.synthetic --out data.jsonl --rows 300` to write a JSONL file.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from pathlib import Path

LABELS = ("negative", "neutral", "positive")
COMPANIES = (
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella Holdings",
    "Stark Industries",
    "Wayne Enterprises",
    "Hooli",
    "Vandelay Imports",
)
METRICS = ("quarterly revenue", "net profit", "operating margin", "full-year guidance", "earnings per share")
TEMPLATES: dict[str, tuple[str, ...]] = {
    "positive": (
        "{company} shares jump after {metric} beats expectations",
        "{company} raises {metric} as demand strengthens",
        "Analysts upgrade {company} on record {metric}",
        "{company} reports strong growth in {metric}",
    ),
    "negative": (
        "{company} shares fall after {metric} misses forecasts",
        "{company} cuts {metric} amid weak demand",
        "Analysts downgrade {company} as {metric} declines",
        "{company} warns of losses and lower {metric}",
    ),
    "neutral": (
        "{company} will publish {metric} next week",
        "{company} keeps {metric} unchanged",
        "{company} schedules a call to discuss {metric}",
        "{company} appoints a new chief financial officer",
    ),
}


def synthetic_rows(rows: int, seed: int = 0) -> list[dict[str, str]]:
    """`rows` SYNTHETIC examples, labels in turn so every class is represented; deterministic for `seed`."""
    if rows < 1:
        raise ValueError(f"rows={rows}: must be at least 1")
    generator = random.Random(seed)
    examples = []
    for index in range(rows):
        label = LABELS[index % len(LABELS)]
        template = generator.choice(TEMPLATES[label])
        text = template.format(company=generator.choice(COMPANIES), metric=generator.choice(METRICS))
        examples.append({"text": text, "label": label})
    generator.shuffle(examples)
    return examples


def jsonl_text(rows: Sequence[dict[str, str]]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def write_jsonl(path: Path, rows: Sequence[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(jsonl_text(rows), encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m modelplane.workloads.training.synthetic",
        description="Write a SYNTHETIC (templated) financial-news sentiment dataset as JSONL.",
    )
    parser.add_argument("--out", type=Path, required=True, help="JSONL file to write.")
    parser.add_argument("--rows", type=int, default=300, help="Number of rows.")
    parser.add_argument("--seed", type=int, default=0, help="Same seed, same rows.")
    args = parser.parse_args(argv)
    write_jsonl(args.out, synthetic_rows(args.rows, args.seed))
    print(f"wrote {args.rows} SYNTHETIC templated rows (labels: {', '.join(LABELS)}) to {args.out}")


if __name__ == "__main__":
    main()
