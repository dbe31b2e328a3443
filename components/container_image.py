"""An image built from this repository with Docker Build (buildx and BuildKit) and pushed to its ECR repository.

Workloads run `ContainerImage.ref` (`repository@sha256:...`), so every pod runs exactly the bytes that were built.
The default tag is derived from what goes into the image, because the platform's repositories have immutable
tags: a changed image gets a new tag, and an unchanged one is neither rebuilt nor pushed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NotRequired, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from modelplane.terms.gpu_catalog import CpuArchitecture

COMPONENT_TYPE = "modelplane:registry:ContainerImage"
REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
"""The default build context: the repository root, which holds the Dockerfiles and the .dockerignore."""
CACHE_TAG = "buildcache"
"""The tag of the BuildKit layer cache in each image's own repository."""
CONTENT_TAG_PREFIX = "src-"
BASE_IMAGE_ARG = "CUDA_BASE_IMAGE"
"""The Dockerfiles' ARG naming their base image; its default is a linux/amd64 digest."""
_PLATFORMS = {CpuArchitecture.X86_64: "linux/amd64", CpuArchitecture.ARM64: "linux/arm64"}
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_BUILD_ARG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ECR_REPOSITORY_URL = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/[a-z0-9]+(?:[._/-][a-z0-9]+)*$"
)


class ContainerImageArgs(TypedDict):
    repository_url: pulumi.Input[str]
    """The ECR repository pushed to (ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME), e.g. a ContainerRegistry URL."""
    dockerfile: str
    """The Dockerfile, relative to the context, e.g. "workloads/training/Dockerfile"."""
    context: NotRequired[str]
    """The build context directory; default the repository root. Its .dockerignore decides what the build sees."""
    tag: NotRequired[str]
    """The image tag; default "src-" and 12 hex digits of a digest of the Dockerfile, the build arguments, the
    platform and every file the .dockerignore lets in. A fixed tag fails to push a changed image to an
    immutable repository."""
    build_args: NotRequired[Mapping[str, str]]
    """Values of the Dockerfile's ARGs, e.g. {"CUDA_BASE_IMAGE": "nvidia/cuda:...@sha256:..."}; default none."""
    architecture: NotRequired[CpuArchitecture]
    """The CPU architecture of the nodes that run the image; default x86_64 (linux/amd64)."""
    cache: NotRequired[bool]
    """Import and export BuildKit's layer cache as the repository's "buildcache" tag; default True."""
    build_on_preview: NotRequired[bool]
    """Build (without pushing) during `pulumi preview` too; default False, so a preview needs no Docker daemon."""


@dataclass(frozen=True)
class EcrRegistry:
    """The registry an ECR repository URL points into."""

    address: str
    account_id: str
    region: str


def ecr_registry(repository_url: str) -> EcrRegistry:
    """The registry of `repository_url`; ValueError naming the input when it is not an ECR repository URL."""
    match = _ECR_REPOSITORY_URL.match(repository_url)
    if match is None:
        raise ValueError(
            f"repository_url={repository_url!r}: not an ECR repository URL "
            "(ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME); pass one of ContainerRegistry.repository_urls"
        )
    return EcrRegistry(
        address=repository_url.split("/", 1)[0], account_id=match.group("account"), region=match.group("region")
    )


def image_platform(architecture: CpuArchitecture, build_args: Mapping[str, str]) -> str:
    """The one platform the image is built for: the GPU nodes' (the Dockerfiles pin linux/amd64 base images)."""
    architecture = CpuArchitecture(architecture)
    if architecture is not CpuArchitecture.X86_64 and BASE_IMAGE_ARG not in build_args:
        raise ValueError(
            f"architecture={architecture.value!r}: the Dockerfiles' default {BASE_IMAGE_ARG} is a linux/amd64 "
            f"image; pass build_args[{BASE_IMAGE_ARG!r}] naming a {_PLATFORMS[architecture]} base image by digest"
        )
    return _PLATFORMS[architecture]


