"""`modelplane seed ENV`: the base model and dataset every training job reads, uploaded where missing (moto)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from modelplane.cli import app
from modelplane.seeding import SeedError, artifact_bucket_of
from modelplane.workloads import storage

STACKS = Path(__file__).resolve().parents[2] / "stacks"
runner = CliRunner()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield boto3.client("s3", region_name="us-east-1")


def test_seed_uploads_the_model_and_dataset_once(aws) -> None:
    aws.create_bucket(Bucket="modelplane-dev-artifacts-abc123")
    first = runner.invoke(app, ["seed", "dev", "--stacks-dir", str(STACKS)])
    assert first.exit_code == 0, first.output
    assert "seeded s3://modelplane-dev-artifacts-abc123/base-models/" in first.output
    keys = {o["Key"] for o in aws.list_objects_v2(Bucket="modelplane-dev-artifacts-abc123")["Contents"]}
    assert any(key.endswith("config.json") for key in keys)
    (dataset_key,) = [key for key in keys if key.startswith("datasets/")]
    rows = storage.read_text(f"s3://modelplane-dev-artifacts-abc123/{dataset_key}").splitlines()
    assert len(rows) > 100 and {"text", "label"} <= set(json.loads(rows[0]))

    again = runner.invoke(app, ["seed", "dev", "--stacks-dir", str(STACKS)])
    assert again.exit_code == 0, again.output
    assert "seeded" not in again.output and "kept s3://" in again.output


def test_seed_takes_the_teams_own_dataset(aws, tmp_path: Path) -> None:
    aws.create_bucket(Bucket="team-bucket")
    own = tmp_path / "train.jsonl"
    own.write_text('{"text": "rates rise", "label": "negative"}\n')
    result = runner.invoke(
        app, ["seed", "dev", "--bucket", "team-bucket", "--dataset", str(own), "--stacks-dir", str(STACKS)]
    )
    assert result.exit_code == 0, result.output
    keys = [o["Key"] for o in aws.list_objects_v2(Bucket="team-bucket")["Contents"] if o["Key"].startswith("datasets/")]
    assert storage.read_text(f"s3://team-bucket/{keys[0]}") == own.read_text()


def test_seed_says_what_to_do_without_a_bucket(aws) -> None:
    result = runner.invoke(app, ["seed", "dev", "--stacks-dir", str(STACKS)])
    assert result.exit_code == 1
    assert "no bucket named modelplane-dev-artifacts-*" in result.output
    assert "Traceback" not in result.output


def test_a_bucket_that_does_not_exist_is_one_line(aws) -> None:
    result = runner.invoke(app, ["seed", "dev", "--bucket", "nobody-made-this", "--stacks-dir", str(STACKS)])
    assert result.exit_code == 1
    assert "seeding dev failed: s3://nobody-made-this/" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_several_candidate_buckets_need_a_choice(aws) -> None:
    aws.create_bucket(Bucket="modelplane-qa-artifacts-1")
    aws.create_bucket(Bucket="modelplane-qa-artifacts-2")
    with pytest.raises(SeedError, match="several buckets"):
        artifact_bucket_of("qa", aws)
    aws.create_bucket(Bucket="modelplane-prod-artifacts-9")
    assert artifact_bucket_of("prod", aws) == "modelplane-prod-artifacts-9"


def test_a_base_model_directory_without_config_is_refused(aws, tmp_path: Path) -> None:
    aws.create_bucket(Bucket="modelplane-dev-artifacts-x")
    result = runner.invoke(app, ["seed", "dev", "--base-model", str(tmp_path), "--stacks-dir", str(STACKS)])
    assert result.exit_code == 1
    assert "no config.json there" in result.output
