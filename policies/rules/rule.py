"""The two kinds of rule: a check over one resource's inputs, and a check over the whole stack.

A rule's logic is a plain function over plain data (see `props.plain`); `.policy()` wraps it in
the Policy SDK's own policy class, whose `validate` reports each message through `report_violation`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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

from modelplane.policies.rules.props import plain

ResourceCheck = Callable[[str, dict[str, Any], Mapping[str, Any]], list[str]]
"""(resource type, inputs as plain data, the rule's config) -> violation messages."""


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
    """A stack rule's violation: its message and the resource it is about (None: the stack as a whole)."""

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
    resource_types: frozenset[str]
    check: ResourceCheck
    config_properties: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """JSON schema of the rule's config properties (besides its enforcement level)."""

    kind = "resource"

    def policy(self) -> ResourceValidationPolicy:
        def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
            if args.resource_type not in self.resource_types:
                return
            for message in self.check(args.resource_type, plain(args.props), args.get_config()):
                report_violation(message, None)

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

    def policy(self) -> StackValidationPolicy:
        def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
            resources = [_stack_resource(r) for r in args.resources]
            for finding in self.check(resources, args.get_config()):
                report_violation(finding.message, finding.urn)

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
