"""Where a pod may be scheduled: node labels, taints and tolerations, nodeSelector and required node affinity.

Each question answers True, False or None (a `Verdict`): None where the answer depends on a value the plan does not
know yet, so a check reports only what the plan proves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelplane.policies.deployability.quantities import as_list, as_mapping, is_unknown, value_at

Verdict = bool | None
"""True or False where the plan decides the question; None where it depends on a value not known."""

BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
"""Taint effects that keep pods off a node; PreferNoSchedule only steers them."""
EKS_TAINT_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
UNKNOWN_VALUE_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "topology.k8s.aws/zone-id",
        "topology.k8s.aws/network-node-layer-1",
        "topology.k8s.aws/network-node-layer-2",
        "topology.k8s.aws/network-node-layer-3",
    }
)
"""Labels every node carries with a value the plan cannot know (its zone, its name)."""
PROVIDER_LABEL_PREFIXES = (
    "eks.amazonaws.com/",
    "karpenter.sh/",
    "karpenter.k8s.aws/",
    "topology.k8s.aws/",
    "vpc.amazonaws.com/",
    "k8s.io/",
)
"""Label prefixes EKS, Karpenter and the VPC CNI set on nodes beyond those the model spells out; a node may carry
any label under them, with a value the plan does not show."""


def all_of(verdicts: Iterable[Verdict]) -> Verdict:
    """False if any is False, else None if any is None, else True."""
    result: Verdict = True
    for verdict in verdicts:
        if verdict is False:
            return False
        if verdict is None:
            result = None
    return result


def any_of(verdicts: Iterable[Verdict]) -> Verdict:
    """True if any is True, else None if any is None, else False."""
    result: Verdict = False
    for verdict in verdicts:
        if verdict is True:
            return True
        if verdict is None:
            result = None
    return result


def text_of(value: Any) -> str | None:
    """A known scalar as a string (labels and taint values may be written as numbers or booleans)."""
    if value is None or is_unknown(value) or isinstance(value, (Mapping, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Taint:
    key: str | None
    """None where not known."""
    value: str | None
    effect: str | None
    """Kubernetes' spelling (NoSchedule); None where not known."""

    def blocks(self) -> Verdict:
        return None if self.effect is None else self.effect in BLOCKING_EFFECTS

    def describe(self) -> str:
        value = f"={self.value}" if self.value else ""
        return f"{self.key or '?'}{value}:{self.effect or '?'}"


def taint_of(raw: Any) -> Taint:
    """A taint as Kubernetes or EKS spells it (EKS: NO_SCHEDULE)."""
    effect = text_of(value_at(as_mapping(raw), "effect"))
    if effect is not None:
        effect = EKS_TAINT_EFFECTS.get(effect, effect)
    value = value_at(as_mapping(raw), "value")
    return Taint(text_of(value_at(as_mapping(raw), "key")), "" if value is None else text_of(value), effect)


@dataclass(frozen=True)
class Toleration:
    key: str
    """'' with operator Exists: every key."""
    operator: str
    value: str
    effect: str
    """'': every effect."""
    known: bool = True

    def tolerates(self, taint: Taint) -> Verdict:
        if not self.known:
            return None
        checks: list[Verdict] = []
        if self.effect:
            checks.append(None if taint.effect is None else taint.effect == self.effect)
        if self.key or self.operator != "Exists":
            checks.append(None if taint.key is None else taint.key == self.key)
        if self.operator != "Exists":
            checks.append(None if taint.value is None else taint.value == self.value)
        return all_of(checks)


def toleration_of(raw: Any) -> Toleration:
    spec = as_mapping(raw)
    parts = {name: value_at(spec, name) for name in ("key", "operator", "value", "effect")}
    if any(is_unknown(value) for value in parts.values()) or not spec:
        return Toleration("", "Exists", "", "", known=False)
    return Toleration(
        key=text_of(parts["key"]) or "",
        operator=text_of(parts["operator"]) or "Equal",
        value=text_of(parts["value"]) or "",
        effect=text_of(parts["effect"]) or "",
    )


