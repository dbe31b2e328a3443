"""The environment's configuration: one typed, validated model of a stack's config.

Every problem is reported at once, each naming its path, the bad value and the fix,
before any resource exists. The same model is read from Pulumi config (in the stack
program) and from `stacks/Pulumi.ENV.yaml` (in the offline plan).
"""

from __future__ import annotations

import difflib
import json
import math
import re
import sys
from collections.abc import Sequence
from typing import Any, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from modelplane.components.alerting.custom_rules import CustomRuleError, parse_custom_rule
from modelplane.components.alerting.rules import DEFAULT_RUNBOOK_BASE_URL, runbook_base_problems
from modelplane.components.alertmanager_config import (
    DEFAULT_GROUP_BY,
    ROUTING_DEFAULTS,
    AlertReceiver,
    AlertRouting,
    ReceiverKind,
    routing_problems,
)
from modelplane.components.artifact_store import lustre_problems
from modelplane.components.cloudwatch_logs import retention_problems
from modelplane.components.container_logs import DEFAULT_NAMESPACE as LOGGING_NAMESPACE
from modelplane.components.container_logs import DEFAULT_RETENTION_DAYS as CONTAINER_LOG_RETENTION_DAYS
from modelplane.components.container_registry import repository_problems
from modelplane.components.eks_cluster import (
    CONTROL_PLANE_LOG_TYPES,
    DEFAULT_KUBERNETES_VERSION,
    DEFAULT_LOG_RETENTION_DAYS,
    EndpointAccess,
    cluster_problems,
)
from modelplane.components.eks_versions import kubernetes_version_warnings
from modelplane.components.gpu_nodes import (
    AmiFamily,
    CapacityType,
    gpu_pool_problems,
    provisioning_problems,
    scaling_problems,
)
from modelplane.components.gpu_queues import GpuFlavor, TeamQueue, queue_problems
from modelplane.components.karpenter_pools import node_class_tag_problems
from modelplane.components.monitoring_stack import DEFAULT_RETENTION, DEFAULT_STORAGE_GIB, prometheus_problems
from modelplane.components.node_pools import SYSTEM_INSTANCE_TYPE, system_instance_type_problems
from modelplane.components.subnet_plan import NatGateways, network_problems
from modelplane.regions import region_problems
from modelplane.terms.aws import tag_problems
from modelplane.terms.gpu_catalog import GPU_INSTANCE_TYPES, gpu_instance_type, monthly_cost_usd
from modelplane.terms.names import PLATFORM_TAG_KEYS, check_environment_name, check_pool_name, check_workload_name
from modelplane.terms.scheduling import WORKLOAD_NAMESPACE
from modelplane.workloads.serving.spec import (
    Accelerator,
    InferenceServiceSpec,
    PoolHardware,
    canary_replicas,
    service_problems,
)
from modelplane.workloads.training.spec import PoolCapacity, TrainingJobSpec, job_problems

CONFIG_NAMESPACE = "modelplane"


LONG_QUOTED = re.compile(r"'([^'\n]{200})[^'\n]+'")
"""A quoted value too long to read in a problem line (a pasted blob as a tag or a CIDR)."""


def _shortened(problem: str) -> str:
    return LONG_QUOTED.sub(lambda match: f"'{match.group(1)[:60]}...'", problem)


class ConfigError(Exception):
    """The environment's config is invalid; `problems` lists every reason, one readable line each."""

    def __init__(self, environment: str, problems: list[str]):
        self.environment = environment
        self.problems = [_shortened(problem) for problem in problems]
        problems = self.problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"environment {environment!r}: {len(problems)} config problem(s):\n{lines}")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class NetworkConfig(StrictModel):
    cidr: str = "10.0.0.0/16"
    """VPC CIDR, /16 to /20: split into one public and one private subnet per AZ."""
    az_count: int = 3
    """Availability zones to span (EKS needs at least 2)."""
    nat_gateways: NatGateways = NatGateways.PER_AZ


