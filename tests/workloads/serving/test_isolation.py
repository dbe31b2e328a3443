"""One client can never hurt another: hostile requests mixed in with good ones, concurrently, fail alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx

from modelplane.workloads.serving.server.classifier import Prediction, TextClassifier
from tests.workloads.serving.conftest import sample_texts
from tests.workloads.serving.served_app import (
    INFER,
    TIMEOUT_S,
    HeldModel,
    ascii_json,
    binary_request,
    binary_texts,
    eventually,
    serve,
    text_request,
)

HOSTILE: list[dict[str, object]] = [
    {"content": ascii_json(text_request(["good", "\ud800"]))},  # a lone surrogate: valid JSON, not text
    {"content": ascii_json(text_request(["good"], id="\udfff"))},
    {"json": text_request(["   "])},
    {"json": text_request(["\u200b\x00"])},
    {"json": text_request([["nested"]], shape=[1])},
    dict(zip(("content", "headers"), binary_request(binary_texts([b"\xff\xfe"]), 1), strict=True)),
]


def test_hostile_requests_among_good_ones_fail_alone(model_dir: Path, classifier: TextClassifier):
    """The issue's case (rounds of 15 good requests and a lone surrogate) and other hostile inputs, at once."""
    texts = sample_texts(15)
    alone = [classifier.predict([text])[0].label for text in texts]

    async def round_of_requests(client: httpx.AsyncClient, hostile: dict[str, object]) -> None:
        good = [client.post(INFER, json=text_request([text])) for text in texts]
        answers = await asyncio.gather(client.post(INFER, **hostile), *good)  # type: ignore[arg-type]
        bad, *fine = answers
        assert bad.status_code == 400, bad.text
        assert [answer.status_code for answer in fine] == [200] * len(texts), [a.text for a in fine]
        assert [answer.json()["outputs"][0]["data"][0] for answer in fine] == alone

    async def scenario(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT_S) as client:
            for _ in range(3):
                await asyncio.gather(*(round_of_requests(client, hostile) for hostile in HOSTILE))

    with serve(model_dir, classifier.predict) as served:
        asyncio.run(asyncio.wait_for(scenario(served.url), TIMEOUT_S * 4))
        assert served.codes() == {"200": 3 * len(HOSTILE) * len(texts), "400": 3 * len(HOSTILE)}


def test_a_request_the_model_chokes_on_fails_alone_even_inside_a_batch(model_dir: Path, classifier: TextClassifier):
    """A text that passes every check and still makes the model fail: its batch runs again request by request."""

    def choking_model(texts: list[str]) -> list[Prediction]:
        if any("choke" in text for text in texts):
            raise RuntimeError("the tokenizer choked")
        return classifier.predict(texts)

    model = HeldModel(choking_model)
    requests = [["good film"], ["this will choke"], ["bad plot", "fine acting"], ["fun"]]

    async def scenario(served_url: str, queue_depth: Callable[[], bool]) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=served_url, timeout=TIMEOUT_S) as client:
            model.hold()
            first = asyncio.ensure_future(client.post(INFER, json=text_request(["first"])))
            await asyncio.to_thread(model.wait_until_running)
            batched = [asyncio.ensure_future(client.post(INFER, json=text_request(t))) for t in requests]
            await asyncio.to_thread(eventually, queue_depth, "every request queued behind the held one")
            model.release()
            return list(await asyncio.gather(first, *batched))

    with serve(model_dir, model.predict) as served:
        queued = sum(len(texts) for texts in requests)
        answers = asyncio.run(scenario(served.url, lambda: served.queue_depth() == queued))
        codes = served.codes()

    statuses = [answer.status_code for answer in answers]
    assert statuses == [200, 200, 500, 200, 200]
    assert answers[2].json() == {"error": "inference failed; the server's log has the cause"}
    # The requests arrive in any order, so their batch may hold them in any order.
    mixed_batch = sorted(text for texts in requests for text in texts)
    assert mixed_batch in [sorted(batch) for batch in model.batches], "the choking request shared a batch"
    assert codes == {"200": 4, "500": 1}
