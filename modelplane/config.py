"""The environment's configuration: one typed, validated model of a stack's config.

Every problem is reported at once, each naming its path, the bad value and the fix,
before any resource exists. The same model is read from Pulumi config (in the stack
program) and from `stacks/Pulumi.ENV.yaml` (in the offline plan).
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from components.alerting.custom_rules import CustomRuleError, parse_custom_rule
from components.gpu_catalog import GPU_INSTANCE_TYPES, gpu_instance_type, known_types, monthly_cost_usd
from workloads.serving.spec import InferenceServiceSpec, PoolHardware, service_problems
from workloads.training.spec import PoolCapacity, TrainingJobSpec, job_problems

CONFIG_NAMESPACE = "modelplane"
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$")
SUPPORTED_KUBERNETES_VERSIONS = ("1.31", "1.32", "1.33", "1.34")
CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")


class ConfigError(Exception):
    """The environment's config is invalid; `problems` lists every reason."""

    def __init__(self, environment: str, problems: list[str]):
        self.environment = environment
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"environment {environment!r}: {len(problems)} config problem(s):\n{lines}")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EndpointAccess(StrEnum):
    PRIVATE = "private"
    """API server reachable only from inside the VPC (and peered networks)."""
    PUBLIC_AND_PRIVATE = "public_and_private"
    """Also reachable from `public_access_cidrs`; nodes still use the private endpoint."""


class NatGateways(StrEnum):
    SINGLE = "single"
    """One NAT gateway for all AZs: cheaper, one AZ's outage cuts egress."""
    PER_AZ = "per_az"
    """One NAT gateway per AZ: what production needs."""


class CapacityType(StrEnum):
    ON_DEMAND = "ON_DEMAND"
    SPOT = "SPOT"
    CAPACITY_BLOCK = "CAPACITY_BLOCK"


class AmiFamily(StrEnum):
    AL2023 = "al2023"
    BOTTLEROCKET = "bottlerocket"


class NetworkConfig(StrictModel):
    cidr: str = "10.0.0.0/16"
    """VPC CIDR, /16 to /20: split into one public and one private subnet per AZ."""
    az_count: int = Field(default=3, ge=2, le=6)
    """Availability zones to span (EKS needs at least 2)."""
    nat_gateways: NatGateways = NatGateways.PER_AZ

    @field_validator("cidr")
    @classmethod
    def _cidr_is_a_network(cls, value: str) -> str:
        try:
            network = ipaddress.IPv4Network(value)
        except ValueError as exc:
            raise ValueError(f"not an IPv4 network ({exc}); use e.g. '10.0.0.0/16'") from None
        if not 16 <= network.prefixlen <= 20:
            raise ValueError("prefix must be /16 to /20 to hold a subnet per AZ and role")
        return value


