"""The pack as the engine sees it: assembled on its own (`modelplane.policy_pack`), run from a virtualenv built
from its requirements only, started the way the engine starts a Python pack (`python -u -m pulumi.policy ENGINE
DIR`), and asked over gRPC, as `pulumi up` would.

It must list every catalog rule, analyze a resource exactly as the offline check does, and say as advice what it
cannot decide.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from modelplane.plan.policy_check import check_resources
from modelplane.policies.rules.catalog import RULES
from modelplane.policies.rules.gpu_pools import NVIDIA_AMI
from modelplane.policies.rules.registry import ECR_IMMUTABLE_TAGS
from modelplane.policy_pack import PACK_VIRTUALENV, assemble
from tests.policies.harness import resource
from tests.policies.test_gpu_pools import custom_ami_group_in

REPOSITORY = resource(
    "aws:ecr/repository:Repository",
    "repo",
    {
        "imageTagMutability": "MUTABLE",
        "imageScanningConfiguration": {"scanOnPush": True},
        "encryptionConfigurations": [{"encryptionType": "KMS"}],
    },
)


def isolated_environment() -> dict[str, str]:
    """The environment without anything that could reach this checkout's packages."""
    kept = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**kept, "PYTHONNOUSERSITE": "1"}


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The assembled pack and a fresh virtualenv holding only its requirements."""
    pack_dir = assemble(tmp_path_factory.mktemp("pack") / "modelplane-platform")
    python = pack_dir / PACK_VIRTUALENV / "bin" / "python"
    subprocess.run([sys.executable, "-m", "venv", str(python.parent.parent)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", "requirements.txt"],
        cwd=pack_dir,
        env=isolated_environment(),
        check=True,
    )
    return pack_dir, python


@pytest.mark.slow
def test_the_packs_virtualenv_holds_nothing_of_the_project(pack: tuple[Path, Path]) -> None:
    pack_dir, python = pack
    probe = "import importlib.util as u; print(u.find_spec('pydantic'), u.find_spec('modelplane.config'))"
    found = subprocess.run(
        [str(python), "-c", probe], cwd=pack_dir, env=isolated_environment(), capture_output=True, text=True, check=True
    )
    assert found.stdout.split() == ["None", "None"]


@contextmanager
def serving(pack: tuple[Path, Path]) -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    pack_dir, python = pack
    process = subprocess.Popen(
        [str(python), "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(pack_dir)],
        stdout=subprocess.PIPE,
        cwd=pack_dir,
        env=isolated_environment(),
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def analyzer(pack: tuple[Path, Path]) -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    with serving(pack) as stub:
        yield stub


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


def analyzer_resource(planned: dict[str, Any]) -> analyzer_pb2.AnalyzerResource:
    properties = struct_pb2.Struct()
    properties.update(planned["inputs"])
    return analyzer_pb2.AnalyzerResource(
        type=planned["type"], properties=properties, urn=planned["urn"], name=planned["name"]
    )


@pytest.mark.slow
def test_what_a_mandatory_rule_cannot_decide_reaches_the_engine_as_advice(pack: tuple[Path, Path]) -> None:
    stack = custom_ami_group_in("g6.xlarge", max_size=1.0)
    with serving(pack) as stub:
        stub.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig={r.name: mandatory() for r in RULES}))
        diagnostics = stub.AnalyzeStack(
            analyzer_pb2.AnalyzeStackRequest(resources=[analyzer_resource(r) for r in stack])
        ).diagnostics
    (said,) = [d for d in diagnostics if d.policyName == NVIDIA_AMI.name]
    assert said.enforcementLevel == analyzer_pb2.ADVISORY
    assert "custom AMI" in said.message
    assert all(d.enforcementLevel == analyzer_pb2.MANDATORY for d in diagnostics if d.policyName != NVIDIA_AMI.name)


def mandatory() -> analyzer_pb2.PolicyConfig:
    return analyzer_pb2.PolicyConfig(enforcementLevel=analyzer_pb2.MANDATORY)
