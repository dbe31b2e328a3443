"""Mocks standing in for the Pulumi engine and cloud providers during an offline plan.

The mock monitor records what the engine would receive for each resource (type, name,
parent, inputs, dependencies, provider) so the plan can show it, diff it and check it.
Providers' computed outputs get plausible, deterministic placeholder values, and the
record is the same from run to run: see `in_tree_order` and `_recorded_value`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import MockCallArgs, MockResourceArgs
from pulumi.runtime.mocks import MockMonitor

ACCOUNT_ID = "123456789012"
SECRET_PLACEHOLDER = "[secret]"
# The SDK's marker for a secret value in serialised properties.
_SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


@dataclass
class RecordedResource:
    """One resource as the engine would have registered it."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    dependencies: list[str] = field(default_factory=list)
    provider: str = ""


def _recorded_value(value: Any) -> Any:
    """`value` as the plan holds it: secrets as a placeholder, so none reaches the plan; unknowns marked; and
    object keys sorted, because the order of a protobuf Struct's keys depends on the protobuf backend."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG_KEY) == _SECRET_SIG:
            return SECRET_PLACEHOLDER
        return {key: _recorded_value(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_recorded_value(item) for item in value]
    if value == _UNKNOWN:
        return "[unknown]"
    return value


def in_tree_order(resources: Iterable[RecordedResource]) -> list[RecordedResource]:
    """Depth first, each parent before its children, siblings by type then name.

    The SDK registers resources from a thread pool, so the order they arrive in changes from run
    to run; this order depends only on what was registered. A resource whose parent was not
    recorded (the root stack's children, default providers) is a root.
    """
    resources = list(resources)
    recorded_urns = {resource.urn for resource in resources}
    children: defaultdict[str, list[RecordedResource]] = defaultdict(list)
    for resource in resources:
        children[resource.parent if resource.parent in recorded_urns else ""].append(resource)
    ordered: list[RecordedResource] = []

    def add_children_of(urn: str) -> None:
        # Popped, so a URN registered twice (an error the real engine would refuse) still lists its children once.
        for child in sorted(children.pop(urn, []), key=lambda resource: (resource.type, resource.name)):
            ordered.append(child)
            add_children_of(child.urn)

    add_children_of("")
    return ordered


class RecordingMonitor(MockMonitor):
    """A MockMonitor that also keeps each registration's parent, dependencies and inputs."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self._arrivals: list[RecordedResource] = []

    def recorded(self) -> list[RecordedResource]:
        """Every resource registered so far (the root stack aside), in tree order."""
        return in_tree_order(self._arrivals)

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # The engine leaves the root stack out of its children's type chain.
        if parent.split("::")[2:3] == ["pulumi:pulumi:Stack"]:
            parent = ""
        return super().make_urn(parent, type_, name)

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            raw_inputs = json_format.MessageToDict(request.object, preserving_proto_field_name=True)
            self._arrivals.append(
                RecordedResource(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    parent=request.parent,
                    custom=bool(request.custom),
                    inputs=_recorded_value(raw_inputs),
                    dependencies=sorted(set(request.dependencies)),
                    provider=request.provider,
                )
            )
        return response


def _short_hash(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:12]


AWS_ID_PREFIXES = {
    "aws:ec2/securityGroup:SecurityGroup": "sg-",
    "aws:ec2/vpc:Vpc": "vpc-",
    "aws:ec2/subnet:Subnet": "subnet-",
}
"""EC2 ids keep their real shape, so schemas that check it (Karpenter's selector terms) see a plausible value."""


def planned_id(resource_type: str, name: str) -> str:
    """The id a plan gives resource `name` of `resource_type`: deterministic, and EC2-shaped where EC2 has a shape."""
    return f"{AWS_ID_PREFIXES.get(resource_type, f'{name}-')}{_short_hash(resource_type, name)}"


class PlanMocks(pulumi.runtime.Mocks):
    """Deterministic stand-ins for provider outputs and data-source calls."""

    def __init__(self, region: str = "us-east-1"):
        self.region = region

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        state = dict(args.inputs)
        resource_id = args.resource_id or planned_id(args.typ, args.name)
        if args.typ.startswith("aws:"):
            service = args.typ.split(":")[1].split("/")[0]
            state.setdefault("arn", f"arn:aws:{service}:{self.region}:{ACCOUNT_ID}:{args.name}")
            state.setdefault("name", args.name)
        if args.typ == "aws:eks/cluster:Cluster":
            state.setdefault(
                "endpoint", f"https://{_short_hash(args.name).upper()}.gr7.{self.region}.eks.amazonaws.com"
            )
            state.setdefault("certificateAuthority", {"data": "bW9jay1jYQ=="})
            state.setdefault("vpcConfig", {}).setdefault("clusterSecurityGroupId", f"sg-{_short_hash(args.name)}")
            state.setdefault(
                "identities", [{"oidcs": [{"issuer": f"https://oidc.eks.{self.region}.amazonaws.com/id/MOCK"}]}]
            )
        if args.typ == "aws:ec2/launchTemplate:LaunchTemplate":
            state.setdefault("latestVersion", 1)
        if args.typ == "aws:eks/nodeGroup:NodeGroup":
            state.setdefault("nodeGroupName", args.name)
        if args.typ == "aws:ecr/repository:Repository":
            state.setdefault(
                "repositoryUrl", f"{ACCOUNT_ID}.dkr.ecr.{self.region}.amazonaws.com/{state.get('name', args.name)}"
            )
        if args.typ == "aws:s3/bucket:Bucket":
            bucket = state.get("bucket") or f"{state.get('bucketPrefix', args.name)}{_short_hash(args.name)}"
            state["bucket"] = bucket
            state["arn"] = f"arn:aws:s3:::{bucket}"
            resource_id = bucket
        if args.typ == "aws:kms/key:Key":
            state.setdefault("keyId", resource_id)
        if args.typ == "aws:fsx/lustreFileSystem:LustreFileSystem":
            state.setdefault("dnsName", f"fs-{_short_hash(args.name)}.fsx.{self.region}.amazonaws.com")
            state.setdefault("mountName", _short_hash("mount", args.name)[:8])
        if args.typ == "docker-build:index:Image":
            # As the provider reports a push: the digest (also the id), and the first tag with the digest added.
            # The digest follows the tags, so a new image tag plans as a new image.
            tags = [str(tag) for tag in state.get("tags") or []]
            digest = "sha256:" + hashlib.sha256("/".join([args.name, *tags]).encode()).hexdigest()
            state.setdefault("digest", digest)
            state.setdefault("ref", f"{tags[0]}@{digest}" if tags else "")
            state.setdefault("contextHash", _short_hash("context", args.name, *tags))
            resource_id = digest
        return resource_id, state

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{self.region}{suffix}" for suffix in "abcdef"]
            return {"names": names, "zoneIds": [f"use1-az{i + 1}" for i in range(6)], "id": self.region}, []
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT_ID, "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/plan", "id": ACCOUNT_ID}, []
        if args.token in ("aws:index/getRegion:getRegion", "aws:index/getRegion:getRegionPlain"):
            return {"name": self.region, "region": self.region, "id": self.region}, []
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}, []
        if args.token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            account = args.args.get("registryId") or ACCOUNT_ID
            region = args.args.get("region") or self.region
            return {
                "authorizationToken": base64.b64encode(b"AWS:plan-placeholder").decode(),
                "userName": "AWS",
                "password": "plan-placeholder",
                "proxyEndpoint": f"https://{account}.dkr.ecr.{region}.amazonaws.com",
                "expiresAt": "2000-01-01T12:00:00Z",
                "region": region,
                "id": region,
            }, []
        if args.token == "aws:iam/getPolicyDocument:getPolicyDocument":
            return {"json": json.dumps(args.args, sort_keys=True), "id": _short_hash(json.dumps(args.args))}, []
        return {}, []
