import pulumi
import pulumi_kubernetes as k8s
import pytest

from modelplane.components.device_plugin import (
    CHART_NAME,
    CHART_REPOSITORY,
    CHART_VERSION,
    COMPONENT_TYPE,
    NvidiaDevicePlugin,
    NvidiaDevicePluginArgs,
    device_plugin_values,
)
from tests.resources import assert_rejected_before_children

RELEASE = "kubernetes:helm.sh/v3:Release"


def test_values_tolerate_the_gpu_taint():
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in device_plugin_values()[
        "tolerations"
    ]


def test_values_select_gpu_nodes_at_node_critical_priority():
    values = device_plugin_values()
    assert values["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert values["priorityClassName"] == "system-node-critical"


def test_feature_discovery_off_unless_asked():
    assert device_plugin_values()["gfd"] == {"enabled": False}
    assert device_plugin_values()["nfd"] == {"enabled": False}
    assert device_plugin_values(gpu_feature_discovery=True)["gfd"] == {"enabled": True}


def test_chart_is_pinned():
    assert (CHART_NAME, CHART_VERSION, CHART_REPOSITORY) == (
        "nvidia-device-plugin",
        "0.17.1",
        "https://nvidia.github.io/k8s-device-plugin",
    )


@pytest.fixture
def plugin(run_program):
    def program() -> None:
        provider = k8s.Provider("cluster", kubeconfig="{}")
        NvidiaDevicePlugin("gpu", {}, pulumi.ResourceOptions(provider=provider))

    return run_program(program)


def test_release_is_the_pinned_chart_in_its_own_namespace(plugin):
    release = plugin.one(RELEASE, "gpu-release")
    assert release.inputs["chart"] == "nvidia-device-plugin"
    assert release.inputs["version"] == "0.17.1"
    assert release.inputs["repositoryOpts"] == {"repo": "https://nvidia.github.io/k8s-device-plugin"}
    assert release.inputs["namespace"] == "nvidia-device-plugin"
    assert release.inputs["createNamespace"] is True
    assert release.inputs["name"] == "nvidia-device-plugin"
    assert release.inputs["atomic"] is True


def test_release_values_carry_the_toleration(plugin):
    values = plugin.one(RELEASE).inputs["values"]
    assert values["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert values["gfd"] == {"enabled": False}


def test_release_uses_the_callers_provider_under_the_component(plugin):
    component = plugin.one(COMPONENT_TYPE, "gpu")
    provider = plugin.one("pulumi:providers:kubernetes", "cluster")
    release = plugin.one(RELEASE)
    assert release.parent == component.urn
    assert release.provider.startswith(provider.urn + "::")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"namespace": "GPU"}, r"^namespace='GPU'"),
        ({"gpu_feature_discovery": "yes"}, r"^gpu_feature_discovery='yes'"),
    ],
)
def test_bad_inputs_fail_before_the_release(run_program, args, message):
    typed_args: NvidiaDevicePluginArgs = args
    assert_rejected_before_children(
        run_program, lambda: NvidiaDevicePlugin("gpu", typed_args), message, [COMPONENT_TYPE]
    )