class ClusterConfig(StrictModel):
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
    endpoint_access: EndpointAccess = EndpointAccess.PRIVATE
    public_access_cidrs: list[str] = Field(default_factory=list)
    """CIDRs allowed to reach a public endpoint; required with `public_and_private`."""
    deployer_cidrs: list[str] = Field(default_factory=list)
    """Private CIDRs `pulumi up` reaches the private endpoint from (VPN pool, peered CI runners); required with
    `private`."""
    control_plane_logging: list[str] = Field(default_factory=lambda: list(CONTROL_PLANE_LOG_TYPES))
    log_retention_days: int = DEFAULT_LOG_RETENTION_DAYS
    """Days CloudWatch keeps the control-plane logs (one of the values CloudWatch accepts)."""
    admin_role_arns: list[str] = Field(default_factory=list)
    """IAM roles granted cluster admin through EKS access entries."""


class SystemNodePoolConfig(StrictModel):
    instance_type: str = SYSTEM_INSTANCE_TYPE
    min_size: int = Field(default=2, ge=1)
    """At least 1: the platform's controllers run here."""
    max_size: int = 4
    disk_size_gib: int = Field(default=50, ge=20, le=16384)


class GpuNodePoolConfig(StrictModel):
    name: str
    """DNS label naming the pool; workloads select it by this name."""
    instance_type: str = "g6.xlarge"
    capacity_type: CapacityType = CapacityType.ON_DEMAND
    min_size: int = 0
    max_size: int = 1
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
    def _pool_name(cls, value: str) -> str:
        return check_pool_name(value)


class FsxConfig(StrictModel):
    storage_capacity_gib: int = 1200
    """PERSISTENT_2 capacity: 1200, 2400, then multiples of 2400."""
    throughput_per_tib: int = 250
    """MB/s per TiB: 125, 250, 500 or 1000."""
    import_prefix: str = "datasets/"
    """Bucket prefix the file system links to."""


class StorageConfig(StrictModel):
    checkpoint_version_days: int = Field(default=30, ge=1)
    """Days to keep noncurrent versions of checkpoints before they expire."""
    force_destroy: bool = False
    """Let `destroy` delete a non-empty bucket (never in prod)."""
    fsx: FsxConfig | None = None


class RegistryConfig(StrictModel):
    repositories: list[str] = Field(default_factory=lambda: ["trainer", "server"])
    untagged_expiry_days: int = Field(default=7, ge=1)


class LoggingConfig(StrictModel):
    retention_days: int = CONTAINER_LOG_RETENTION_DAYS
    """Days CloudWatch keeps container logs (a value CloudWatch allows: 1, 3, 5, 7, 14, 30, 60, 90, ...)."""


class ImagesConfig(StrictModel):
    build: bool = True
    """Build the trainer and server images from this checkout and push them on `pulumi up` (Docker Build provider);
    false: CI builds and pushes them, and the workloads run the tags or digests their specs name."""


class BudgetConfig(StrictModel):
    max_gpus: int = Field(ge=0)
    """Most GPUs all pools together may reach at their max size."""
    max_monthly_gpu_cost_usd: float = Field(ge=0)
    """Most the pools may cost a month at max size, on-demand."""


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


class MonitoringConfig(StrictModel):
    prometheus_retention: str = DEFAULT_RETENTION
    """How long Prometheus keeps samples."""
    prometheus_storage_gib: int = DEFAULT_STORAGE_GIB
    """Persistent volume for Prometheus' data."""
    grafana_admin_password_secret: str = "grafana_admin_password"
    """Secret config key holding Grafana's admin password (`pulumi config set --secret`)."""
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    group_by: list[str] = Field(default_factory=lambda: list(DEFAULT_GROUP_BY))
    group_wait: str = ROUTING_DEFAULTS["group_wait"]
    group_interval: str = ROUTING_DEFAULTS["group_interval"]
    repeat_interval: str = ROUTING_DEFAULTS["repeat_interval"]
    custom_alerts: list[dict[str, Any]] = Field(default_factory=list)
    """Extra alerting rules (alert, expr, for, severity, summary, ...), checked by promtool in `plan`."""
    require_critical_receiver: bool = False
    """Fail validation unless some receiver takes `critical` alerts (always on in the `prod` environment)."""
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL
    """Where the runbooks are published: each shipped alert's `runbook_url` is `<base>/<Alert>.md`; default the
    pages in this repository (docs/runbooks/)."""

    def routing(self) -> AlertRouting:
        """The alert routing as the monitoring stack takes it."""
        receivers: list[AlertReceiver] = [
            {"name": r.name, "kind": r.kind, "secret": r.secret, "severities": r.severities, "channel": r.channel}
            for r in self.receivers
        ]
        return {
            "receivers": receivers,
            "group_by": self.group_by,
            "group_wait": self.group_wait,
            "group_interval": self.group_interval,
            "repeat_interval": self.repeat_interval,
        }

    def secret_keys(self) -> list[str]:
        return [self.grafana_admin_password_secret, *(r.secret for r in self.receivers)]


