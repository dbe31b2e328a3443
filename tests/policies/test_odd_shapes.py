"""No rule raises, whatever shape the engine sends: every input of real planned resources replaced, one at a time,
by a value of another shape (missing, unknown, empty, a scalar where a mapping was, a list of nothing useful).

A rule that raises would turn into advice (see `rule.CannotDecide`) instead of a verdict, so the checks are called
directly here: any exception fails the test, with the rule, the resource and the replaced path.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelplane.plan.engine import plan_environment
from modelplane.plan.policy_check import planned_resources
from modelplane.policies.rules.catalog import RULES
from modelplane.policies.rules.props import UNKNOWN
from modelplane.policies.rules.rule import ResourceRule, StackResource, StackRule
from modelplane.policy_config import pack_config
from modelplane.stack_config import environment_from_stack_file, read_stack_file

ROOT = Path(__file__).resolve().parents[2]
BAD_STACKS = Path(__file__).resolve().parent / "bad_stacks"
ODD_VALUES: tuple[Any, ...] = (None, UNKNOWN, "", 0.0, -1.0, "1Gi", [], {}, [None], [UNKNOWN], {"": None}, True)
PATHS_PER_RESOURCE = 24
STACK_MUTATIONS = 40


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from _paths(item, (*prefix, index))


def _replaced(inputs: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(inputs)
    target: Any = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return changed


@pytest.fixture(scope="module")
def planned() -> list[dict[str, Any]]:
    """Resources of the shipped dev stack and of the hand-written bad programs, with their configs."""
    plans = [
        plan_environment("dev", ROOT / "stacks"),
        plan_environment("raw-resources", BAD_STACKS / "raw_resources"),
        plan_environment("raw-gpus", BAD_STACKS / "raw_gpu_capacity"),
    ]
    return [resource for plan in plans for resource in planned_resources(plan)]


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return pack_config(environment_from_stack_file(read_stack_file("dev", ROOT / "stacks")))


def _rule_config(config: dict[str, Any], rule_name: str) -> dict[str, Any]:
    entry = config.get(rule_name)
    return {k: v for k, v in entry.items() if k != "enforcementLevel"} if isinstance(entry, dict) else {}


def _as_plain(value: Any) -> Any:
    """Inputs as rules see them (`props.plain`): plan.json's unknown marker as UNKNOWN."""
    if isinstance(value, dict):
        return {k: _as_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_plain(v) for v in value]
    return UNKNOWN if value in ("[unknown]", "[secret]") else value


@pytest.mark.slow
@pytest.mark.parametrize("rule", [r for r in RULES if isinstance(r, ResourceRule)], ids=lambda r: r.name)
def test_no_resource_rule_raises_on_odd_shapes(
    rule: ResourceRule, planned: list[dict[str, Any]], config: dict[str, Any]
) -> None:
    chooser = random.Random(rule.name)
    rule_config = _rule_config(config, rule.name)
    checked = 0
    for resource in planned:
        if not rule.applies_to(resource["type"]):
            continue
        inputs = _as_plain(resource["inputs"])
        paths = list(_paths(inputs))
        for path in chooser.sample(paths, min(PATHS_PER_RESOURCE, len(paths))):
            for odd in ODD_VALUES:
                changed = _replaced(inputs, path, odd)
                try:
                    rule.check(resource["type"], changed, rule_config)
                except Exception as exception:  # the point of the test: name what raised, where
                    pytest.fail(f"{rule.name} raised {exception!r} on {resource['urn']} with {path}={odd!r}")
                checked += 1
        for odd in ODD_VALUES:
            if not isinstance(odd, dict):
                rule.check(resource["type"], {"spec": odd, "metadata": odd}, rule_config)
    assert checked or not any(rule.applies_to(r["type"]) for r in planned)


def _stack(planned: list[dict[str, Any]]) -> list[StackResource]:
    return [
        StackResource(
            type=r["type"],
            name=r["name"],
            urn=r["urn"],
            props=_as_plain(r["inputs"]),
            parent=r.get("parent") or None,
            dependencies=tuple(r.get("dependencies") or ()),
        )
        for r in planned
    ]


@pytest.mark.slow
@pytest.mark.parametrize("rule", [r for r in RULES if isinstance(r, StackRule)], ids=lambda r: r.name)
def test_no_stack_rule_raises_on_odd_shapes(
    rule: StackRule, planned: list[dict[str, Any]], config: dict[str, Any]
) -> None:
    chooser = random.Random(rule.name)
    stack = _stack(planned)
    rule_config = _rule_config(config, rule.name)
    for _ in range(STACK_MUTATIONS):
        index = chooser.randrange(len(stack))
        victim = stack[index]
        paths = list(_paths(victim.props))
        if not paths:
            continue
        path, odd = chooser.choice(paths), chooser.choice(ODD_VALUES)
        mutated = StackResource(
            victim.type, victim.name, victim.urn, _replaced(victim.props, path, odd), victim.parent, victim.dependencies
        )
        try:
            rule.check([*stack[:index], mutated, *stack[index + 1 :]], rule_config)
        except Exception as exception:  # the point of the test: name what raised, where
            pytest.fail(f"{rule.name} raised {exception!r} on {victim.urn} with {path}={odd!r}")
