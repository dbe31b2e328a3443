"""What a deployability check reports: the resource, what it needs, what is missing, and the fix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class Finding:
    check: str
    """The check's name: devices, fit, capacity, order, wiring, cost."""
    urn: str
    """The resource that cannot run as planned."""
    needs: str
    missing: str
    fix: str

    def message(self) -> str:
        return f"needs {self.needs}; {self.missing}; fix: {self.fix}"

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def field(props: Mapping[str, Any], *path: str) -> Any:
    """The value at `path` in a resource's inputs, whichever spelling the program used (camelCase as the engine
    sends it, or snake_case as raw Python dicts may carry it); None when absent."""
    value: Any = props
    for key in path:
        if not isinstance(value, Mapping):
            return None
        if key in value:
            value = value[key]
            continue
        snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
        value = value.get(snake)
    return value