class TeamConfig(StrictModel):
    name: str
    """DNS label: the team's namespace, and its GPU queue's name (`team-<name>`)."""
    gpu_quota: dict[str, int] = Field(default_factory=dict)
    """GPUs per pool the team is guaranteed (Kueue's nominal quota); pools not listed: none of its own."""
    can_borrow: bool = True
    """Run on other teams' idle quota in the shared cohort (given back when they need it)."""

    @field_validator("name")
    @classmethod
    def _team_name(cls, value: str) -> str:
        return check_workload_name(value)


BUILT_REPOSITORIES = {"trainer": "workloads/training/Dockerfile", "server": "workloads/serving/Dockerfile"}
"""The repositories whose images the platform can build from a checkout, and their Dockerfiles."""
DEFAULT_TEAM = WORKLOAD_NAMESPACE
"""The one team of an environment that declares none: its namespace is the workload namespace."""
RESERVED_NAMESPACES = frozenset(
    {
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "monitoring",
        "kueue-system",
        "kubeflow-system",
        LOGGING_NAMESPACE,
    }
)
"""Namespaces the cluster or the platform's own controllers use: no team may take one."""


class EnvironmentConfig(StrictModel):
    name: str
    region: str
    network: NetworkConfig = NetworkConfig()
    cluster: ClusterConfig = ClusterConfig()
    system_node_pool: SystemNodePoolConfig = SystemNodePoolConfig()
    gpu_node_pools: list[GpuNodePoolConfig] = Field(default_factory=list)
    storage: StorageConfig = StorageConfig()
    registries: RegistryConfig = RegistryConfig()
    images: ImagesConfig = ImagesConfig()
    logging: LoggingConfig = LoggingConfig()
    budget: BudgetConfig
    monitoring: MonitoringConfig = MonitoringConfig()
    training_jobs: list[TrainingJobSpec] = Field(default_factory=list)
    inference_services: list[InferenceServiceSpec] = Field(default_factory=list)
    teams: list[TeamConfig] = Field(default_factory=list)
    """The ML teams sharing the platform; none: one team, `ml`, guaranteed every pool's GPUs."""
    tags: dict[str, str] = Field(default_factory=dict)

    def queue_flavors(self) -> list[GpuFlavor]:
        """The pools queued work runs on (those a training job or a team's quota names), each with the GPUs it
        can have: the pool's GPUs at max size, less what its inference services reach at their max (Kueue does not
        count serving, so a quota on those GPUs would be a promise it could not keep)."""
        queued = {job.gpu_pool for job in self.training_jobs} | {p for t in self.teams for p in t.gpu_quota}
        return [
            GpuFlavor(pool.name, max(0, pool_max_gpus(pool) - self.serving_gpus_at_max(pool.name)))
            for pool in self.gpu_node_pools
            if pool_is_known(pool) and pool.name in queued
        ]

    def serving_gpus_at_max(self, pool_name: str) -> int:
        """GPUs the inference services on `pool_name` take at their max replicas, canaries included (one each)."""
        return sum(
            service.replicas.max + (canary_replicas(service) if service.canary_image else 0)
            for service in self.inference_services
            if service.accelerator is Accelerator.GPU and service.gpu_pool == pool_name
        )

    def effective_teams(self) -> list[TeamConfig]:
        """The declared teams, or the default team guaranteed every GPU queued work can have."""
        if self.teams:
            return list(self.teams)
        return [TeamConfig(name=DEFAULT_TEAM, gpu_quota={f.pool: f.gpus_at_max for f in self.queue_flavors()})]

    def team_queues(self) -> list[TeamQueue]:
        """Each team's GPU queue: its namespace is its name."""
        return [TeamQueue(t.name, t.name, dict(t.gpu_quota), t.can_borrow) for t in self.effective_teams()]

    def team_of(self, declared: str | None) -> str:
        """The team a workload runs as: the one it names, else the default team."""
        return declared or DEFAULT_TEAM

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


