from __future__ import annotations

from modelplane.components.efa_device_plugin import CHART_VERSION, EfaDevicePlugin, efa_device_plugin_values
from modelplane.terms.scheduling import EFA_LABEL, GPU_TAINT_KEY
from tests.conftest import ProgramRunner

RELEASE = "kubernetes:helm.sh/v3:Release"


def test_values_run_the_plugin_on_efa_nodes_through_the_gpu_taint() -> None:
    values = efa_device_plugin_values()
    assert values["nodeSelector"] == {EFA_LABEL: "true"}
    assert {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"} in values["tolerations"]


def test_release_is_pinned_and_a_child_of_the_component(run_program: ProgramRunner) -> None:
    reg = run_program(lambda: EfaDevicePlugin("efa", {}))
    component = reg.one("modelplane:gpu:EfaDevicePlugin", "efa")
    release = reg.one(RELEASE, "efa-release")
    assert release.parent == component.urn
    assert (release.inputs["chart"], release.inputs["version"]) == ("aws-efa-k8s-device-plugin", CHART_VERSION)
    assert release.inputs["repositoryOpts"]["repo"] == "https://aws.github.io/eks-charts"
    assert release.inputs["values"]["nodeSelector"] == {EFA_LABEL: "true"}