def tolerations_of(raw: Any) -> tuple[Toleration, ...] | None:
    """A pod's tolerations; None when the list is not known."""
    if is_unknown(raw):
        return None
    return tuple(toleration_of(item) for item in as_list(raw))


def untolerated(
    tolerations: Sequence[Toleration] | None, taints: Sequence[Taint] | None, more_taints: bool = False
) -> tuple[Verdict, list[Taint]]:
    """Whether every blocking taint is tolerated, and the taints that definitely are not. `more_taints`: the node
    may carry taints besides these (None stands for taints not known at all)."""
    if taints is None:
        return None, []
    verdicts: list[Verdict] = [None] if more_taints else []
    refused: list[Taint] = []
    for taint in taints:
        blocks = taint.blocks()
        if blocks is False:
            continue
        tolerated = None if tolerations is None else any_of(t.tolerates(taint) for t in tolerations)
        verdict = any_of([tolerated, None if blocks is None else not blocks])
        verdicts.append(verdict)
        if verdict is False:
            refused.append(taint)
    return all_of(verdicts), refused


@dataclass(frozen=True)
class NodeLabels:
    """The labels a node will carry: for each key the values it may have (None: some value not known)."""

    values: Mapping[str, frozenset[str] | None]
    maybe_prefixes: tuple[str, ...] = ()
    """Keys under these prefixes may be set by something that runs on the node (node-feature-discovery)."""
    open: bool = False
    """Any other label may be there too (nodes that label themselves through their user data)."""

    def lookup(self, key: str) -> tuple[Verdict, frozenset[str] | None]:
        """Whether the node carries `key`, and the values it may have (None: not known)."""
        if key in self.values:
            return True, self.values[key]
        if key in UNKNOWN_VALUE_LABELS:
            return True, None
        if self.open or key.startswith(self.maybe_prefixes) or key.startswith(PROVIDER_LABEL_PREFIXES):
            return None, None
        return False, frozenset()

    def with_values(self, extra: Mapping[str, frozenset[str] | None]) -> NodeLabels:
        return NodeLabels({**self.values, **extra}, self.maybe_prefixes, self.open)


@dataclass(frozen=True)
class Requirement:
    """One node selector requirement (`matchExpressions` item, or a nodeSelector entry as key In [value])."""

    key: str
    operator: str
    values: tuple[str, ...] | None
    """None where not known."""

    def matches(self, labels: NodeLabels) -> Verdict:
        present, values = labels.lookup(self.key)
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return None if present is None else not present
        if present is False:
            return self.operator == "NotIn"
        if present is None or values is None or self.values is None:
            return None
        if self.operator == "In":
            return bool(values & set(self.values))
        if self.operator == "NotIn":
            return bool(values - set(self.values))
        if self.operator in ("Gt", "Lt"):
            return _compare(self.operator, values, self.values)
        return None

    def describe(self) -> str:
        if self.operator == "In" and self.values is not None and len(self.values) == 1:
            return f"{self.key}={self.values[0]}"
        if self.operator in ("Exists", "DoesNotExist"):
            return f"{self.key} {self.operator}"
        return f"{self.key} {self.operator} [{', '.join(self.values or ('?',))}]"


def _compare(operator: str, values: frozenset[str], bounds: tuple[str, ...]) -> Verdict:
    try:
        bound = int(bounds[0])
        numbers = [int(v) for v in values]
    except (ValueError, IndexError):
        return None
    return any(n > bound if operator == "Gt" else n < bound for n in numbers)


NodeSelectorTerm = tuple[Requirement, ...]


def requirement_of(raw: Any) -> Requirement | None:
    spec = as_mapping(raw)
    key, operator, values = value_at(spec, "key"), value_at(spec, "operator"), value_at(spec, "values")
    if not isinstance(key, str) or is_unknown(key) or not isinstance(operator, str) or is_unknown(operator):
        return None
    if is_unknown(values) or any(is_unknown(v) for v in as_list(values)):
        return Requirement(key, operator, None)
    return Requirement(key, operator, tuple(str(text_of(v)) for v in as_list(values)))