SHOWN_VALUE_MAX = 80
"""A problem shows at most this much of a bad value (a 5,000-character tag is named, not printed)."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_VALUE_MAX else f"{text[: SHOWN_VALUE_MAX - 3]}...({len(text)} characters)"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds directly, in a list, in a dict's values or as an optional."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation) if get_origin(annotation) is not None else ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _fields_at(loc: tuple[str | int, ...]) -> list[str]:
    """The field names of the model at `loc` (for a spelling hint); empty when `loc` is not in a model."""
    model: type[BaseModel] | None = EnvironmentConfig
    for part in loc:
        if model is None:
            return []
        if isinstance(part, str):
            field = model.model_fields.get(part)
            model = _model_of(field.annotation) if field is not None else None
    return list(model.model_fields) if model is not None else []


_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


def _type_hint(kind: str, value: Any, leaf: str | int) -> str:
    """How to write a value YAML read as the wrong type."""
    if kind == "string_type" and isinstance(value, bool):
        return f'; YAML reads unquoted true/false (and yes/no/on/off) as booleans: quote the text ({leaf}: "...")'
    if kind == "string_type" and isinstance(value, float):
        return (
            f"; YAML read an unquoted number, dropping any trailing zero (1.30 reads as 1.3): quote the value as "
            f'meant, e.g. {leaf}: "{value}0"'
        )
    if kind == "string_type" and isinstance(value, int):
        return f'; YAML read an unquoted number: quote it ({leaf}: "{value}")'
    if kind in ("int_type", "float_type") and isinstance(value, str) and _NUMBER.match(value):
        return "; a number written as a string: remove the quotes"
    if kind == "bool_type" and isinstance(value, str):
        return "; write true or false, without quotes"
    return ""


_TYPE_MESSAGES = {
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}
"""Pydantic's wording for JSON types, in the words of the YAML the user wrote."""
_BOUND_MESSAGES = {
    "greater_than_equal": ("ge", "must be at least {}"),
    "greater_than": ("gt", "must be more than {}"),
    "less_than_equal": ("le", "must be at most {}"),
    "less_than": ("lt", "must be less than {}"),
    "enum": ("expected", "must be one of {}"),
    "literal_error": ("expected", "must be one of {}"),
    "finite_number": (None, "must be a finite number"),
}


def _message(item: Any) -> str:
    kind = str(item["type"])
    if kind in _TYPE_MESSAGES:
        return _TYPE_MESSAGES[kind]
    if kind in _BOUND_MESSAGES:
        key, template = _BOUND_MESSAGES[kind]
        context = item.get("ctx") or {}
        if key is None or key in context:
            return template.format(context.get(key) if key else "")
    return str(item["msg"]).removeprefix("Value error, ")