class ClusterConfig(StrictModel):
    kubernetes_version: str = "1.33"
    endpoint_access: EndpointAccess = EndpointAccess.PRIVATE
    public_access_cidrs: list[str] = Field(default_factory=list)
    """CIDRs allowed to reach a public endpoint; required with `public_and_private`."""
    control_plane_logging: list[str] = Field(default_factory=lambda: list(CONTROL_PLANE_LOG_TYPES))
    admin_role_arns: list[str] = Field(default_factory=list)
    """IAM roles granted cluster admin through EKS access entries."""

    @field_validator("kubernetes_version")
    @classmethod
    def _supported_version(cls, value: str) -> str:
        if value not in SUPPORTED_KUBERNETES_VERSIONS:
            raise ValueError(f"unsupported; use one of {', '.join(SUPPORTED_KUBERNETES_VERSIONS)}")
        return value

    @field_validator("control_plane_logging")
    @classmethod
    def _known_log_types(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in CONTROL_PLANE_LOG_TYPES]
        if unknown:
            raise ValueError(f"unknown log types {unknown}; known: {', '.join(CONTROL_PLANE_LOG_TYPES)}")
        return value

    @field_validator("public_access_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.IPv4Network(cidr)
            except ValueError:
                raise ValueError(f"{cidr!r} is not an IPv4 CIDR; use e.g. '203.0.113.0/24'") from None
            if cidr == "0.0.0.0/0":
                raise ValueError("'0.0.0.0/0' opens the API server to the internet; list your CIDRs")
        return value

    @field_validator("admin_role_arns")
    @classmethod
    def _role_arns(cls, value: list[str]) -> list[str]:
        for arn in value:
            if not re.match(r"^arn:aws[-a-z]*:iam::\d{12}:role/.+$", arn):
                raise ValueError(f"{arn!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)")
        return value


class SystemNodePoolConfig(StrictModel):
    instance_type: str = "m7i.large"
    min_size: int = Field(default=2, ge=1)
    max_size: int = Field(default=4, ge=1)
    disk_size_gib: int = Field(default=50, ge=20, le=16384)


class GpuNodePoolConfig(StrictModel):
    name: str
    """DNS label naming the pool; workloads select it by this name."""
    instance_type: str = "g6.xlarge"
    capacity_type: CapacityType = CapacityType.ON_DEMAND
    min_size: int = Field(default=0, ge=0)
    max_size: int = Field(default=1, ge=1)
    desired_size: int | None = None
    """Initial size only (ignored after creation so autoscaling is not undone); default min_size."""
    disk_size_gib: int = Field(default=200, ge=50, le=16384)
    ami_family: AmiFamily = AmiFamily.AL2023
    efa: bool = False
    """Attach EFA interfaces and place nodes in a cluster placement group (multi-node training)."""
    capacity_reservation_id: str | None = None
    """The capacity block's reservation (cr-...); required with CAPACITY_BLOCK."""
    usd_per_hour: float | None = Field(default=None, gt=0)
    """Negotiated hourly rate; default the catalog's on-demand price."""
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not DNS_LABEL.match(value):
            raise ValueError("must be a DNS label of at most 32 characters: lowercase letters, digits, '-'")
        return value

    @field_validator("instance_type")
    @classmethod
    def _known_gpu_type(cls, value: str) -> str:
        if value not in GPU_INSTANCE_TYPES:
            raise ValueError(f"unknown GPU instance type; known: {known_types()}")
        return value


class FsxConfig(StrictModel):
    storage_capacity_gib: int = 1200
    """PERSISTENT_2 capacity: 1200, 2400, then multiples of 2400."""
    throughput_per_tib: int = 250
    """MB/s per TiB: 125, 250, 500 or 1000."""
    import_prefix: str = "datasets/"
    """Bucket prefix the file system links to."""

    @field_validator("storage_capacity_gib")
    @classmethod
    def _lustre_capacity(cls, value: int) -> int:
        if value not in (1200, 2400) and (value < 2400 or value % 2400):
            raise ValueError("PERSISTENT_2 capacity must be 1200, 2400 or a multiple of 2400 GiB")
        return value

    @field_validator("throughput_per_tib")
    @classmethod
    def _lustre_throughput(cls, value: int) -> int:
        if value not in (125, 250, 500, 1000):
            raise ValueError("must be 125, 250, 500 or 1000 MB/s/TiB")
        return value


class StorageConfig(StrictModel):
    checkpoint_version_days: int = Field(default=30, ge=1)
    """Days to keep noncurrent versions of checkpoints before they expire."""
    force_destroy: bool = False
    """Let `destroy` delete a non-empty bucket (never in prod)."""
    fsx: FsxConfig | None = None


class RegistryConfig(StrictModel):
    repositories: list[str] = Field(default_factory=lambda: ["trainer", "server"])
    untagged_expiry_days: int = Field(default=7, ge=1)

    @field_validator("repositories")
    @classmethod
    def _repository_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.match(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$", name):
                raise ValueError(f"{name!r} is not a valid ECR repository name (lowercase, digits, . _ -)")
        if len(set(value)) != len(value):
            raise ValueError("repository names must be unique")
        return value


class BudgetConfig(StrictModel):
    max_gpus: int = Field(ge=0)
    """Most GPUs all pools together may reach at their max size."""
    max_monthly_gpu_cost_usd: float = Field(ge=0)
    """Most the pools may cost a month at max size, on-demand."""


class ReceiverKind(StrEnum):
    SLACK = "slack"
    PAGERDUTY = "pagerduty"
    WEBHOOK = "webhook"


ALERT_SEVERITIES = ("critical", "warning", "info")
SECRET_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


class ReceiverConfig(StrictModel):
    name: str
    """Alertmanager receiver name."""
    kind: ReceiverKind
    secret: str
    """Name of the secret config key (`modelplane:<secret>`) holding the Slack webhook URL,
    PagerDuty routing key or webhook URL; set it with `pulumi config set --secret`."""
    severities: list[str] = Field(default_factory=lambda: ["critical"])
    """Alert severities routed to this receiver."""
    channel: str | None = None
    """Slack channel, e.g. '#ml-alerts' (Slack only)."""

    @field_validator("name")
    @classmethod
    def _receiver_name(cls, value: str) -> str:
        if not DNS_LABEL.match(value):
            raise ValueError("must be a DNS label: lowercase letters, digits, '-'")
        return value

    @field_validator("secret")
    @classmethod
    def _secret_key(cls, value: str) -> str:
        if not SECRET_KEY.match(value) or value in SECTIONS:
            raise ValueError("must be a snake_case config key that is not a section name, e.g. 'slack_webhook_url'")
        return value

    @field_validator("severities")
    @classmethod
    def _known_severities(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in ALERT_SEVERITIES]
        if unknown or not value:
            raise ValueError(f"severities {value}: use one or more of {', '.join(ALERT_SEVERITIES)}")
        return value


class MonitoringConfig(StrictModel):
    prometheus_retention: str = "15d"
    """How long Prometheus keeps samples."""
    prometheus_storage_gib: int = Field(default=50, ge=10, le=16384)
    """Persistent volume for Prometheus' data."""
    grafana_admin_password_secret: str = "grafana_admin_password"
    """Secret config key holding Grafana's admin password (`pulumi config set --secret`)."""
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    group_by: list[str] = Field(default_factory=lambda: ["alertname", "namespace", "service", "job_name"])
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"
    custom_alerts: list[dict[str, Any]] = Field(default_factory=list)
    """Extra alerting rules (alert, expr, for, severity, summary, ...), checked by promtool in `plan`."""
    require_critical_receiver: bool = False
    """Fail validation unless some receiver takes `critical` alerts (always on in the `prod` environment)."""

    @field_validator("prometheus_retention", "group_wait", "group_interval", "repeat_interval")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not re.match(r"^(\d+(ms|s|m|h|d|w|y))+$", value):
            raise ValueError("not a Prometheus duration; use e.g. '30s', '5m', '15d'")
        return value

    def secret_keys(self) -> list[str]:
        return [self.grafana_admin_password_secret, *(r.secret for r in self.receivers)]


class EnvironmentConfig(StrictModel):
    name: str
    region: str
    network: NetworkConfig = NetworkConfig()
    cluster: ClusterConfig = ClusterConfig()
    system_node_pool: SystemNodePoolConfig = SystemNodePoolConfig()
    gpu_node_pools: list[GpuNodePoolConfig] = Field(default_factory=list)
    storage: StorageConfig = StorageConfig()
    registries: RegistryConfig = RegistryConfig()
    budget: BudgetConfig
    monitoring: MonitoringConfig = MonitoringConfig()
    training_jobs: list[TrainingJobSpec] = Field(default_factory=list)
    inference_services: list[InferenceServiceSpec] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)

    def gpu_pool(self, name: str) -> GpuNodePoolConfig:
        for pool in self.gpu_node_pools:
            if pool.name == name:
                return pool
        known = ", ".join(p.name for p in self.gpu_node_pools) or "none"
        raise KeyError(f"unknown GPU node pool {name!r}; pools: {known}")


SECTIONS = tuple(name for name in EnvironmentConfig.model_fields if name not in ("name", "region"))


def _location(loc: tuple[str | int, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _value_at(raw: Any, loc: tuple[str | int, ...]) -> Any:
    for part in loc:
        try:
            raw = raw[part]
        except (KeyError, IndexError, TypeError):
            return None
    return raw


def _schema_problems(error: ValidationError, raw: dict[str, Any]) -> list[str]:
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "missing":
            problems.append(f"{_location(loc)}: required; set {CONFIG_NAMESPACE}:{loc[0]} in the stack config")
        elif item["type"] == "extra_forbidden":
            problems.append(f"{_location(loc)}: unknown key; remove it or fix its spelling")
        else:
            problems.append(f"{_location(loc)}={_value_at(raw, loc)!r}: {message}")
    return problems


def _pool_problems(index: int, pool: GpuNodePoolConfig) -> list[str]:
    at = f"gpu_node_pools[{index}]"
    problems = []
    instance = gpu_instance_type(pool.instance_type)
    if pool.max_size < pool.min_size:
        problems.append(f"{at}.max_size={pool.max_size}: must be at least min_size ({pool.min_size})")
    if pool.desired_size is not None and not pool.min_size <= pool.desired_size <= pool.max_size:
        problems.append(
            f"{at}.desired_size={pool.desired_size}: must lie within min_size..max_size "
            f"({pool.min_size}..{pool.max_size})"
        )
    if pool.efa and not instance.supports_efa:
        efa_types = ", ".join(sorted(t.name for t in GPU_INSTANCE_TYPES.values() if t.supports_efa))
        problems.append(f"{at}.efa=True: {pool.instance_type} has no EFA; use one of {efa_types}")
    if pool.capacity_type is CapacityType.CAPACITY_BLOCK and not pool.capacity_reservation_id:
        problems.append(
            f"{at}.capacity_reservation_id=None: CAPACITY_BLOCK needs the capacity block's reservation id (cr-...)"
        )
    if pool.capacity_reservation_id and not re.match(r"^cr-[0-9a-f]{8,17}$", pool.capacity_reservation_id):
        problems.append(f"{at}.capacity_reservation_id={pool.capacity_reservation_id!r}: expected 'cr-' and hex digits")
    if pool.capacity_reservation_id and pool.capacity_type is not CapacityType.CAPACITY_BLOCK:
        problems.append(f"{at}.capacity_reservation_id={pool.capacity_reservation_id!r}: only with CAPACITY_BLOCK")
    return problems


def pool_max_gpus(pool: GpuNodePoolConfig) -> int:
    return gpu_instance_type(pool.instance_type).gpus * pool.max_size


def pool_max_monthly_cost(pool: GpuNodePoolConfig) -> float:
    return monthly_cost_usd(gpu_instance_type(pool.instance_type), pool.max_size, pool.usd_per_hour)


def _environment_problems(env: EnvironmentConfig) -> list[str]:
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, pool in enumerate(env.gpu_node_pools):
        if pool.name in seen:
            problems.append(
                f"gpu_node_pools[{index}].name={pool.name!r}: already used by gpu_node_pools[{seen[pool.name]}]; "
                "pool names must be unique"
            )
        seen.setdefault(pool.name, index)
        problems.extend(_pool_problems(index, pool))
    if env.cluster.endpoint_access is EndpointAccess.PUBLIC_AND_PRIVATE and not env.cluster.public_access_cidrs:
        problems.append(
            "cluster.public_access_cidrs=[]: a public endpoint needs the CIDRs allowed to reach it, "
            "or set endpoint_access: private"
        )
    receivers = env.monitoring.receivers
    for index, receiver in enumerate(receivers):
        if receiver.channel is not None and receiver.kind is not ReceiverKind.SLACK:
            problems.append(
                f"monitoring.receivers[{index}].channel={receiver.channel!r}: only Slack receivers take a channel"
            )
    names = [r.name for r in receivers]
    if len(set(names)) != len(names):
        problems.append(f"monitoring.receivers={names}: receiver names must be unique")
    needs_critical = env.monitoring.require_critical_receiver or env.name == "prod"
    if needs_critical and not any("critical" in r.severities for r in receivers):
        problems.append(
            "monitoring.receivers: no receiver takes 'critical' alerts; add one (slack, pagerduty or webhook) "
            "with severities: [critical]"
        )
    pools = {
        pool.name: PoolCapacity(gpu_instance_type(pool.instance_type).gpus, pool.max_size)
        for pool in env.gpu_node_pools
    }
    job_names: set[str] = set()
    for index, job in enumerate(env.training_jobs):
        if job.name in job_names:
            problems.append(f"training_jobs[{index}].name={job.name!r}: already used; job names must be unique")
        job_names.add(job.name)
        problems.extend(job_problems(index, job, pools, env.registries.repositories))
    problems.extend(_inference_problems(env))
    for index, raw_alert in enumerate(env.monitoring.custom_alerts):
        try:
            parse_custom_rule(raw_alert, where=f"monitoring.custom_alerts[{index}]")
        except CustomRuleError as invalid:
            problems.extend(invalid.problems)
    if env.system_node_pool.max_size < env.system_node_pool.min_size:
        problems.append(
            f"system_node_pool.max_size={env.system_node_pool.max_size}: must be at least min_size "
            f"({env.system_node_pool.min_size})"
        )
    if not problems:
        total_gpus = sum(pool_max_gpus(p) for p in env.gpu_node_pools)
        if total_gpus > env.budget.max_gpus:
            problems.append(
                f"budget.max_gpus={env.budget.max_gpus}: the GPU pools reach {total_gpus} GPUs at max size; "
                "raise the budget or lower max_size"
            )
        total_cost = round(sum(pool_max_monthly_cost(p) for p in env.gpu_node_pools), 2)
        if total_cost > env.budget.max_monthly_gpu_cost_usd:
            problems.append(
                f"budget.max_monthly_gpu_cost_usd={env.budget.max_monthly_gpu_cost_usd}: the GPU pools cost up to "
                f"${total_cost:,.2f}/month at max size; raise the budget or lower max_size"
            )
    return problems


def _inference_problems(env: EnvironmentConfig) -> list[str]:
    problems: list[str] = []
    pools = {
        pool.name: PoolHardware(gpu_instance_type(pool.instance_type), pool.max_size) for pool in env.gpu_node_pools
    }
    # A TrainJob's JobSet owns a headless Service named after the job in the same namespace.
    job_names = {job.name for job in env.training_jobs}
    seen: dict[str, int] = {}
    for index, service in enumerate(env.inference_services):
        at = f"inference_services[{index}].name={service.name!r}"
        if service.name in seen:
            problems.append(f"{at}: already used by inference_services[{seen[service.name]}]; names must be unique")
        elif service.name in job_names:
            problems.append(
                f"{at}: a training job has this name and its JobSet owns the Service {service.name!r}; "
                f"rename the service (e.g. '{service.name}-api') and keep model_name for the name clients use"
            )
        seen.setdefault(service.name, index)
        problems.extend(service_problems(index, service, pools, env.registries.repositories))
    return problems


def _problems_of_valid_pools(raw_pools: Any) -> list[str]:
    """Semantic problems of the pools that parse on their own, so one bad pool hides no other problem."""
    if not isinstance(raw_pools, list):
        return []
    problems = []
    for index, raw_pool in enumerate(raw_pools):
        try:
            pool = GpuNodePoolConfig.model_validate(raw_pool)
        except ValidationError:
            continue
        problems.extend(_pool_problems(index, pool))
    return problems


def parse_environment(name: str, region: str | None, sections: dict[str, Any]) -> EnvironmentConfig:
    """Validate `sections` (the `modelplane:*` config keys, by section) into an EnvironmentConfig.

    Raises ConfigError listing every problem found.
    """
    raw: dict[str, Any] = {"name": name, "region": region, **sections}
    problems: list[str] = []
    if not region:
        problems.append("aws:region: required; set aws:region in the stack config (e.g. us-east-1)")
    try:
        env = EnvironmentConfig.model_validate(raw)
    except ValidationError as exc:
        problems.extend(p for p in _schema_problems(exc, raw) if not p.startswith("region"))
        problems.extend(_problems_of_valid_pools(raw.get("gpu_node_pools")))
        raise ConfigError(name, problems) from None
    problems.extend(_environment_problems(env))
    if problems:
        raise ConfigError(name, problems)
    return env
