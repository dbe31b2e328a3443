"""Load the server sheds: 503 with Retry-After at once when its queue (counted in texts) is full or it is
shutting down, counted apart from `requests_total` so that it never burns the error budget."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import httpx

from modelplane.workloads.serving.server.app import ServingState
from modelplane.workloads.serving.server.classifier import Prediction
from tests.workloads.serving.served_app import (
    INFER,
    TIMEOUT_S,
    HeldModel,
    Served,
    eventually,
    serve,
    text_request,
)


def test_a_full_queue_of_texts_answers_503_with_retry_after_at_once(model_dir: Path):
    """One request held in the model and four texts waiting in a four-text queue: more texts are turned away,
    whatever the number of requests."""
    model = HeldModel()

    async def scenario(served: Served) -> None:
        async with httpx.AsyncClient(base_url=served.url, timeout=TIMEOUT_S) as client:
            model.hold()
            running = asyncio.ensure_future(client.post(INFER, json=text_request(["running"])))
            await asyncio.to_thread(model.wait_until_running)
            waiting = asyncio.ensure_future(client.post(INFER, json=text_request(["a", "b", "c"])))
            await asyncio.to_thread(eventually, lambda: served.queue_depth() == 3, "three texts queued")
            two_more = await client.post(INFER, json=text_request(["d", "e"]))
            assert two_more.status_code == 503
            assert two_more.headers["Retry-After"] == "1"
            assert "3 texts are waiting and the queue holds 4 (max_queue_size)" in two_more.json()["error"]
            one_more = asyncio.ensure_future(client.post(INFER, json=text_request(["f"])))
            await asyncio.to_thread(eventually, lambda: served.queue_depth() == 4, "the last text fits")
            model.release()
            answers = await asyncio.gather(running, waiting, one_more)
            assert [a.status_code for a in answers] == [200, 200, 200]

    with serve(model_dir, model.predict, max_queue_size=4) as served:
        asyncio.run(asyncio.wait_for(scenario(served), TIMEOUT_S))
        assert served.codes() == {"200": 3}, "the 503 is not among the answered requests"
        assert served.shed() == {"queue_full": 1}
    assert "d" not in model.computed


def test_a_server_shutting_down_turns_requests_away_as_shed_load(model_dir: Path):
    state = ServingState()
    with serve(model_dir, HeldModel().predict, state=state) as served:
        state.accepting = False  # what the SIGTERM handler does first
        with httpx.Client(base_url=served.url, timeout=TIMEOUT_S) as client:
            refused = client.post(INFER, json=text_request(["late"]))
            ready = client.get("/v2/health/ready")
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.json() == {"error": "the server is shutting down; retry"}
    assert ready.status_code == 503
    assert served.shed() == {"draining": 1}
    assert served.codes() == {}


def test_a_server_waiting_for_its_model_answers_503_that_counts_against_it(model_dir: Path):
    """Unlike shed load, a server without its model is failing its clients: the error budget must see it."""
    waiting = ServingState(model_loaded=False)
    with serve(model_dir, HeldModel().predict, state=waiting) as served, httpx.Client(base_url=served.url) as client:
        refused = client.post(INFER, json=text_request(["early"]))
    assert refused.status_code == 503
    assert refused.json() == {"error": "the model is not loaded yet; retry"}
    assert served.codes() == {"503": 1}
    assert served.shed() == {}


def test_a_failing_model_answers_500_in_json_and_the_next_request_is_served(model_dir: Path):
    def flaky_model(texts: list[str]) -> list[Prediction]:
        if texts == ["boom"]:
            raise RuntimeError("CUDA out of memory")
        if texts == ["nan"]:
            return [Prediction("neutral", [math.nan, math.nan, math.nan])]
        return [Prediction("neutral", [0.25, 0.5, 0.25]) for _ in texts]

    with serve(model_dir, flaky_model) as served, httpx.Client(base_url=served.url, timeout=TIMEOUT_S) as client:
        failed = client.post(INFER, json=text_request(["boom"]))
        not_a_number = client.post(INFER, json=text_request(["nan"]))
        fine = client.post(INFER, json=text_request(["fine"]))
    assert failed.status_code == 500
    assert failed.json() == {"error": "inference failed; the server's log has the cause"}
    assert not_a_number.status_code == 500, "NaN is not JSON: refused rather than sent"
    assert not_a_number.headers["content-type"] == "application/json"
    assert fine.status_code == 200
    assert served.codes() == {"500": 2, "200": 1}
