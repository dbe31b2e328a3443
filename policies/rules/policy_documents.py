"""Reading IAM policy documents the way resources carry them, for the IAM and S3 rules.

A document arrives as a JSON string or as an object (the SDK's `PolicyDocumentArgs`); `Statement` is one
statement or a list; `Action`, `Resource` and a principal's values are a string or a list of strings. Condition
keys and operators are case-insensitive in IAM, so they are compared lowercased.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from modelplane.policies.rules.props import is_unknown
from modelplane.policies.rules.rule import Undecided

PRINCIPAL_NARROWING_KEYS = frozenset(
    {
        "aws:principalaccount",
        "aws:principalarn",
        "aws:principalorgid",
        "aws:principalorgpaths",
        "aws:sourceaccount",
        "aws:sourcearn",
        "aws:sourceorgid",
        "aws:sourceorgpaths",
        "aws:sourceowner",
        "aws:sourcevpc",
        "aws:sourcevpce",
        "kms:calleraccount",
    }
)
"""Condition keys that narrow 'any principal' to an account, an organisation, named ARNs or a network path."""


@dataclass(frozen=True)
class Statement:
    """One statement of a document, and where it sits (`Statement[1] (Sid)`) for messages."""

    index: int
    body: dict[str, Any]

    @property
    def where(self) -> str:
        sid = self.body.get("Sid")
        return f"Statement[{self.index}]" + (f" ({sid})" if isinstance(sid, str) and sid else "")

    @property
    def allows(self) -> bool:
        effect = self.body.get("Effect")
        return isinstance(effect, str) and effect.lower() == "allow"

    @property
    def denies(self) -> bool:
        effect = self.body.get("Effect")
        return isinstance(effect, str) and effect.lower() == "deny"


def statements(document: Any, field: str = "policy") -> list[Statement] | Undecided | None:
    """The document's statements; None when it is absent or not yet known; `Undecided` when it cannot be read."""
    if document is None or is_unknown(document):
        return None
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as error:
            return Undecided(f"{field} is not valid JSON ({error.msg} at {error.pos}); cannot read its statements")
    if not isinstance(document, dict):
        return Undecided(f"{field} is a JSON {type(document).__name__}, not an object; cannot read its statements")
    body = document.get("Statement")
    if is_unknown(body):
        return None
    items = body if isinstance(body, list) else [body]
    unreadable = [i for i, item in enumerate(items) if not isinstance(item, dict) and not is_unknown(item)]
    if body is None or unreadable:
        detail = "has no Statement" if body is None else f"Statement{unreadable} is not an object"
        return Undecided(f"{field} {detail}; cannot read its statements")
    return [Statement(i, item) for i, item in enumerate(items) if isinstance(item, dict)]


def strings(value: Any) -> list[str]:
    """A string-or-list element as a list of its strings (values not yet known left out)."""
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str)]


def unreadable_elements(statement: Statement, *keys: str) -> list[str]:
    """The keys among `keys` whose value is neither a string, a list of strings, nor unknown."""
    bad = []
    for key in keys:
        value = statement.body.get(key)
        values = value if isinstance(value, list) else [value]
        if value is not None and not all(isinstance(v, str) or is_unknown(v) for v in values):
            bad.append(key)
    return bad


def principals(principal: Any) -> dict[str, list[str]]:
    """`Principal` as {type: [values]}: '*' is {'*': ['*']}; {'AWS': 'arn'} is {'AWS': ['arn']}."""
    if isinstance(principal, str):
        return {"*": [principal]}
    if isinstance(principal, dict):
        return {str(kind): strings(values) for kind, values in principal.items()}
    return {}


def names_anyone(principal: Any) -> bool:
    """'*', {'AWS': '*'}, {'AWS': ['*']}, or any principal type listing '*'."""
    return any("*" in values for values in principals(principal).values())


def positive_conditions(statement: Statement) -> dict[str, list[str]]:
    """Condition keys (lowercased) that a request must match for the statement to apply, with their values.

    Left out, since they do not narrow who or what the statement applies to: negated operators (StringNotEquals),
    `...IfExists` and `ForAllValues:` ones (a request without the key passes), and `Null`.
    """
    found: dict[str, list[str]] = {}
    condition = statement.body.get("Condition")
    if not isinstance(condition, dict):
        return found
    for operator, tests in condition.items():
        name = str(operator).lower()
        negated = "not" in name.split(":")[-1]
        vacuous = name.endswith("ifexists") or name.startswith("forallvalues:") or name == "null"
        if negated or vacuous or not isinstance(tests, dict):
            continue
        for key, values in tests.items():
            # One value or a list; a JSON scalar reads as its JSON text ("false", ["false"] and false alike).
            listed = values if isinstance(values, list) else [values]
            found.setdefault(str(key).lower(), []).extend(_condition_text(value) for value in listed)
    return found


def _condition_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value) if value is None or isinstance(value, (bool, int, float)) else repr(value)


def narrows_principal(statement: Statement) -> bool:
    """The statement holds a condition that narrows 'any principal' to named accounts, ARNs or networks."""
    return any(
        key in PRINCIPAL_NARROWING_KEYS and values and all(value != "*" for value in values)
        for key, values in positive_conditions(statement).items()
    )
