"""The pack as the engine sees it: started as its own process, asked over gRPC, as `pulumi up` would.

It must list every catalog rule, and analyze a resource exactly as the offline check does.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from modelplane.plan.policy_check import check_resources
from modelplane.policies.rules.catalog import RULES
from modelplane.policies.rules.registry import ECR_IMMUTABLE_TAGS
from modelplane.policy_config import POLICY_PACK_DIR
from tests.policies.harness import resource

REPOSITORY = resource(
    "aws:ecr/repository:Repository",
    "repo",
    {"imageTagMutability": "MUTABLE", "imageScanningConfiguration": {"scanOnPush": True}},
)


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    process = subprocess.Popen(
        [sys.executable, str(POLICY_PACK_DIR / "__main__.py")],
        stdout=subprocess.PIPE,
        cwd=Path(POLICY_PACK_DIR),
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.slow
def test_pack_lists_every_catalog_rule(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "modelplane-platform"
    assert [p.name for p in info.policies] == [r.name for r in RULES]


@pytest.mark.slow
def test_pack_reports_what_the_offline_check_reports(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    properties = struct_pb2.Struct()
    properties.update(REPOSITORY["inputs"])
    request = analyzer_pb2.AnalyzeRequest(
        type=REPOSITORY["type"], properties=properties, urn=REPOSITORY["urn"], name=REPOSITORY["name"]
    )
    engine = {(d.policyName, d.message.split("\n", 1)[1]) for d in analyzer.Analyze(request).diagnostics}
    offline = {(v.rule, v.message) for v in check_resources([REPOSITORY], {"all": "advisory"})}
    assert engine == offline
    assert {rule for rule, _ in engine} == {ECR_IMMUTABLE_TAGS.name}


DEPLOYMENT_IN_A_MISSING_NAMESPACE = resource(
    "kubernetes:apps/v1:Deployment",
    "api",
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "nowhere"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "api"}},
            "template": {
                "metadata": {"labels": {"app": "api"}},
                "spec": {
                    "containers": [
                        {
                            "name": "api",
                            "image": "server@sha256:" + "a" * 64,
                            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                        }
                    ]
                },
            },
        },
    },
)


@pytest.mark.slow
def test_the_pack_enforces_deployability_as_stack_rules(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    properties = struct_pb2.Struct()
    properties.update(DEPLOYMENT_IN_A_MISSING_NAMESPACE["inputs"])
    stack = analyzer_pb2.AnalyzeStackRequest(
        resources=[
            analyzer_pb2.AnalyzerResource(
                type=DEPLOYMENT_IN_A_MISSING_NAMESPACE["type"],
                properties=properties,
                urn=DEPLOYMENT_IN_A_MISSING_NAMESPACE["urn"],
                name=DEPLOYMENT_IN_A_MISSING_NAMESPACE["name"],
            )
        ]
    )
    engine = {(d.policyName, d.message.split("\n", 1)[1]) for d in analyzer.AnalyzeStack(stack).diagnostics}
    stack_rules = {rule.name for rule in RULES if rule.kind == "stack"}
    offline = {
        (v.rule, v.message)
        for v in check_resources([DEPLOYMENT_IN_A_MISSING_NAMESPACE], {"all": "advisory"})
        if v.rule in stack_rules
    }
    assert engine == offline
    assert ("modelplane-stack-deployability-order", next(m for r, m in engine if r.endswith("order"))) in engine
    assert any("nowhere" in message for _, message in engine)
