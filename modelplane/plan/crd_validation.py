"""Validate rendered Karpenter and Kueue objects against the CRD schemas of the chart versions the platform pins.

The schemas under `crd_schemas/` are the `openAPIV3Schema` of each served version of the CRDs, copied from the
projects' repositories at the pinned tags with `description` fields removed (`crd_schemas/SOURCES.md` names the
repository, tag, commit and path of each). One file per served version and kind: `<group>_<version>_<Kind>.json`.

What is checked, the way the API server would:

- Structure, types, enums, patterns, lengths, bounds and `required` fields, with the `jsonschema` library
  (Draft 4, the dialect CRD schemas are written in), after applying the schema's `default`s as the API server
  does before it validates; `x-kubernetes-int-or-string` nodes take an integer or a string; `nullable` nodes take
  null.
- Unknown fields. The API server silently prunes a field its structural schema does not name, so a misspelt or
  misplaced field would be dropped without a word; here it is a problem. A field is unknown when its object's
  schema node lists `properties` (or none at all) and has neither `additionalProperties` nor
  `x-kubernetes-preserve-unknown-fields: true`. Only the root `metadata` (an ObjectMeta) is open; its name,
  namespace, labels and annotations are checked lightly.
- `x-kubernetes-list-type`: `set` (no duplicate items) and `map` (no two items with the same
  `x-kubernetes-list-map-keys`).
- `format`: `int32` and `int64` ranges, and `date-time` as RFC 3339.

What is not checked: the CEL rules in `x-kubernetes-validations` (Karpenter's restricted label domains and
requirement operators, Kueue's cross-field rules such as flavors covering exactly `coveredResources`, immutability
and transition rules that need the old object). None of them is trivial to evaluate without a CEL implementation
with Kubernetes' extension libraries, so all are ignored: an object that passes here can still be rejected by one.

The plan's placeholders for values unknown before deployment ("[unknown]") and for secrets ("[secret]"; see
`modelplane.plan.mocks`) stand for any value: a problem whose value is a placeholder is not reported.

Kueue serves `v1beta2` (the storage version from Kueue 0.15) and the deprecated `v1beta1`; both are vendored, and
new objects should use `v1beta2` (where ClusterQueue's `spec.cohort` is `spec.cohortName`).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator, FormatChecker, ValidationError, validators
from jsonschema.protocols import Validator

KARPENTER_VERSION = "1.14.1"
"""Karpenter chart (oci://public.ecr.aws/karpenter/karpenter) and app version whose CRDs are vendored."""
KUEUE_VERSION = "0.19.2"
"""Kueue chart (oci://registry.k8s.io/kueue/charts/kueue) and app version whose CRDs are vendored."""

SCHEMA_DIR = Path(__file__).parent / "crd_schemas"

# Stand-ins the offline plan puts where a value is not known until deployment, or is a secret.
PLACEHOLDERS = frozenset({"[unknown]", "[secret]"})

_FILE_NAME = re.compile(r"^(?P<group>[a-z0-9.-]+)_(?P<version>v[0-9a-z]+)_(?P<kind>[A-Za-z0-9]+)\.json$")
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

# The root `metadata` node of a CRD schema is a bare `type: object`: the API server validates ObjectMeta itself.
# These are the parts of ObjectMeta a rendered object sets; the rest stays open.
_STRING_MAP: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}
_OBJECT_META: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": _DNS_SUBDOMAIN},
        "generateName": {"type": "string"},
        "namespace": {"type": "string", "maxLength": 63, "pattern": _DNS_LABEL},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
    "additionalProperties": True,
    "anyOf": [{"required": ["name"]}, {"required": ["generateName"]}],
}


def _schema_files() -> dict[tuple[str, str], Path]:
    files: dict[tuple[str, str], Path] = {}
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path.name}: CRD schema files are named <group>_<version>_<Kind>.json")
        files[(f"{match['group']}/{match['version']}", match["kind"])] = path
    return files


_SCHEMA_FILES = _schema_files()

VALIDATED_KINDS: frozenset[tuple[str, str]] = frozenset(_SCHEMA_FILES)
"""(apiVersion, kind) of every object `crd_schema_problems` validates."""


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


_SERVED_VERSIONS: dict[tuple[str, str], list[str]] = {}
for _api_version, _kind in sorted(VALIDATED_KINDS):
    _SERVED_VERSIONS.setdefault((_group(_api_version), _kind), []).append(_api_version)


# --- schema preparation -------------------------------------------------------------------------------------------


def _is_object_node(node: Mapping[str, Any]) -> bool:
    return node.get("type") == "object" or "properties" in node


