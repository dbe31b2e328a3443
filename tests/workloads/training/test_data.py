from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from modelplane.workloads.training.trainer.data import (
    CHARS_PER_TOKEN_BOUND,
    EvalShard,
    Example,
    LabelledTexts,
    ResumableSampler,
    check_labels_known,
    label_names,
    max_text_chars,
    read_examples,
    split_train_eval,
)


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_jsonl_rows_are_read_and_integer_labels_become_names(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "train.jsonl", [{"text": "shares rise", "label": "positive"}, {"text": "x", "label": 2}]
    )
    assert read_examples(path) == [Example("shares rise", "positive"), Example("x", "2")]


def test_csv_rows_are_read(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text('text,label\n"profit falls, again",negative\nguidance kept,neutral\n')
    assert read_examples(path) == [Example("profit falls, again", "negative"), Example("guidance kept", "neutral")]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"text": "ok", "label": "positive"}, {"label": "negative"}], r"train.jsonl:2: text is missing or empty"),
        ([{"text": "ok", "label": "positive"}, {"text": "no label"}], r"train.jsonl:2: label is missing"),
        ([{"text": "ok", "label": True}], r"train.jsonl:1: label is missing or not a string or integer"),
        ([["text", "label"]], r"train.jsonl:1: must be a JSON object"),
    ],
)
def test_bad_jsonl_rows_are_reported_with_their_line(tmp_path: Path, rows: list[object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_examples(write_jsonl(tmp_path / "train.jsonl", rows))


def test_broken_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "ok", "label": "a"}\n\n{"text": "broken",\n')
    with pytest.raises(ValueError, match=r"train.jsonl:3: not JSON"):
        read_examples(path)


def test_bad_csv_rows_and_headers_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("text,label\nfine,positive\n,negative\n")
    with pytest.raises(ValueError, match=r"train.csv:3: text is missing or empty"):
        read_examples(path)
    path.write_text("sentence,label\nfine,positive\n")
    with pytest.raises(ValueError, match=r"train.csv:1: header lacks text"):
        read_examples(path)


def test_unknown_formats_and_empty_files_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown format '\.parquet'"):
        read_examples(tmp_path / "train.parquet")
    with pytest.raises(ValueError, match="no rows"):
        read_examples(write_jsonl(tmp_path / "empty.jsonl", []))


def test_labels_are_sorted_and_an_unknown_label_names_its_row_and_the_nearest_known_one(tmp_path: Path) -> None:
    examples = [Example("a", "positive"), Example("b", "negative"), Example("c", "neutral")]
    assert label_names(examples) == ["negative", "neutral", "positive"]
    path = write_jsonl(
        tmp_path / "eval.jsonl",
        [{"text": "up", "label": "positive"}, {"text": "down", "label": "negativ"}, {"text": "x", "label": "bull"}],
    )
    with pytest.raises(ValueError) as raised:
        check_labels_known(read_examples(path), label_names(examples), "the job's labels")
    assert str(raised.value) == (
        f"{path}:2: label 'negativ' is not one of the job's labels (negative, neutral, positive); "
        "did you mean 'negative'?; 1 more rows have labels outside them"
    )


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_byte_that_is_not_utf8_is_named_with_its_file_and_line(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"train{suffix}"
    header = b"text,label\n" if suffix == ".csv" else b""
    good = b"fine,neutral\n" if suffix == ".csv" else b'{"text": "fine", "label": "neutral"}\n'
    bad = b"caf\xe9 news,positive\n" if suffix == ".csv" else b'{"text": "caf\xe9 news", "label": "positive"}\n'
    path.write_bytes(header + good * 3 + bad)
    line = 5 if suffix == ".csv" else 4
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:{line}: not UTF-8 \(byte 0xe9 at column \d+\)"):
        read_examples(path)


def test_overlong_texts_are_cut_before_any_tokeniser_sees_them(tmp_path: Path) -> None:
    long_text = "word " * 4_000_000  # a 20 MB line
    path = write_jsonl(tmp_path / "train.jsonl", [{"text": long_text, "label": "a"}, {"text": "short", "label": "b"}])
    examples = read_examples(path, max_chars=max_text_chars(24), shown_as="s3://bucket/train.jsonl")
    assert [len(example.text) for example in examples] == [24 * CHARS_PER_TOKEN_BOUND, 5]
    assert examples[0].where == "s3://bucket/train.jsonl:1"


def test_rows_know_where_they_came_from(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text('text,label\n"two\nlines",a\nthird,b\n')
    assert [example.where for example in read_examples(path)] == [f"{path}:3", f"{path}:4"]


def test_split_is_deterministic_by_seed_and_holds_out_the_fraction() -> None:
    examples = [Example(str(i), "a") for i in range(50)]
    train, evaluation = split_train_eval(examples, 0.1, seed=7)
    assert len(evaluation) == 5
    assert sorted(train + evaluation, key=lambda e: int(e.text)) == examples
    assert split_train_eval(examples, 0.1, seed=7) == (train, evaluation)
    assert split_train_eval(examples, 0.1, seed=8) != (train, evaluation)
    assert split_train_eval(examples, 0.0, seed=7) == (examples, [])


def test_eval_shards_cover_every_row_once_with_equal_lengths() -> None:
    texts = LabelledTexts([Example(str(i), "a") for i in range(5)], ["a"])
    shards = [EvalShard(texts, rank, 2) for rank in range(2)]
    assert [len(shard) for shard in shards] == [3, 3]
    counted = [shard[i]["text"] for shard in shards for i in range(len(shard)) if shard[i]["counted"]]
    assert sorted(counted) == ["0", "1", "2", "3", "4"]


def test_resumable_sampler_skips_only_the_interrupted_epoch() -> None:
    texts = LabelledTexts([Example(str(i), "a") for i in range(8)], ["a"])
    sampler = ResumableSampler(texts, num_replicas=1, rank=0, shuffle=True, seed=3)
    full = list(sampler)
    sampler.skip = 3
    assert list(sampler) == full[3:]
    assert list(sampler) == full
