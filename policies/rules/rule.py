"""The two kinds of rule: a check over one resource's inputs, and a check over the whole stack.

A rule's logic is a plain function over plain data (see `props.plain`); `.policy()` wraps it in
the Policy SDK's own policy class, whose `validate` reports each message through `report_violation`.

A rule that cannot decide (a shape it cannot read, a figure it does not know, or a check that raised)
never blocks and never stays silent: it says why as an advisory finding. The engine already has that
channel (a policy that raises `UnknownValueError` gets an advisory diagnostic naming it), so `validate`
reports what it could decide first, then raises `CannotDecide` with the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from modelplane.policies.rules.props import plain


class Undecided(str):
    """A check's message that it could not decide, and why: reported as advice, never as a violation."""


class CannotDecide(UnknownValueError):
    """What `validate` raises after reporting its violations when some of its checks could not decide."""

    def __init__(self, reasons: Sequence[str]):
        Exception.__init__(self, "; ".join(reasons))
        self.reasons = list(reasons)
        self.message = "cannot decide: " + "; ".join(reasons)


ResourceCheck = Callable[[str, dict[str, Any], Mapping[str, Any]], list[str]]
"""(resource type, inputs as plain data, the rule's config) -> violation messages (`Undecided` ones are advice)."""

ResourceTypes = frozenset[str] | Callable[[str], bool]
"""The resource types a rule reads: a set of type tokens, or a predicate over them (`*Patch` types, any CRD)."""


def _raised(exception: Exception) -> Undecided:
    return Undecided(f"the check failed on this input ({type(exception).__name__}: {exception})")


def _report(messages: list[tuple[str, str | None]], report_violation: ReportViolation) -> None:
    """Report the decided messages, then raise `CannotDecide` with the undecided ones."""
    undecided = [message for message, _ in messages if isinstance(message, Undecided)]
    for message, urn in messages:
        if not isinstance(message, Undecided):
            report_violation(message, urn)
    if undecided:
        raise CannotDecide(undecided)


@dataclass(frozen=True)
class StackResource:
    """One resource of the stack as a stack rule sees it: plain inputs, and its relations by URN."""

    type: str
    name: str
    urn: str
    props: dict[str, Any]
    parent: str | None = None
    dependencies: tuple[str, ...] = ()
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    """A stack rule's violation (an `Undecided` message: advice) and the resource it is about (None: the stack)."""

    message: str
    urn: str | None = None


StackCheck = Callable[[list[StackResource], Mapping[str, Any]], list[Finding]]


def _schema(properties: Mapping[str, dict[str, Any]]) -> PolicyConfigSchema | None:
    return PolicyConfigSchema(properties=dict(properties)) if properties else None


@dataclass(frozen=True)
class ResourceRule:
    name: str
    description: str
    """What the rule enforces, in one line."""
    why: str
    """Why it matters, for the README's table."""
    resource_types: ResourceTypes
    check: ResourceCheck
    config_properties: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """JSON schema of the rule's config properties (besides its enforcement level)."""

    kind = "resource"

    def applies_to(self, resource_type: str) -> bool:
        if callable(self.resource_types):
            return self.resource_types(resource_type)
        return resource_type in self.resource_types

    def messages(self, resource_type: str, props: dict[str, Any], config: Mapping[str, Any]) -> list[str]:
        """The check's messages for one resource; a check that raises becomes an `Undecided` message."""
        if not self.applies_to(resource_type):
            return []
        try:
            return self.check(resource_type, props, config)
        except Exception as exception:  # any input the engine sends must yield a finding, not a crash
            return [_raised(exception)]

    def policy(self) -> ResourceValidationPolicy:
        def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
            messages = self.messages(args.resource_type, plain(args.props), args.get_config())
            _report([(message, None) for message in messages], report_violation)

        return ResourceValidationPolicy(
            name=self.name,
            description=self.description,
            validate=validate,
            config_schema=_schema(self.config_properties),
        )


def _stack_resource(resource: PolicyResource) -> StackResource:
    return StackResource(
        type=resource.resource_type,
        name=resource.name,
        urn=resource.urn,
        props=plain(resource.props),
        parent=resource.parent.urn if resource.parent is not None else resource.opts.parent,
        dependencies=tuple(d.urn for d in resource.dependencies),
        property_dependencies={key: tuple(d.urn for d in deps) for key, deps in resource.property_dependencies.items()},
    )


@dataclass(frozen=True)
class StackRule:
    name: str
    description: str
    why: str
    check: StackCheck
    config_properties: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    kind = "stack"

    def findings(self, resources: list[StackResource], config: Mapping[str, Any]) -> list[Finding]:
        """The check's findings; a check that raises becomes one `Undecided` finding."""
        try:
            return self.check(resources, config)
        except Exception as exception:  # any stack must yield a finding, not a crash
            return [Finding(_raised(exception))]

    def policy(self) -> StackValidationPolicy:
        def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
            findings = self.findings([_stack_resource(r) for r in args.resources], args.get_config())
            _report([(finding.message, finding.urn) for finding in findings], report_violation)

        return StackValidationPolicy(
            name=self.name,
            description=self.description,
            validate=validate,
            config_schema=_schema(self.config_properties),
        )


Rule = ResourceRule | StackRule


def children_of(urn: str, resources: list[StackResource]) -> list[StackResource]:
    """Every descendant of `urn` (children, their children, ...)."""
    by_parent: dict[str, list[StackResource]] = {}
    for resource in resources:
        if resource.parent:
            by_parent.setdefault(resource.parent, []).append(resource)
    found: list[StackResource] = []
    pending = [urn]
    while pending:
        for child in by_parent.get(pending.pop(), []):
            found.append(child)
            pending.append(child.urn)
    return found
