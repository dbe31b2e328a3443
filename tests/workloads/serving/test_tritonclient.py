"""What a tritonclient user sees, with the client's defaults (binary tensors in and out): hostile requests fail
alone with the protocol's error, overload and unknown models come back as errors the client can read."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from modelplane.workloads.serving.server.classifier import TextClassifier
from tests.workloads.serving.conftest import LABELS, sample_texts
from tests.workloads.serving.served_app import TIMEOUT_S, HeldModel, Served, eventually, serve


def client_for(served: Served) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(
        url=served.address, connection_timeout=TIMEOUT_S, network_timeout=TIMEOUT_S, concurrency=8
    )


def text_input(texts: list[object]) -> triton.InferInput:
    """The texts as tritonclient sends them by default: a BYTES tensor in the binary extension."""
    column = triton.InferInput("text", [len(texts)], "BYTES")
    column.set_data_from_numpy(np.array(texts, dtype=object))
    return column


def status_of(call: Callable[[], object]) -> tuple[str, str]:
    """The HTTP status and message of the error `call` raises."""
    with pytest.raises(InferenceServerException) as raised:
        call()
    return str(raised.value.status()), raised.value.message()


def test_hostile_tritonclient_requests_fail_alone_beside_good_ones(model_dir: Path, classifier: TextClassifier):
    texts = sample_texts(24)
    alone = [classifier.predict([text])[0].label for text in texts]
    hostile: list[list[object]] = [[b"caf\xe9"], ["   "], ["\u200b"], [b""], ["fine", "x" * 101]]
    with serve(model_dir, classifier.predict) as served:
        client = client_for(served)
        good = [client.async_infer("model", [text_input([text])]) for text in texts]

        def refused(row: list[object]) -> tuple[str, str]:
            return status_of(lambda: client.infer("model", [text_input(row)]))

        errors = [refused(row) for row in hostile]
        answers = [request.get_result(timeout=TIMEOUT_S) for request in good]
        client.close()

    assert [status for status, _ in errors] == ["400"] * len(hostile)
    assert "binary text 0 is not valid UTF-8" in errors[0][1]
    assert all("is blank" in message for _, message in errors[1:4])
    assert "has 101 characters" in errors[4][1]
    labels = [answer.as_numpy("label")[0] for answer in answers]
    assert [label.decode() for label in labels] == alone
    assert set(alone) <= set(LABELS)


def test_overload_and_unknown_models_reach_tritonclient_as_readable_errors(model_dir: Path):
    model = HeldModel()
    with serve(model_dir, model.predict, max_queue_size=1) as served:
        client = client_for(served)
        model.hold()
        running = threading.Thread(target=lambda: client.infer("model", [text_input(["running"])]))
        running.start()
        model.wait_until_running()
        waiting = client.async_infer("model", [text_input(["waiting"])])
        eventually(lambda: served.queue_depth() == 1, "one text queued")
        overloaded = status_of(lambda: client.infer("model", [text_input(["too many"])]))
        unknown = status_of(lambda: client.infer("other", [text_input(["a"])]))
        model.release()
        running.join(TIMEOUT_S)
        assert waiting.get_result(timeout=TIMEOUT_S).as_numpy("label").shape == (1,)
        client.close()

    assert overloaded[0] == "503"
    assert "server overloaded: 1 texts are waiting and the queue holds 1" in overloaded[1]
    assert unknown == ("404", "model 'other' not found; this server serves 'model'")
    assert served.shed() == {"queue_full": 1}