def check_tag(tag: str) -> str:
    """`tag` when Docker accepts it and it is not the cache's; ValueError naming the input otherwise."""
    if not _TAG.match(tag):
        raise ValueError(
            f"tag={tag!r}: not a Docker tag (up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-')"
        )
    if tag == CACHE_TAG:
        raise ValueError(f"tag={tag!r}: the layer cache's tag; choose another, or leave tag unset")
    return tag


def check_build_args(build_args: Mapping[str, str]) -> dict[str, str]:
    for key, value in build_args.items():
        if not _BUILD_ARG.match(key):
            raise ValueError(
                f"build_args[{key!r}]: not an ARG name (letters, digits and '_', not starting with a digit)"
            )
        if not isinstance(value, str):
            raise ValueError(f"build_args[{key!r}]={value!r}: must be a string")
    return dict(build_args)


def image_tags(repository_url: str, tag: str) -> list[str]:
    """The one tag pushed: `repository_url:tag`."""
    return [f"{repository_url}:{check_tag(tag)}"]


def cache_ref(repository_url: str) -> str:
    """Where the layer cache lives: the image's own repository, under the "buildcache" tag."""
    return f"{repository_url}:{CACHE_TAG}"


def registry_cache(
    ref: pulumi.Input[str],
) -> tuple[list[docker_build.CacheFromArgsDict], list[docker_build.CacheToArgsDict]]:
    """Cache import and export through the registry at `ref`.

    ECR takes the cache only as an OCI image manifest (not an index). `max` keeps the dependency stage's layers,
    which the final stage copies. A failed export does not fail the build: an immutable repository refuses to move
    the cache tag after its first push, and the image itself is what the deployment needs.
    """
    return (
        [{"registry": {"ref": ref}}],
        [
            {
                "registry": {
                    "ref": ref,
                    "image_manifest": True,
                    "oci_media_types": True,
                    "mode": docker_build.CacheMode.MAX,
                    "ignore_error": True,
                }
            }
        ],
    )


def build_locations(context: Path, dockerfile: str, cwd: Path) -> tuple[str, str]:
    """The context and Dockerfile as paths relative to `cwd`, the program's working directory (Docker Build
    resolves them from there): the same in every checkout, so moving the checkout neither rebuilds nor re-pushes."""
    return os.path.relpath(context, cwd), os.path.relpath(context / dockerfile, cwd)


def ignore_file(context: Path, dockerfile: str) -> Path:
    """The ignore file Docker applies: `<Dockerfile>.dockerignore` when it exists, else the context's .dockerignore."""
    specific = context / f"{dockerfile}.dockerignore"
    return specific if specific.is_file() else context / ".dockerignore"