def _prepared(node: Any, *, root: bool = False) -> Any:
    """A copy of a structural schema node that `jsonschema` checks the way the API server does."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _prepared(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = _prepared(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [_prepared(sub) for sub in value]
        else:
            out[key] = value
    if root and "metadata" in out.get("properties", {}):
        out["properties"] = {**out["properties"], "metadata": _OBJECT_META}
    if out.get("x-kubernetes-int-or-string") and "type" not in out and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if (
        _is_object_node(out)
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
        and not out.get("x-kubernetes-embedded-resource")
    ):
        out["additionalProperties"] = False
    return out


# --- the validator --------------------------------------------------------------------------------------------


def _unknown_fields(validator: Validator, allowed: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[Any]:
    if allowed is False and validator.is_type(instance, "object"):
        known = schema.get("properties", {})
        for name in instance:
            if name not in known:
                yield ValidationError(
                    "unknown field: not in the CRD schema, so the API server would silently drop it", path=[name]
                )
        return
    yield from Draft4Validator.VALIDATORS["additionalProperties"](validator, allowed, instance, schema)


def _required(validator: Validator, required: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[Any]:
    if validator.is_type(instance, "object"):
        for name in required:
            if name not in instance:
                yield ValidationError("required field is missing", path=[name])


def _list_type(validator: Validator, list_type: Any, instance: Any, schema: Mapping[str, Any]) -> Iterator[Any]:
    if not validator.is_type(instance, "array"):
        return
    seen: dict[str, int] = {}
    keys = schema.get("x-kubernetes-list-map-keys") or []
    for index, item in enumerate(instance):
        if list_type == "set":
            identity = json.dumps(item, sort_keys=True)
            what = f"duplicate value {item!r} in a list of type set"
        elif list_type == "map" and isinstance(item, dict) and keys:
            values = {key: item.get(key) for key in keys}
            identity = json.dumps(values, sort_keys=True)
            what = "duplicate entry with " + ", ".join(f"{k}={v!r}" for k, v in values.items())
        else:
            continue
        if identity in seen:
            yield ValidationError(f"{what} (also at index {seen[identity]})", path=[index])
        else:
            seen[identity] = index


def _integer(checker: Any, instance: Any) -> bool:
    """Integers, and floats with no fractional part (the Pulumi engine carries every number as a float)."""
    if isinstance(instance, bool):
        return False
    return isinstance(instance, int) or (isinstance(instance, float) and instance.is_integer())


_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("int32")
def _int32(instance: object) -> bool:
    return not isinstance(instance, int | float) or isinstance(instance, bool) or -(2**31) <= instance < 2**31


@_FORMATS.checks("int64")
def _int64(instance: object) -> bool:
    return not isinstance(instance, int | float) or isinstance(instance, bool) or -(2**63) <= instance < 2**63


@_FORMATS.checks("date-time", raises=ValueError)
def _date_time(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    if not _RFC3339.match(instance):
        raise ValueError("not an RFC 3339 date-time")
    datetime.fromisoformat(instance.upper().replace("Z", "+00:00"))
    return True


_CrdValidator = validators.extend(
    Draft4Validator,
    validators={
        "additionalProperties": _unknown_fields,
        "required": _required,
        "x-kubernetes-list-type": _list_type,
    },
    type_checker=Draft4Validator.TYPE_CHECKER.redefine("integer", _integer),
)


@cache
def _validator(api_version: str, kind: str) -> Validator:
    raw = json.loads(_SCHEMA_FILES[(api_version, kind)].read_text())
    return _CrdValidator(_prepared(raw, root=True), format_checker=_FORMATS)


def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    """The vendored `openAPIV3Schema` of a validated kind, as published (without descriptions)."""
    loaded: dict[str, Any] = json.loads(_SCHEMA_FILES[(api_version, kind)].read_text())
    return loaded


# --- defaulting -----------------------------------------------------------------------------------------------


def _with_defaults(value: Any, schema: Mapping[str, Any]) -> Any:
    """`value` with the schema's defaults filled in, as the API server does before it validates."""
    if isinstance(value, dict) and _is_object_node(schema):
        out = dict(value)
        properties: Mapping[str, Any] = schema.get("properties", {})
        for name, sub in properties.items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = _with_defaults(out[name], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in out:
                if name not in properties:
                    out[name] = _with_defaults(out[name], extra)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_with_defaults(item, schema["items"]) for item in value]
    return value


# --- reporting ------------------------------------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _path(parts: Iterator[Any] | Any) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(str(part)):
            text += f".{part}" if text else str(part)
        else:
            text += f"[{json.dumps(str(part))}]"
    return text or "(root)"


def _message(error: ValidationError) -> str:
    if (
        error.validator == "anyOf"
        and isinstance(error.schema, Mapping)
        and error.schema.get("x-kubernetes-int-or-string")
    ):
        return f"{error.instance!r} is not an integer or a string"
    if error.validator == "pattern" and error.validator_value == _DNS_SUBDOMAIN:
        return f"{error.instance!r} is not a valid name: lowercase letters, digits, '-' and '.' (RFC 1123 subdomain)"
    if error.validator == "pattern" and error.validator_value == _DNS_LABEL:
        return f"{error.instance!r} is not a valid namespace: lowercase letters, digits and '-' (RFC 1123 label)"
    if error.validator == "anyOf" and error.schema is _OBJECT_META:
        return "name (or generateName) is required"
    return error.message


def _is_placeholder(value: Any) -> bool:
    return isinstance(value, str) and value in PLACEHOLDERS


def crd_schema_problems(manifest: Mapping[str, Any]) -> list[str]:
    """Problems with a rendered object against the CRD schema of its apiVersion and kind, as `path: message`.

    [] when the object is valid, and for objects of kinds not vendored here. An object of a vendored kind at an
    apiVersion the pinned CRDs do not serve is one problem.
    """
    api_version, kind = manifest.get("apiVersion"), manifest.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return []
    if (api_version, kind) not in VALIDATED_KINDS:
        served = _SERVED_VERSIONS.get((_group(api_version), kind))
        if served:
            return [f"apiVersion: {kind} is not served at {api_version} by the pinned CRDs; use {' or '.join(served)}"]
        return []
    schema = _validator(api_version, kind).schema
    instance = _with_defaults(dict(manifest), schema)
    problems: list[tuple[str, str]] = []
    for error in _validator(api_version, kind).iter_errors(instance):
        if _is_placeholder(error.instance):
            continue
        problems.append((_path(error.absolute_path), _message(error)))
    return [f"{path}: {message}" for path, message in sorted(set(problems))]