def _schema_problems(error: ValidationError, raw: dict[str, Any]) -> list[str]:
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        message = _message(item)
        if item["type"] == "missing":
            where = f"set {CONFIG_NAMESPACE}:{loc[0]} in the stack config" if len(loc) == 1 else "add it"
            problems.append(f"{_location(loc)}: required; {where}")
        elif item["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), _fields_at(loc[:-1]), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else "remove it or fix its spelling"
            problems.append(f"{_location(loc)}: unknown key; {hint}")
        else:
            value = _value_at(raw, loc)
            hint = _type_hint(str(item["type"]), value, loc[-1] if loc else "")
            problems.append(f"{_location(loc)}={_shown(value)}: {message}{hint}")
    return problems


Model = TypeVar("Model", bound=BaseModel)


def validate_model(model: type[Model], raw: Any) -> Model:
    """`raw` (JSON-shaped, as Pulumi passes config) as `model`, strictly: a number written as a string, or a
    string YAML read as a number, is a problem, never silently converted."""
    return model.model_validate_json(json.dumps(raw, default=str), strict=True)


def _unbuildable(name: str) -> ValueError:
    return ValueError(f"{name}: no value for the semantic checks")


def _best_effort(model: type[Model], raw: Any) -> Model:
    """`raw` as `model`, keeping every field that validates, so the checks across fields and sections still run
    while some fields are wrong: a nested model is rebuilt the same way, a wrong field takes its default, and a
    wrong required text field keeps its text (checks on it are dropped: its own problem is reported).

    Raises ValueError when a required field has no usable value.
    """
    if not isinstance(raw, dict):
        raise _unbuildable(model.__name__)
    values = {key: value for key, value in raw.items() if key in model.model_fields}
    try:
        return validate_model(model, values)
    except ValidationError as exc:
        bad = {str(item["loc"][0]) for item in exc.errors() if item["loc"]}
        if any(not item["loc"] for item in exc.errors()):
            raise _unbuildable(model.__name__) from None
    substitutes: dict[str, Any] = {}
    for name in bad & set(values):
        field = model.model_fields[name]
        nested = _model_of(field.annotation)
        value = values.pop(name)
        if nested is not None and isinstance(value, list) and get_origin(field.annotation) is list:
            substitutes[name] = _best_effort_items(nested, value)
        elif nested is not None and isinstance(value, dict) and _model_of(field.annotation) is field.annotation:
            try:
                substitutes[name] = _best_effort(nested, value)
            except ValueError:
                if field.is_required():
                    raise
        elif field.is_required():
            if field.annotation is not str:
                raise _unbuildable(f"{model.__name__}.{name}")
            substitutes[name] = value if isinstance(value, str) else "" if value is None else json.dumps(value)
    missing = {name for name, field in model.model_fields.items() if field.is_required() and name not in values}
    lenient = create_model(  # type: ignore[call-overload]
        f"BestEffort{model.__name__}", __base__=model, **{name: (Any, None) for name in missing}
    )
    try:
        kept = validate_model(lenient, values)
    except (ValidationError, TypeError, ValueError):
        raise _unbuildable(model.__name__) from None
    fields = {name: getattr(kept, name) for name in model.model_fields}
    return model.model_construct(**{**fields, **substitutes})


def _best_effort_items(model: type[Model], items: list[Any]) -> list[Model]:
    """Each item rebuilt by `_best_effort`, up to the first that cannot be (later ones would change index)."""
    built = []
    for item in items:
        try:
            built.append(_best_effort(model, item))
        except ValueError:
            break
    return built


_PROBLEM_PATH = re.compile(r"^([A-Za-z_][\w.\[\]'\"-]*?)(?:=|: |\[')")


def _problem_path(problem: str) -> str:
    match = _PROBLEM_PATH.match(problem)
    return match.group(1) if match else ""


def _not_under(problems: list[str], reported: set[str]) -> list[str]:
    """`problems` less those about a path whose value is already reported as wrong."""

    def covered(path: str) -> bool:
        """About a wrong value, inside one, or about what holds one (checked with a stand-in for it)."""
        return any(
            path == bad or path.startswith((f"{bad}.", f"{bad}[")) or bad.startswith((f"{path}.", f"{path}["))
            for bad in reported
            if path
        )

    return [problem for problem in problems if not covered(_problem_path(problem))]


def _pool_problems(index: int, pool: GpuNodePoolConfig) -> list[str]:
    at = f"gpu_node_pools[{index}]"
    sizes = (pool.min_size, pool.max_size, pool.desired_size)
    return (
        scaling_problems(at, *sizes)
        + provisioning_problems(at, pool.capacity_type, *sizes)
        + gpu_pool_problems(
            at,
            instance_type=pool.instance_type,
            capacity_type=pool.capacity_type,
            efa=pool.efa,
            capacity_reservation_id=pool.capacity_reservation_id,
        )
    )


def pool_is_known(pool: GpuNodePoolConfig) -> bool:
    return pool.instance_type in GPU_INSTANCE_TYPES


def pool_max_gpus(pool: GpuNodePoolConfig) -> int:
    return gpu_instance_type(pool.instance_type).gpus * pool.max_size


def pool_max_monthly_cost(pool: GpuNodePoolConfig) -> float:
    return monthly_cost_usd(gpu_instance_type(pool.instance_type), pool.max_size, pool.usd_per_hour)


def _identity_problems(env: EnvironmentConfig) -> list[str]:
    """The environment's name, region and tags: what every AWS name and tag is built from."""
    problems = []
    try:
        check_environment_name(env.name)
    except ValueError as invalid:
        problems.append(str(invalid))
    if env.region:
        problems += region_problems("aws:region", env.region)
    problems += tag_problems("tags", env.tags)
    problems += [
        f"tags[{key!r}]: modelplane sets this tag on what it creates; use another key"
        for key in env.tags
        if key in PLATFORM_TAG_KEYS
    ]
    problems += node_class_tag_problems("tags", env.tags)
    return problems


def _infrastructure_problems(env: EnvironmentConfig) -> list[str]:
    """Network, cluster, system pool, storage and registries, each checked by the component that owns it."""
    cluster = env.cluster
    problems = network_problems("network", env.network.cidr, env.network.az_count)
    problems += cluster_problems(
        "cluster",
        kubernetes_version=cluster.kubernetes_version,
        endpoint_access=cluster.endpoint_access,
        public_access_cidrs=cluster.public_access_cidrs,
        deployer_cidrs=cluster.deployer_cidrs,
        control_plane_logging=cluster.control_plane_logging,
        log_retention_days=cluster.log_retention_days,
        admin_role_arns=cluster.admin_role_arns,
    )
    system = env.system_node_pool
    problems += system_instance_type_problems("system_node_pool.instance_type", system.instance_type)
    problems += scaling_problems("system_node_pool", system.min_size, system.max_size, None)
    if env.storage.fsx is not None:
        fsx = env.storage.fsx
        problems += lustre_problems("storage.fsx", fsx.storage_capacity_gib, fsx.throughput_per_tib, fsx.import_prefix)
    problems += repository_problems("registries.repositories", env.registries.repositories)
    problems += retention_problems("logging.retention_days", env.logging.retention_days)
    return problems


def _gpu_pool_problems(env: EnvironmentConfig) -> list[str]:
    """Each pool's own problems, and names that repeat."""
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
    return problems


def _monitoring_problems(env: EnvironmentConfig) -> list[str]:
    """Prometheus' sizing, the alert routing, the receivers' secrets, custom alerts and, where required,
    a receiver for critical alerts."""
    monitoring = env.monitoring
    problems = prometheus_problems("monitoring", monitoring.prometheus_retention, monitoring.prometheus_storage_gib)
    problems += runbook_base_problems("monitoring.runbook_base_url", monitoring.runbook_base_url)
    problems += routing_problems("monitoring", monitoring.routing())
    for index, receiver in enumerate(monitoring.receivers):
        if receiver.secret in SECTIONS:
            problems.append(
                f"monitoring.receivers[{index}].secret={receiver.secret!r}: names a config section; "
                "use a key of its own, e.g. 'slack_webhook_url'"
            )
    needs_critical = monitoring.require_critical_receiver or env.name == "prod"
    if needs_critical and not any("critical" in r.severities for r in monitoring.receivers):
        problems.append(
            "monitoring.receivers: no receiver takes 'critical' alerts; add one (slack, pagerduty or webhook) "
            "with severities: [critical]"
        )
    for index, raw_alert in enumerate(monitoring.custom_alerts):
        try:
            parse_custom_rule(raw_alert, where=f"monitoring.custom_alerts[{index}]")
        except CustomRuleError as invalid:
            problems.extend(invalid.problems)
    return problems


def _training_job_problems(env: EnvironmentConfig) -> list[str]:
    problems: list[str] = []
    job_names: set[str] = set()
    for index, job in enumerate(env.training_jobs):
        if job.name in job_names:
            problems.append(f"training_jobs[{index}].name={job.name!r}: already used; job names must be unique")
        job_names.add(job.name)
        # A pool of unknown hardware (reported with the pool) is checked for its node count only.
        pools = {
            pool.name: PoolCapacity(
                gpu_instance_type(pool.instance_type).gpus if pool_is_known(pool) else job.gpus_per_node,
                pool.max_size,
            )
            for pool in env.gpu_node_pools
        }
        problems.extend(job_problems(index, job, pools, env.registries.repositories))
    return problems


def _team_problems(env: EnvironmentConfig) -> list[str]:
    """Teams and their quotas (as Kueue's queues check them), and every workload's team."""
    problems = queue_problems(env.team_queues(), env.queue_flavors())
    names = [team.name for team in env.teams]
    problems += [
        f"teams[{index}].name={name!r}: the platform uses this namespace; pick another"
        for index, name in enumerate(names)
        if name in RESERVED_NAMESPACES
    ]
    declared = [("training_jobs", index, job.team) for index, job in enumerate(env.training_jobs)]
    declared += [("inference_services", index, service.team) for index, service in enumerate(env.inference_services)]
    for section, index, team in declared:
        at = f"{section}[{index}].team={team!r}"
        if env.teams and team not in names:
            problems.append(f"{at}: this environment's teams are {', '.join(names)}; name one of them")
        elif not env.teams and team not in (None, DEFAULT_TEAM):
            problems.append(
                f"{at}: no teams are declared; add it to modelplane:teams, or leave team unset to run as "
                f"the default team {DEFAULT_TEAM!r}"
            )
    return problems


def _built_image_uses(env: EnvironmentConfig) -> list[tuple[str, str, str, str]]:
    """(config path, image, repository, tag) of every workload image the platform builds from this checkout."""
    if not env.images.build:
        return []
    used = [(f"training_jobs[{i}].image", job.image) for i, job in enumerate(env.training_jobs)]
    used += [(f"inference_services[{i}].image", service.image) for i, service in enumerate(env.inference_services)]
    uses = []
    for at, image in used:
        repository, _, tag = image.partition(":")
        if "@" not in image and repository in BUILT_REPOSITORIES:
            uses.append((at, image, repository, tag))
    return uses


def built_image_tags(env: EnvironmentConfig) -> dict[str, str]:
    """Repository -> the tag its one build from this checkout carries (empty when CI builds the images)."""
    return {repository: tag for _, _, repository, tag in _built_image_uses(env)}


def _image_problems(env: EnvironmentConfig) -> list[str]:
    """One build per repository: the workloads that run a built repository must agree on its tag."""
    first: dict[str, tuple[str, str]] = {}
    problems = []
    for at, image, repository, tag in _built_image_uses(env):
        first_at, first_tag = first.setdefault(repository, (at, tag))
        if first_tag != tag:
            problems.append(
                f"{at}={image!r}: images.build makes one {repository} image from this checkout, tagged "
                f"{first_tag!r} by {first_at}; use the same tag, or set images.build: false and push both from CI"
            )
    return problems


def environment_warnings(env: EnvironmentConfig) -> list[str]:
    """What is valid but costs or risks more than it should: a Kubernetes version in extended support."""
    return kubernetes_version_warnings("cluster", env.cluster.kubernetes_version)


def _budget_problems(env: EnvironmentConfig) -> list[str]:
    """The pools at their max size against the GPU and cost budgets."""
    problems = []
    # Pools of unknown hardware are reported with the pool; the known ones alone may already break the budget.
    known_pools = [pool for pool in env.gpu_node_pools if pool_is_known(pool)]
    total_gpus = sum(pool_max_gpus(p) for p in known_pools)
    if total_gpus > env.budget.max_gpus:
        problems.append(
            f"budget.max_gpus={env.budget.max_gpus}: the GPU pools reach {total_gpus} GPUs at max size; "
            "raise the budget or lower max_size"
        )
    total_cost = round(sum(pool_max_monthly_cost(p) for p in known_pools), 2)
    if total_cost > env.budget.max_monthly_gpu_cost_usd:
        problems.append(
            f"budget.max_monthly_gpu_cost_usd={env.budget.max_monthly_gpu_cost_usd}: the GPU pools cost up to "
            f"${total_cost:,.2f}/month at max size; raise the budget or lower max_size"
        )
    return problems


def _environment_problems(env: EnvironmentConfig) -> list[str]:
    """Every check of the parts of `env`, and across them; each check reads only what it needs, so a problem in
    one part hides none in another."""
    return (
        _identity_problems(env)
        + _infrastructure_problems(env)
        + _gpu_pool_problems(env)
        + _monitoring_problems(env)
        + _training_job_problems(env)
        + _inference_problems(env)
        + _team_problems(env)
        + _image_problems(env)
        + _budget_problems(env)
    )


def _inference_problems(env: EnvironmentConfig) -> list[str]:
    problems: list[str] = []
    pools = {
        pool.name: PoolHardware(gpu_instance_type(pool.instance_type), pool.max_size)
        for pool in env.gpu_node_pools
        if pool_is_known(pool)
    }
    # A pool of unknown hardware is reported with the pool; its services are checked for everything else.
    unknown_hardware = {pool.name for pool in env.gpu_node_pools if not pool_is_known(pool)}
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
        found = service_problems(index, service, pools, env.registries.repositories)
        if service.gpu_pool in unknown_hardware:
            found = [p for p in found if not p.startswith(f"inference_services[{index}].gpu_pool=")]
        problems.extend(found)
    return problems


UNCHECKED_BUDGET = BudgetConfig.model_construct(max_gpus=sys.maxsize, max_monthly_gpu_cost_usd=math.inf)
"""Stands in for a budget that does not parse (reported as such): the pools are not checked against it."""


def _best_effort_environment(raw: dict[str, Any]) -> EnvironmentConfig | None:
    """The environment as far as it parses (see `_best_effort`), for the checks across its parts."""
    try:
        budget = validate_model(BudgetConfig, raw.get("budget"))
    except ValidationError:
        budget = UNCHECKED_BUDGET
    stand_in = {"max_gpus": 0, "max_monthly_gpu_cost_usd": 0}
    try:
        env = _best_effort(EnvironmentConfig, {**raw, "budget": stand_in})
    except ValueError:
        return None
    return env.model_copy(update={"budget": budget})


def referenced_secret_names(sections: dict[str, Any]) -> list[str]:
    """The secret config keys the sections name (Grafana's password, each receiver's), read leniently: a stack
    file's secrets are told apart from unknown keys even while its monitoring section has problems."""
    monitoring = sections.get("monitoring")
    monitoring = monitoring if isinstance(monitoring, dict) else {}
    default = MonitoringConfig.model_fields["grafana_admin_password_secret"].default
    names = [monitoring.get("grafana_admin_password_secret", default)]
    receivers = monitoring.get("receivers")
    names += [r.get("secret") for r in receivers if isinstance(r, dict)] if isinstance(receivers, list) else []
    return [name for name in names if isinstance(name, str)]


def parse_environment(
    name: str, region: Any, sections: dict[str, Any], known_problems: Sequence[str] = ()
) -> EnvironmentConfig:
    """Validate `sections` (the `modelplane:*` config keys, by section) into an EnvironmentConfig.

    Raises ConfigError listing every problem found, after `known_problems` (those the caller found reading the
    config). Checks across fields and sections run on every part that parses, so no problem hides another.
    """
    raw: dict[str, Any] = {"name": name, "region": region, **sections}
    problems = list(known_problems)
    if region is None or region == "":
        problems.append("aws:region: required; set aws:region in the stack config (e.g. us-east-1)")
    try:
        env: EnvironmentConfig | None = validate_model(EnvironmentConfig, raw)
        schema_problems: list[str] = []
    except ValidationError as exc:
        schema_problems = [p for p in _schema_problems(exc, raw) if not p.startswith(("name", "region"))]
        env = _best_effort_environment(raw)
    problems += schema_problems
    if env is not None:
        problems += _not_under(_environment_problems(env), {_problem_path(p) for p in schema_problems})
    if problems or env is None:
        raise ConfigError(name, problems)
    return env
