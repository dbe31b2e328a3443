"""Every alert, run by `promtool test rules` over synthetic series: it fires when it should, and only then."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelplane.components.alerting import promtool
from modelplane.components.alerting.rules import rules_yaml
from tests.alerting.rule_sets import RULE_SETS, alert_named

NODE_GPU = 'gpu="0",Hostname="node-1"'
TRAINING = 'job_name="llama-ft"'
REQUESTS = 'modelplane_inference_requests_total{service="chat",model="llama"'
LATENCY = 'modelplane_inference_request_duration_seconds_bucket{service="chat",model="llama"'
SHED = 'modelplane_inference_requests_shed_total{service="chat",model="llama"'


@dataclass(frozen=True)
class AlertCase:
    rule_set: str
    alert: str
    eval_time: str
    firing: Mapping[str, str]
    """Input series (promtool notation) under which the alert fires at `eval_time`."""
    silent: Mapping[str, str]
    """Input series under which it stays silent at `eval_time`."""
    labels: Mapping[str, str]
    """The firing alert's labels besides alertname and severity."""
    summary: str
    """The firing alert's rendered summary."""
    interval: str = "1m"


CASES = [
    AlertCase(
        "gpu",
        "GpuXidError",
        "2m",
        firing={f"DCGM_FI_DEV_XID_ERRORS{{{NODE_GPU}}}": "0 0 79"},
        silent={f"DCGM_FI_DEV_XID_ERRORS{{{NODE_GPU}}}": "0 0 0"},
        labels={"gpu": "0", "Hostname": "node-1"},
        summary="GPU 0 on node-1 reported XID error 79",
    ),
    AlertCase(
        "gpu",
        "GpuTemperatureHigh",
        "10m",
        firing={f"DCGM_FI_DEV_GPU_TEMP{{{NODE_GPU}}}": "90x10"},
        silent={f"DCGM_FI_DEV_GPU_TEMP{{{NODE_GPU}}}": "80x10"},
        labels={"gpu": "0", "Hostname": "node-1"},
        summary="GPU 0 on node-1 is at 90°C",
    ),
    AlertCase(
        "gpu",
        "GpuDoubleBitEccErrors",
        "2m",
        firing={f"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{{{NODE_GPU}}}": "0 2 2"},
        silent={f"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{{{NODE_GPU}}}": "0 0 0"},
        labels={"gpu": "0", "Hostname": "node-1"},
        summary="GPU 0 on node-1 has 2 uncorrectable ECC errors since the driver loaded",
    ),
    AlertCase(
        "gpu",
        "GpuRowRemapPending",
        "3m",
        firing={f"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS{{{NODE_GPU}}}": "1 1 2 2"},
        # Rows remapped long ago (a constant count) are not news.
        silent={f"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS{{{NODE_GPU}}}": "1 1 1 1"},
        labels={"gpu": "0", "Hostname": "node-1"},
        summary="GPU 0 on node-1 remapped memory rows after uncorrectable errors",
    ),
    AlertCase(
        "gpu",
        "GpuRowRemapFailure",
        "1m",
        firing={f"DCGM_FI_DEV_ROW_REMAP_FAILURE{{{NODE_GPU}}}": "0 1"},
        silent={f"DCGM_FI_DEV_ROW_REMAP_FAILURE{{{NODE_GPU}}}": "0 0"},
        labels={"gpu": "0", "Hostname": "node-1"},
        summary="GPU 0 on node-1 could not remap faulty memory rows",
    ),
    AlertCase(
        "gpu",
        "GpuAllocatedButIdle",
        "90m",
        firing={f'DCGM_FI_DEV_GPU_UTIL{{{NODE_GPU},namespace="ml",pod="trainer-0"}}': "1x90"},
        silent={f'DCGM_FI_DEV_GPU_UTIL{{{NODE_GPU},namespace="ml",pod="trainer-0"}}': "80x90"},
        labels={"gpu": "0", "Hostname": "node-1", "namespace": "ml", "pod": "trainer-0"},
        summary="Pod ml/trainer-0 holds GPU 0 on node-1 at 1% utilization",
    ),
    AlertCase(
        "gpu",
        "DcgmExporterDown",
        "10m",
        firing={'up{job="dcgm-exporter",instance="10.0.0.1:9400"}': "0x10"},
        silent={'up{job="dcgm-exporter",instance="10.0.0.1:9400"}': "1x10"},
        labels={"job": "dcgm-exporter", "instance": "10.0.0.1:9400"},
        summary="dcgm-exporter on 10.0.0.1:9400 cannot be scraped",
    ),
    AlertCase(
        "gpu",
        "DcgmExporterAbsent",
        "20m",
        firing={'kube_node_status_capacity{resource="nvidia_com_gpu",node="gpu-1"}': "8x20"},
        # GPU pools scaled to zero: only CPU nodes, so no exporter is expected.
        silent={'kube_node_status_capacity{resource="cpu",node="system-1"}': "4x20"},
        labels={"job": "dcgm-exporter"},
        summary="No dcgm-exporter target while the cluster has GPU nodes",
    ),
    AlertCase(
        "platform",
        "KubeNodeNotReady",
        "15m",
        firing={'kube_node_status_condition{condition="Ready",status="true",node="gpu-1"}': "0x15"},
        silent={'kube_node_status_condition{condition="Ready",status="true",node="gpu-1"}': "1x15"},
        labels={"condition": "Ready", "status": "true", "node": "gpu-1"},
        summary="Node gpu-1 is not Ready",
    ),
    AlertCase(
        "platform",
        "PersistentVolumeNearlyFull",
        "10m",
        firing={
            'kubelet_volume_stats_available_bytes{namespace="ml",persistentvolumeclaim="checkpoints"}': "5x10",
            'kubelet_volume_stats_capacity_bytes{namespace="ml",persistentvolumeclaim="checkpoints"}': "100x10",
        },
        silent={
            'kubelet_volume_stats_available_bytes{namespace="ml",persistentvolumeclaim="checkpoints"}': "50x10",
            'kubelet_volume_stats_capacity_bytes{namespace="ml",persistentvolumeclaim="checkpoints"}': "100x10",
        },
        labels={"namespace": "ml", "persistentvolumeclaim": "checkpoints"},
        summary="Volume ml/checkpoints has 5% free",
    ),
    AlertCase(
        "platform",
        "GpuNodePoolAtMaxSize",
        "20m",
        firing={
            'kube_node_labels{node="gpu-1",label_modelplane_io_pool="h100"}': "1x20",
            'kube_node_labels{node="gpu-2",label_modelplane_io_pool="h100"}': "1x20",
            'kube_node_labels{node="gpu-3",label_modelplane_io_pool="a100"}': "1x20",
        },
        silent={'kube_node_labels{node="gpu-1",label_modelplane_io_pool="h100"}': "1x20"},
        labels={"pool": "h100"},
        summary="GPU node pool h100 is at its maximum of 2 nodes",
    ),
    AlertCase(
        "training",
        "TrainingStalled",
        "55m",
        firing={f"modelplane_training_step{{{TRAINING}}}": "0+10x20 200x40"},
        silent={f"modelplane_training_step{{{TRAINING}}}": "0+10x60"},
        labels={"job_name": "llama-ft"},
        summary="Training job llama-ft has made no step for 30 minutes",
    ),
    AlertCase(
        "training",
        "TrainingLossNotFinite",
        "4m",
        # NaN then Inf: both kinds keep the alert pending until it fires.
        firing={f"modelplane_training_loss{{{TRAINING}}}": "2.1 NaN NaN Inf Inf"},
        silent={f"modelplane_training_loss{{{TRAINING}}}": "2.1 2.0 1.9 1.8 1.7"},
        labels={"job_name": "llama-ft"},
        summary="Training job llama-ft has a non-finite loss (+Inf)",
    ),
    AlertCase(
        "training",
        "TrainingThroughputDropped",
        "90m",
        firing={f"modelplane_training_samples_per_second{{{TRAINING}}}": "100x60 30x30"},
        silent={f"modelplane_training_samples_per_second{{{TRAINING}}}": "100x90"},
        labels={"job_name": "llama-ft"},
        summary="Training job llama-ft runs at 30 samples/s, well below its 1h average",
    ),
    AlertCase(
        "training",
        "TrainingRestartingTooOften",
        "5m",
        firing={f'modelplane_training_restarts_total{{{TRAINING},pod="llama-ft-0"}}': "4x5"},
        silent={f'modelplane_training_restarts_total{{{TRAINING},pod="llama-ft-0"}}': "3x5"},
        labels={"job_name": "llama-ft"},
        summary="Training job llama-ft has restarted 4 times",
    ),
    AlertCase(
        "training",
        "TrainingCheckpointStale",
        "150m",
        firing={f"modelplane_training_last_checkpoint_timestamp_seconds{{{TRAINING}}}": "0x150"},
        # A checkpoint every minute: the timestamp keeps up with time().
        silent={f"modelplane_training_last_checkpoint_timestamp_seconds{{{TRAINING}}}": "0+60x150"},
        labels={"job_name": "llama-ft"},
        summary="Training job llama-ft's newest checkpoint is 2h 30m 0s old",
    ),
    AlertCase(
        "inference",
        "InferenceLatencyHigh",
        "20m",
        firing={
            f'{LATENCY},le="0.25"}}': "0x20",
            f'{LATENCY},le="1"}}': "0+10x20",
            f'{LATENCY},le="+Inf"}}': "0+10x20",
        },
        silent={
            f'{LATENCY},le="0.25"}}': "0+10x20",
            f'{LATENCY},le="1"}}': "0+10x20",
            f'{LATENCY},le="+Inf"}}': "0+10x20",
        },
        labels={"service": "chat", "model": "llama"},
        summary="chat/llama p99 latency is 992.5ms, objective 0.5s",
    ),
    AlertCase(
        "inference",
        "InferenceErrorBudgetFastBurn",
        "70m",
        firing={f'{REQUESTS},code="200"}}': "0+90x70", f'{REQUESTS},code="500"}}': "0+10x70"},
        silent={f'{REQUESTS},code="200"}}': "0+90x70", f'{REQUESTS},code="500"}}': "0x70"},
        labels={"service": "chat"},
        summary="chat burns its error budget fast: the 99.9% availability objective is at risk within hours",
    ),
    AlertCase(
        "inference",
        "InferenceErrorBudgetSlowBurn",
        "3h",
        # 0.5% errors: above 3x a 0.1% budget, below the 6x that pages.
        firing={f'{REQUESTS},code="200"}}': "0+995x180", f'{REQUESTS},code="503"}}': "0+5x180"},
        silent={f'{REQUESTS},code="200"}}': "0+1999x180", f'{REQUESTS},code="503"}}': "0+1x180"},
        labels={"service": "chat"},
        summary="chat burns its error budget steadily: the 99.9% availability objective is at risk within days",
    ),
    AlertCase(
        "inference",
        "InferenceModelErrorRatioHigh",
        "20m",
        firing={
            'modelplane_inference_requests_total{service="chat",model="whisper",code="200"}': "0+5x20",
            'modelplane_inference_requests_total{service="chat",model="whisper",code="500"}': "0+5x20",
        },
        silent={
            'modelplane_inference_requests_total{service="chat",model="whisper",code="200"}': "0+5x20",
            'modelplane_inference_requests_total{service="chat",model="whisper",code="500"}': "0x20",
        },
        labels={"service": "chat", "model": "whisper"},
        summary="chat/whisper answers 50% with 5xx",
    ),
    AlertCase(
        "inference",
        "InferenceModelNotLoaded",
        "20m",
        firing={
            'modelplane_inference_model_loaded{service="chat",model="intents",pod="a"}': "0x20",
            'modelplane_inference_model_loaded{service="chat",model="intents",pod="b"}': "0x20",
        },
        # One replica has it: the service answers.
        silent={
            'modelplane_inference_model_loaded{service="chat",model="intents",pod="a"}': "0x20",
            'modelplane_inference_model_loaded{service="chat",model="intents",pod="b"}': "0x5 1x15",
        },
        labels={"service": "chat", "model": "intents"},
        summary="chat waits for its model intents: no replica has loaded it",
    ),
    AlertCase(
        "inference",
        "InferenceNoReadyReplicas",
        "10m",
        firing={
            'kube_deployment_status_replicas_available{namespace="ml",deployment="chat"}': "0x10",
            'kube_deployment_spec_replicas{namespace="ml",deployment="chat"}': "2x10",
        },
        # Scaled to zero on purpose.
        silent={
            'kube_deployment_status_replicas_available{namespace="ml",deployment="chat"}': "0x10",
            'kube_deployment_spec_replicas{namespace="ml",deployment="chat"}': "0x10",
        },
        labels={"namespace": "ml", "deployment": "chat", "service": "chat"},
        summary="chat has no ready replicas",
    ),
    AlertCase(
        "inference",
        "InferenceQueueSaturated",
        "10m",
        firing={'modelplane_inference_queue_depth{service="chat",model="llama"}': "60x10"},
        silent={'modelplane_inference_queue_depth{service="chat",model="llama"}': "10x10"},
        labels={"service": "chat", "model": "llama"},
        summary="chat/llama queue is 93.75% full",
    ),
    AlertCase(
        "inference",
        "InferenceRequestsShed",
        "20m",
        # 5% of requests turned away, above the 1% default.
        firing={f'{REQUESTS},code="200"}}': "0+95x20", f'{SHED},reason="queue_full"}}': "0+5x20"},
        silent={f'{REQUESTS},code="200"}}': "0+95x20", f'{SHED},reason="queue_full"}}': "0x20"},
        labels={"service": "chat", "model": "llama"},
        summary="chat/llama turns away 5% of requests",
    ),
    AlertCase(
        "custom",
        "FeatureStoreLagHigh",
        "15m",
        firing={'feature_store_lag_seconds{store="online"}': "600x15"},
        silent={'feature_store_lag_seconds{store="online"}': "10x15"},
        labels={"store": "online", "team": "data"},
        summary="Feature store lag is 600s",
    ),
]


