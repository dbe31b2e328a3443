"""The modelplane platform program: one program, one `Pulumi.ENV.yaml` per environment."""

from pathlib import Path

from modelplane.platform import deploy_platform
from modelplane.stack_config import environment_from_pulumi_config

# The checkout this program runs from: the images are built from its Dockerfiles.
deploy_platform(environment_from_pulumi_config(), source_root=Path(__file__).resolve().parent.parent)
