import re
from pathlib import Path
from typing import Any

import pulumi_aws as aws
import pytest

from modelplane.components.container_image import (
    CACHE_TAG,
    COMPONENT_TYPE,
    REPOSITORY_ROOT,
    ContainerImage,
    ContainerImageArgs,
    build_locations,
    cache_ref,
    content_tag,
    context_files,
    ecr_registry,
    image_platform,
    image_tags,
    registry_cache,
)
from modelplane.terms.gpu_catalog import CpuArchitecture
from tests.resources import assert_rejected_before_children

IMAGE = "docker-build:index:Image"
URL = "123456789012.dkr.ecr.us-east-1.amazonaws.com/modelplane-dev/trainer"
TRAINER = "workloads/training/Dockerfile"
DIGEST_REF = r"^123456789012\.dkr\.ecr\.us-east-1\.amazonaws\.com/mp/trainer@sha256:[0-9a-f]{64}$"


def _image(overrides: dict[str, Any] | None = None, outputs: dict[str, Any] | None = None):
    """A program with an ECR repository and the trainer image pushed to it."""

    def program() -> None:
        repository = aws.ecr.Repository("trainer", name="mp/trainer")
        args: ContainerImageArgs = {"repository_url": repository.repository_url, "dockerfile": TRAINER}
        args.update(overrides or {})  # type: ignore[typeddict-item]
        image = ContainerImage("trainer", args)
        if outputs is not None:
            image.ref.apply(lambda v: outputs.__setitem__("ref", v))
            image.digest.apply(lambda v: outputs.__setitem__("digest", v))
            outputs["tag"] = image.tag

    return program


@pytest.fixture
def built(run_program, monkeypatch):
    monkeypatch.chdir(REPOSITORY_ROOT)
    outputs: dict[str, Any] = {}
    return run_program(_image(outputs=outputs)), outputs


def test_one_image_parented_to_the_component(built):
    registered, _ = built
    component = registered.one(COMPONENT_TYPE, "trainer")
    assert [r.type for r in registered.children_of(component)] == [IMAGE]


def test_the_image_builds_the_dockerfile_from_the_repository_root_and_pushes(built):
    registered, outputs = built
    image = registered.one(IMAGE, "trainer-image").inputs
    assert image["context"] == {"location": "."}
    assert image["dockerfile"] == {"location": TRAINER}
    assert image["platforms"] == ["linux/amd64"]
    assert image["push"] is True
    assert image["buildOnPreview"] is False
    assert image["tags"] == [f"123456789012.dkr.ecr.us-east-1.amazonaws.com/mp/trainer:{outputs['tag']}"]
    assert outputs["tag"] == content_tag(REPOSITORY_ROOT, TRAINER, {}, "linux/amd64")
    assert "buildArgs" not in image


def test_the_image_logs_in_to_its_ecr_registry_with_a_secret_password(built):
    registered, _ = built
    (registry,) = registered.one(IMAGE).inputs["registries"]
    assert registry == {
        "address": "123456789012.dkr.ecr.us-east-1.amazonaws.com",
        "username": "AWS",
        "password": "[secret]",
    }


def test_the_layer_cache_lives_in_the_same_repository(built):
    registered, _ = built
    image = registered.one(IMAGE).inputs
    ref = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/mp/trainer:{CACHE_TAG}"
    assert image["cacheFrom"] == [{"registry": {"ref": ref}}]
    assert image["cacheTo"] == [
        {"registry": {"ref": ref, "imageManifest": True, "ociMediaTypes": True, "mode": "max", "ignoreError": True}}
    ]


def test_ref_is_the_repository_at_the_pushed_digest(built):
    _, outputs = built
    assert outputs["digest"].startswith("sha256:")
    assert outputs["ref"] == f"123456789012.dkr.ecr.us-east-1.amazonaws.com/mp/trainer@{outputs['digest']}"
    assert re.match(DIGEST_REF, outputs["ref"])


def test_the_plan_gives_the_same_digest_for_the_same_tag_and_a_new_one_for_a_new_tag(run_program):
    first: dict[str, Any] = {}
    again: dict[str, Any] = {}
    other: dict[str, Any] = {}
    run_program(_image({"tag": "0.1.0"}, first))
    run_program(_image({"tag": "0.1.0"}, again))
    run_program(_image({"tag": "0.1.1"}, other))
    assert first["ref"] == again["ref"] != other["ref"]


def test_build_args_architecture_and_cache_are_passed_through(run_program):
    base = "nvidia/cuda:13.0.2-base-ubuntu24.04@sha256:" + "a" * 64
    registered = run_program(
        _image({"build_args": {"CUDA_BASE_IMAGE": base}, "architecture": CpuArchitecture.ARM64, "cache": False})
    )
    image = registered.one(IMAGE).inputs
    assert image["buildArgs"] == {"CUDA_BASE_IMAGE": base}
    assert image["platforms"] == ["linux/arm64"]
    assert "cacheFrom" not in image and "cacheTo" not in image


def test_paths_are_relative_to_the_programs_directory(run_program, monkeypatch):
    monkeypatch.chdir(REPOSITORY_ROOT / "stacks")
    image = run_program(_image()).one(IMAGE).inputs
    assert image["context"] == {"location": ".."}
    assert image["dockerfile"] == {"location": f"../{TRAINER}"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dockerfile": "workloads/training/Dockerfil"}, r"^dockerfile='workloads/training/Dockerfil': no such file"),
        ({"tag": "-latest"}, r"^tag='-latest': not a Docker tag"),
        ({"tag": CACHE_TAG}, r"^tag='buildcache': the layer cache's tag"),
        ({"build_args": {"CUDA-BASE": "x"}}, r"^build_args\['CUDA-BASE'\]: not an ARG name"),
        ({"architecture": CpuArchitecture.ARM64}, r"^architecture='arm64': .* pass build_args\['CUDA_BASE_IMAGE'\]"),
        ({"repository_url": "docker.io/library/trainer"}, r"^repository_url='docker.io/library/trainer': not an ECR"),
    ],
)
def test_bad_inputs_fail_before_any_child_resource(run_program, overrides, message):
    args: ContainerImageArgs = {"repository_url": URL, "dockerfile": TRAINER}
    args.update(overrides)
    assert_rejected_before_children(run_program, lambda: ContainerImage("trainer", args), message, [COMPONENT_TYPE])


