"""The modelplane platform program: one program, one `Pulumi.ENV.yaml` per environment."""

from modelplane.platform import deploy_platform
from modelplane.stack_config import environment_from_pulumi_config

deploy_platform(environment_from_pulumi_config())