def context_files(context: Path, dockerfile: str) -> list[str]:
    """The files the build sees, as sorted POSIX paths relative to `context`.

    The ignore file must be an allowlist this reads exactly as Docker does: `*` first, then `!<path>` lines (a file,
    or a folder and all below it) and `**/<name>` exclusions, a later line overriding an earlier one.
    """
    path = ignore_file(context, dockerfile)
    if not path.is_file():
        raise ValueError(
            f"context={str(context)!r}: no .dockerignore; add one listing what the images copy, or pass tag"
        )
    lines = [(n, line.strip()) for n, line in enumerate(path.read_text().splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    if not lines or lines[0][1] != "*":
        raise ValueError(f"{path}: must start with `*` (an allowlist), so only what is listed reaches the build")
    rules: list[tuple[bool, str]] = []
    for number, line in lines[1:]:
        if line.startswith("!") and not set("*?[") & set(line):
            rules.append((True, line[1:].strip("/")))
        elif line.startswith("**/") and "/" not in line[3:]:
            rules.append((False, line[3:]))
        else:
            raise ValueError(
                f"{path}:{number}: {line!r}: use `!<path>` to let a file or folder in, `**/<name>` to keep one out"
            )
    candidates: set[str] = set()
    for include, pattern in rules:
        target = context / pattern
        if include and target.is_file():
            candidates.add(pattern)
        elif include and target.is_dir():
            candidates.update(p.relative_to(context).as_posix() for p in target.rglob("*") if p.is_file())

    def admitted(relative: str) -> bool:
        verdict = False
        for include, pattern in rules:
            if include and (relative == pattern or relative.startswith(f"{pattern}/")):
                verdict = True
            elif not include and any(fnmatch.fnmatchcase(part, pattern) for part in relative.split("/")):
                verdict = False
        return verdict

    return sorted(relative for relative in candidates if admitted(relative))


def content_tag(context: Path, dockerfile: str, build_args: Mapping[str, str], platform: str) -> str:
    """ "src-" and 12 hex digits of a SHA-256 over everything the build reads: the Dockerfile, the build arguments,
    the platform, and each file the ignore file lets in (path, permissions, bytes)."""
    digest = hashlib.sha256()

    def add(*parts: bytes) -> None:
        for part in parts:
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)

    add((context / dockerfile).read_bytes(), platform.encode())
    for key in sorted(build_args):
        add(key.encode(), build_args[key].encode())
    for relative in context_files(context, dockerfile):
        file = context / relative
        add(relative.encode(), oct(stat.S_IMODE(file.stat().st_mode)).encode(), file.read_bytes())
    return CONTENT_TAG_PREFIX + digest.hexdigest()[:12]


class ContainerImage(pulumi.ComponentResource):
    """One image, built for the GPU nodes' platform, pushed to ECR with its layer cache beside it."""

    ref: pulumi.Output[str]
    """The pushed image by digest, `repository_url@sha256:...`: what a pod spec's `image` should say."""
    digest: pulumi.Output[str]
    """The pushed image's digest, `sha256:...`."""
    tag: str
    """The tag pushed (known before the build)."""

    def __init__(self, name: str, args: ContainerImageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(COMPONENT_TYPE, name, {}, opts)
        context = Path(args.get("context", REPOSITORY_ROOT)).resolve()
        dockerfile = args["dockerfile"]
        if not (context / dockerfile).is_file():
            raise ValueError(
                f"dockerfile={dockerfile!r}: no such file under context {str(context)!r}; give it relative to the "
                "context (e.g. 'workloads/training/Dockerfile'), from a checkout of the repository"
            )
        build_args = check_build_args(args.get("build_args", {}))
        platform = image_platform(args.get("architecture", CpuArchitecture.X86_64), build_args)
        self.tag = check_tag(args.get("tag") or content_tag(context, dockerfile, build_args, platform))
        if isinstance(args["repository_url"], str):
            ecr_registry(args["repository_url"])
        repository_url = pulumi.Output.from_input(args["repository_url"])
        context_location, dockerfile_location = build_locations(context, dockerfile, Path.cwd())

        registry = repository_url.apply(ecr_registry)
        token = aws.ecr.get_authorization_token_output(
            registry_id=registry.apply(lambda r: r.account_id),
            region=registry.apply(lambda r: r.region),
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        cache_from, cache_to = registry_cache(repository_url.apply(cache_ref)) if args.get("cache", True) else ([], [])
        tag = self.tag
        image = docker_build.Image(
            f"{name}-image",
            context={"location": context_location},
            dockerfile={"location": dockerfile_location},
            platforms=[docker_build.Platform(platform)],
            build_args=build_args or None,
            tags=repository_url.apply(lambda url: image_tags(url, tag)),
            push=True,
            build_on_preview=args.get("build_on_preview", False),
            cache_from=cache_from or None,
            cache_to=cache_to or None,
            registries=[
                {
                    "address": registry.apply(lambda r: r.address),
                    "username": token.user_name,
                    "password": pulumi.Output.secret(token.password),
                }
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.digest = image.digest
        self.ref = pulumi.Output.concat(repository_url, "@", image.digest)
        self.register_outputs({"ref": self.ref, "digest": self.digest, "tag": self.tag})