def test_ecr_registry_of_a_repository_url():
    registry = ecr_registry(URL)
    assert (registry.address, registry.account_id, registry.region) == (
        "123456789012.dkr.ecr.us-east-1.amazonaws.com",
        "123456789012",
        "us-east-1",
    )
    assert ecr_registry("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/p/server").region == "cn-north-1"


@pytest.mark.parametrize("url", ["trainer", "123456789012.dkr.ecr.us-east-1.amazonaws.com/", f"{URL}:0.1.0"])
def test_ecr_registry_rejects_what_is_not_a_repository_url(url):
    with pytest.raises(ValueError, match=r"^repository_url=.*ContainerRegistry\.repository_urls"):
        ecr_registry(url)


def test_tags_cache_and_platform_decisions():
    assert image_tags(URL, "src-0123456789ab") == [f"{URL}:src-0123456789ab"]
    assert cache_ref(URL) == f"{URL}:buildcache"
    assert image_platform(CpuArchitecture.X86_64, {}) == "linux/amd64"
    assert image_platform(CpuArchitecture.ARM64, {"CUDA_BASE_IMAGE": "x"}) == "linux/arm64"
    cache_from, cache_to = registry_cache("r")
    assert cache_from == [{"registry": {"ref": "r"}}]
    assert cache_to == [
        {"registry": {"ref": "r", "image_manifest": True, "oci_media_types": True, "mode": "max", "ignore_error": True}}
    ]


def test_build_locations_are_relative_to_the_working_directory(tmp_path):
    assert build_locations(tmp_path / "repo", TRAINER, tmp_path / "repo" / "stacks") == ("..", f"../{TRAINER}")
    assert build_locations(tmp_path / "repo", TRAINER, tmp_path / "repo") == (".", TRAINER)


def _context(tmp_path: Path, dockerignore: str) -> Path:
    for path in ("Dockerfile", "app/main.py", "app/__pycache__/main.cpython-311.pyc", "app/data/x.txt", "other.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(path)
    (tmp_path / ".dockerignore").write_text(dockerignore)
    return tmp_path


def test_context_files_follow_the_allowlist(tmp_path):
    context = _context(tmp_path, "# allowlist\n*\n!app\n**/__pycache__\n")
    assert context_files(context, "Dockerfile") == ["app/data/x.txt", "app/main.py"]


def test_a_later_line_overrides_an_earlier_one(tmp_path):
    context = _context(tmp_path, "*\n**/data\n!app/data/\n!other.py\n")
    assert context_files(context, "Dockerfile") == ["app/data/x.txt", "other.py"]


def test_a_dockerfile_specific_ignore_file_wins(tmp_path):
    context = _context(tmp_path, "*\n!app\n")
    (tmp_path / "Dockerfile.dockerignore").write_text("*\n!other.py\n")
    assert context_files(context, "Dockerfile") == ["other.py"]


@pytest.mark.parametrize(
    ("dockerignore", "message"),
    [
        ("!app\n", r"must start with `\*`"),
        ("*\n!app/*.py\n", r":2: '!app/\*\.py': use `!<path>`"),
        ("*\nbuild/\n", r":2: 'build/': use `!<path>`"),
    ],
)
def test_ignore_files_the_content_tag_cannot_read_exactly_are_refused(tmp_path, dockerignore, message):
    with pytest.raises(ValueError, match=message):
        context_files(_context(tmp_path, dockerignore), "Dockerfile")


def test_no_ignore_file_is_refused(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(ValueError, match=r"^context=.*: no \.dockerignore; .* or pass tag"):
        context_files(tmp_path, "Dockerfile")


def test_content_tag_changes_with_what_the_build_reads_and_nothing_else(tmp_path):
    context = _context(tmp_path, "*\n!app\n**/__pycache__\n")
    tag = content_tag(context, "Dockerfile", {}, "linux/amd64")
    assert tag.startswith("src-") and len(tag) == len("src-") + 12
    (context / "other.py").write_text("changed, but not in the build")
    (context / "app/__pycache__/main.cpython-311.pyc").write_text("changed, but ignored")
    assert content_tag(context, "Dockerfile", {}, "linux/amd64") == tag
    assert content_tag(context, "Dockerfile", {"A": "1"}, "linux/amd64") != tag
    assert content_tag(context, "Dockerfile", {}, "linux/arm64") != tag
    mode = (context / "app/main.py").stat().st_mode
    (context / "app/main.py").chmod(0o755)
    assert content_tag(context, "Dockerfile", {}, "linux/amd64") != tag
    (context / "app/main.py").chmod(mode)
    assert content_tag(context, "Dockerfile", {}, "linux/amd64") == tag
    (context / "app/main.py").write_text("changed")
    assert content_tag(context, "Dockerfile", {}, "linux/amd64") != tag


def test_content_tag_changes_with_the_dockerfile(tmp_path):
    context = _context(tmp_path, "*\n!app\n")
    tag = content_tag(context, "Dockerfile", {}, "linux/amd64")
    (context / "Dockerfile").write_text("FROM scratch\n")
    assert content_tag(context, "Dockerfile", {}, "linux/amd64") != tag
