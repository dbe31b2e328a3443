"""Queries over the resources a program registered under mocks, for assertions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from modelplane.plan.mocks import RecordedResource


class Registered:
    """The resources one program registered, parents before children (see `in_tree_order`)."""

    def __init__(self, resources: list[RecordedResource]):
        self.resources = resources

    def __iter__(self) -> Iterator[RecordedResource]:
        return iter(self.resources)

    def __len__(self) -> int:
        return len(self.resources)

    def of_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> RecordedResource:
        matches = [r for r in self.of_type(type_) if name is None or r.name == name]
        assert len(matches) == 1, f"expected one {type_} named {name}, found {[r.name for r in matches]}"
        return matches[0]

    def named(self, name: str) -> RecordedResource:
        matches = [r for r in self.resources if r.name == name]
        assert len(matches) == 1, f"expected one resource named {name}, found {len(matches)}"
        return matches[0]

    def children_of(self, parent: RecordedResource) -> list[RecordedResource]:
        return [r for r in self.resources if r.parent == parent.urn]

    def types(self) -> set[str]:
        return {r.type for r in self.resources}


def dig(value: Any, *path: str | int) -> Any:
    """value[path[0]][path[1]]..., None where the path does not exist."""
    for part in path:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def assert_rejected_before_children(
    run_program: Callable[..., Registered], build: Callable[[], object], message: str, registered: Sequence[str]
) -> None:
    """`build` raises one ValueError matching `message`, after registering only resources of the `registered` types."""
    errors: list[str] = []

    def program() -> None:
        try:
            build()
        except ValueError as error:
            errors.append(str(error))

    resources = run_program(program)
    assert len(errors) == 1
    assert re.search(message, errors[0]), errors[0]
    assert [r.type for r in resources] == list(registered)
