from __future__ import annotations

from pathlib import Path

from modelplane.alert_catalogue import alert_catalogue, markdown_table
from modelplane.workloads.serving.spec import Batching

README = Path(__file__).resolve().parents[2] / "README.md"


def test_catalogue_covers_every_shipped_rule_set() -> None:
    entries = alert_catalogue()
    assert {e.rule_set for e in entries} == {"GPU", "platform", "training (per job)", "inference (per service)"}
    assert len({e.alert for e in entries}) == len(entries)
    assert all(e.severity in ("critical", "warning", "info") and e.meaning and e.action for e in entries)


def test_readme_holds_the_current_catalogue() -> None:
    assert markdown_table() in README.read_text(), (
        "README's alert catalogue is stale: paste `modelplane alerts --markdown`"
    )


def test_the_catalogues_numbers_are_an_inference_services_defaults() -> None:
    (queue,) = [e for e in alert_catalogue() if e.alert == "InferenceQueueSaturated"]
    assert f"its {Batching().max_queue_size} texts" in queue.meaning