def selector_requirements(selector: Any) -> tuple[Requirement, ...] | None:
    """A nodeSelector as requirements (key In [value]); None when the whole selector is not known."""
    if is_unknown(selector):
        return None
    return tuple(
        Requirement(str(key), "In", None if text_of(value) is None else (str(text_of(value)),))
        for key, value in as_mapping(selector).items()
    )


def affinity_terms(affinity: Any) -> tuple[NodeSelectorTerm, ...] | None:
    """The required node affinity's terms (ORed; each an AND of requirements); () for none, None when not known."""
    if is_unknown(affinity):
        return None
    required = value_at(as_mapping(affinity), "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution")
    if is_unknown(required):
        return None
    terms_raw = value_at(as_mapping(required), "nodeSelectorTerms")
    if is_unknown(terms_raw):
        return None
    terms: list[NodeSelectorTerm] = []
    for term in as_list(terms_raw):
        expressions = value_at(as_mapping(term), "matchExpressions")
        if is_unknown(expressions):
            return None
        requirements = [requirement_of(e) for e in as_list(expressions)]
        if any(r is None for r in requirements):
            return None
        terms.append(tuple(r for r in requirements if r is not None))
    return tuple(terms)


def term_matches(term: NodeSelectorTerm, labels: NodeLabels) -> Verdict:
    return all_of(r.matches(labels) for r in term)


@dataclass(frozen=True)
class Refusal:
    """One definite reason a pod cannot run on a node shape."""

    kind: str
    """What refuses it: 'labels', 'taints', 'namespace', 'resources', 'limits' or 'hardware'."""
    text: str
    subject: str = ""
    """What the refusal is about, for a fix: the taint, the label key, the resource."""


@dataclass(frozen=True)
class Placement:
    """Where a pod (or a device plugin's pod) may be scheduled: its nodeSelector, required node affinity and
    tolerations, as planned."""

    selector: tuple[Requirement, ...] | None
    affinity: tuple[NodeSelectorTerm, ...] | None
    tolerations: tuple[Toleration, ...] | None

    def reasons_against(
        self, labels: NodeLabels, taints: Sequence[Taint] | None, more_taints: bool = False
    ) -> tuple[Verdict, list[Refusal]]:
        """Whether such a pod may run on a node with these labels and taints, and why not where it cannot."""
        verdicts: list[Verdict] = []
        refusals: list[Refusal] = []
        if self.selector is None:
            verdicts.append(None)
        for requirement in self.selector or ():
            verdict = requirement.matches(labels)
            verdicts.append(verdict)
            if verdict is False:
                refusals.append(
                    Refusal("labels", f"nodeSelector {requirement.describe()}: {carried(labels, requirement.key)}")
                )
        if self.affinity is None:
            verdicts.append(None)
        elif self.affinity:
            verdict = any_of(term_matches(term, labels) for term in self.affinity)
            verdicts.append(verdict)
            if verdict is False:
                terms = " or ".join(" and ".join(r.describe() for r in term) for term in self.affinity)
                refusals.append(Refusal("labels", f"required node affinity ({terms}) matches none of its labels"))
        tolerated, refused = untolerated(self.tolerations, taints, more_taints)
        verdicts.append(tolerated)
        refusals.extend(Refusal("taints", f"its taint {t.describe()} is not tolerated", t.describe()) for t in refused)
        return all_of(verdicts), refusals


def carried(labels: NodeLabels, key: str) -> str:
    """What a node carries under `key`, for a message."""
    present, values = labels.lookup(key)
    if present is False:
        return f"its nodes have no {key} label"
    if values is None:
        return f"its nodes' {key} label is not known"
    return f"its nodes carry {key}={','.join(sorted(values))}"


def placement_of(pod: Mapping[str, Any]) -> Placement:
    """The placement of a pod spec (a Kubernetes PodSpec as planned)."""
    return Placement(
        selector_requirements(value_at(pod, "nodeSelector")),
        affinity_terms(value_at(pod, "affinity")),
        tolerations_of(value_at(pod, "tolerations")),
    )