def promtool_tests(rules_file: str, case: AlertCase) -> dict[str, Any]:
    """A promtool rules test file with two scenarios for `case`: one firing, one silent."""
    rule = alert_named(case.rule_set, case.alert)
    annotations = {"summary": case.summary, "description": rule.description, "runbook_url": rule.runbook_url}
    expected = {
        "exp_labels": {"severity": rule.severity.value, **case.labels},
        # Empty annotations are left out of the rule, so out of the alert too.
        "exp_annotations": {key: text for key, text in annotations.items() if text},
    }

    def scenario(series: Mapping[str, str], exp_alerts: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "interval": case.interval,
            "input_series": [{"series": name, "values": values} for name, values in series.items()],
            "alert_rule_test": [{"eval_time": case.eval_time, "alertname": case.alert, "exp_alerts": exp_alerts}],
        }

    return {
        "rule_files": [rules_file],
        "evaluation_interval": "1m",
        "tests": [scenario(case.firing, [expected]), scenario(case.silent, [])],
    }


def test_every_alert_has_a_case() -> None:
    defined = {(name, rule.alert) for name, groups in RULE_SETS.items() for group in groups for rule in group.alerts}
    tested = {(case.rule_set, case.alert) for case in CASES}
    assert defined == tested


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.alert)
def test_alert_fires_only_when_it_should(case: AlertCase, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(rules_yaml(RULE_SETS[case.rule_set]))
    tests_file = tmp_path / "tests.yaml"
    tests_file.write_text(yaml.safe_dump(promtool_tests("rules.yaml", case), sort_keys=False, allow_unicode=True))

    result = promtool.test_rules(tests_file)

    assert result.ok, result.output
