"""Field rules the workload specs share: names, pinned images, artifact paths and environment variables.

Plain checks that raise `ValueError`, for the specs' pydantic validators to call. No Pulumi here:
`modelplane.config` imports the specs.
"""

from __future__ import annotations

import re

ARTIFACT_PATH = re.compile(r"^(s3://[a-z0-9.-]+/)?[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/?$")
IMAGE_REFERENCE = re.compile(r"^[a-z0-9]+([._/-][a-z0-9]+)*(:[A-Za-z0-9._-]{1,128}|@sha256:[a-f0-9]{64})$")
RESERVED_ENV_PREFIX = "MODELPLANE_"


def pinned_image(value: str, example: str) -> str:
    """An image in the platform's registry with a tag or digest that never moves; `example` shows one."""
    if not IMAGE_REFERENCE.match(value):
        raise ValueError(f"expected REPOSITORY:TAG or REPOSITORY@sha256:DIGEST, e.g. {example!r}")
    if value.endswith(":latest"):
        raise ValueError("':latest' is not a version: pin a tag or digest (the registry's tags are immutable)")
    return value


def artifact_path(value: str, example: str) -> str:
    """A path in the artifact store, or an s3:// URI, that cannot climb out of it; `example` shows one."""
    if not ARTIFACT_PATH.match(value) or ".." in value.split("/"):
        raise ValueError(f"expected a path in the artifact store ({example!r}) or an s3://bucket/key URI")
    return value


def repository_of(image: str) -> str:
    """The registry repository an image names (`trainer:1.0` -> `trainer`)."""
    return image.split("@", 1)[0].split(":", 1)[0]


def registry_problem(field: str, image: str, repositories: list[str]) -> str | None:
    """Why `image` (at config path `field`) is outside the platform's registries, or None."""
    repository = repository_of(image)
    if repository in repositories:
        return None
    return (
        f"{field}={image!r}: repository {repository!r} is not one of the platform's registries "
        f"({', '.join(repositories)})"
    )


def env_names(value: dict[str, str], reserved_because: str) -> dict[str, str]:
    """Extra environment variables, none of them modelplane's own (`reserved_because` says what those do)."""
    reserved = [key for key in value if key.startswith(RESERVED_ENV_PREFIX)]
    if reserved:
        raise ValueError(f"{reserved}: {RESERVED_ENV_PREFIX}* variables {reserved_because}")
    return value
