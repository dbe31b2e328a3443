from __future__ import annotations

import pytest

from modelplane.workloads.serving.server.config import ServerConfig, config_from_args


def test_options_win_over_environment_and_defaults_fill_the_rest():
    environ = {"MODELPLANE_MODEL_URI": "s3://models/run-1", "MODELPLANE_PORT": "9000", "MODELPLANE_MAX_BATCH_SIZE": "8"}
    config = config_from_args(["--port", "9100", "--access-log", "false", "--request-timeout-seconds", "2.5"], environ)
    assert config.model_uri == "s3://models/run-1"
    assert config.port == 9100
    assert config.max_batch_size == 8
    assert config.request_timeout_seconds == 2.5
    assert (config.header_timeout_seconds, config.body_timeout_seconds) == (5.0, 10.0)
    assert config.access_log is False
    assert config.model_name == "model"
    assert config.max_queue_size == 256


def test_the_environment_alone_is_enough(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MODELPLANE_MODEL_URI", "/models/run-1")
    monkeypatch.setenv("MODELPLANE_MODEL_NAME", "sentiment")
    config = config_from_args([])
    assert (config.model_uri, config.model_name) == ("/models/run-1", "sentiment")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "--model-uri or MODELPLANE_MODEL_URI is required"),
        (["--model-uri", "m", "--port", "eighty"], "--port='eighty': invalid literal for int()"),
        (["--model-uri", "m", "--access-log", "maybe"], "--access-log='maybe': must be true or false"),
        (["--model-uri", "m", "--max-queue-size", "0"], "max_queue_size=0: must be at least 1"),
        (["--model-uri", "s3://", "--port", "1"], "'s3://' is not an s3://bucket/key URI"),
    ],
)
def test_bad_settings_exit_naming_the_setting(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_info:
        config_from_args(argv, environ={})
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model_uri": ""}, "set --model-uri or MODELPLANE_MODEL_URI"),
        ({"model_name": "a/b"}, "model_name='a/b': use 1-64 letters"),
        ({"port": 70000}, "port=70000: must be 0-65535"),
        ({"device": "tpu"}, "device='tpu': must be auto, cpu, cuda or cuda:N"),
        ({"max_batch_size": 0}, "max_batch_size=0: must be at least 1"),
        ({"max_body_bytes": 0}, "max_body_bytes=0: must be at least 1"),
        ({"header_timeout_seconds": 0}, "header_timeout_seconds=0: must be above 0 and at most 3600"),
        ({"body_timeout_seconds": float("nan")}, "body_timeout_seconds=nan: must be above 0"),
        ({"request_timeout_seconds": 1e9}, "request_timeout_seconds=1000000000.0: must be above 0 and at most 3600"),
        ({"shutdown_timeout_seconds": 0}, "shutdown_timeout_seconds=0: must be at least 1"),
        ({"log_level": "loud"}, "log_level='loud'"),
    ],
)
def test_invalid_values_are_refused(overrides: dict[str, object], message: str):
    settings: dict[str, object] = {"model_uri": "/models/run-1", **overrides}
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ServerConfig(**settings)  # type: ignore[arg-type]
