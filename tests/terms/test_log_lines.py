from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from modelplane.terms.log_lines import (
    LogFormat,
    configure_logging,
    iso_time,
    json_line,
    parse_line,
    send_to_root,
    text_line,
)


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def logged(log_format: LogFormat, emit, context=None, filters=()) -> list[str]:
    stream = io.StringIO()
    configure_logging(logging.INFO, log_format, context, stream=stream, filters=filters)
    emit(logging.getLogger("modelplane.test"))
    return stream.getvalue().splitlines()


def test_iso_time_is_utc_with_milliseconds() -> None:
    assert iso_time(0) == "1970-01-01T00:00:00.000Z"
    assert iso_time(1_785_000_000.1234) == "2026-07-25T17:20:00.123Z"


@pytest.mark.usefixtures("restore_root_logging")
def test_json_lines_carry_the_core_fields_the_context_and_the_calls_extras() -> None:
    (line,) = logged(
        LogFormat.JSON,
        lambda log: log.info("epoch %d step %d", 1, 20, extra={"step": 20, "loss": 0.25}),
        {"job": "sentiment", "rank": 0},
    )
    fields = json.loads(line)
    assert list(fields)[:4] == ["time", "level", "logger", "message"]
    assert fields["time"].endswith("Z")
    assert (fields["level"], fields["logger"], fields["message"]) == ("INFO", "modelplane.test", "epoch 1 step 20")
    assert (fields["job"], fields["rank"], fields["step"], fields["loss"]) == ("sentiment", 0, 20, 0.25)
    assert "color_message" not in fields and "args" not in fields


@pytest.mark.usefixtures("restore_root_logging")
def test_an_exception_stays_inside_its_one_json_line() -> None:
    def fail(log: logging.Logger) -> None:
        try:
            raise RuntimeError("rank 3 lost its GPU")
        except RuntimeError:
            log.exception("training failed")

    (line,) = logged(LogFormat.JSON, fail)
    fields = json.loads(line)
    assert fields["level"] == "ERROR"
    assert "Traceback" in fields["exception"] and "rank 3 lost its GPU" in fields["exception"]


@pytest.mark.usefixtures("restore_root_logging")
def test_a_diverged_loss_still_logs_as_valid_json() -> None:
    (line,) = logged(LogFormat.JSON, lambda log: log.info("loss", extra={"loss": float("nan"), "peak": float("inf")}))
    fields = json.loads(line)
    assert (fields["loss"], fields["peak"]) == ("nan", "inf")


@pytest.mark.usefixtures("restore_root_logging")
def test_text_lines_show_the_same_fields_for_a_person() -> None:
    (line,) = logged(LogFormat.TEXT, lambda log: log.warning("slow step", extra={"step": 7}), {"job": "sentiment"})
    time, rest = line.split(" ", 1)
    assert time.endswith("Z")
    assert rest == "WARNING modelplane.test: slow step job=sentiment step=7"


@pytest.mark.usefixtures("restore_root_logging")
def test_filters_on_the_handler_add_fields_to_every_line() -> None:
    class AddRequestId(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.request_id = "abc"
            return True

    (line,) = logged(LogFormat.JSON, lambda log: log.info("hello"), filters=[AddRequestId()])
    assert json.loads(line)["request_id"] == "abc"


@pytest.mark.usefixtures("restore_root_logging")
def test_a_library_with_its_own_handler_logs_through_the_root() -> None:
    library = logging.getLogger("SomeLibrary")
    own = io.StringIO()
    library.addHandler(logging.StreamHandler(own))
    library.propagate = False
    try:
        stream = io.StringIO()
        configure_logging(logging.INFO, LogFormat.JSON, {"job": "j"}, stream=stream)
        send_to_root("SomeLibrary")
        library.warning("careful")
        assert own.getvalue() == ""
        assert json.loads(stream.getvalue())["message"] == "careful"
    finally:
        library.handlers.clear()
        library.propagate = True


def test_parse_line_reads_json_log_lines_only() -> None:
    fields = {"time": "2026-01-01T00:00:00.000Z", "level": "INFO", "logger": "x", "message": "hi", "step": 3}
    assert parse_line(json_line(fields) + "\n") == fields
    assert parse_line("[rank0]: Traceback (most recent call last):") is None
    assert parse_line('{"not": "a log line"}') is None
    assert parse_line("{broken") is None


def test_text_line_of_parsed_fields_puts_the_exception_on_its_own_lines() -> None:
    fields = {"time": "t", "level": "ERROR", "logger": "x", "message": "failed", "exception": "Traceback\n  boom"}
    assert text_line(fields) == "t ERROR x: failed\nTraceback\n  boom"
