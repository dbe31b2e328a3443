"""The policy pack as a directory that stands on its own: what `pulumi policy publish` ships, and what
`pulumi preview --policy-pack DIR` runs from a virtualenv holding only the pack's requirements.

In the repository the pack's rules are part of the `modelplane` package. The assembled pack holds its entry point,
its requirements and shipped configs, and a `modelplane` package cut down to the two layers the rules may import
(`modelplane.policies` and `modelplane.terms`; the layer test keeps it so), so the same imports resolve without
modelplane being installed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import yaml

import modelplane.policies
import modelplane.terms
from modelplane.policy_config import POLICY_PACK_DIR

PACK_FILES = ("__main__.py", "requirements.txt")
PACKAGE_DATA = ("*.py", "*.json")
"""What the rules' modules need at run time: their code and the tables they read (EC2's instance types)."""
PACK_VIRTUALENV = "venv"
"""Where Pulumi creates the pack's own virtualenv, inside the pack, from its requirements."""


def _copy_package(source: Path, target: Path) -> None:
    for pattern in PACKAGE_DATA:
        for path in source.rglob(pattern):
            relative = path.relative_to(source)
            if POLICY_PACK_DIR.name in relative.parts or "__pycache__" in relative.parts:
                continue
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / relative)


def _project_file() -> str:
    """PulumiPolicy.yaml for the assembled pack: the repository's, with the pack's own virtualenv."""
    project = yaml.safe_load((POLICY_PACK_DIR / "PulumiPolicy.yaml").read_text())
    project["runtime"]["options"]["virtualenv"] = PACK_VIRTUALENV
    return yaml.safe_dump(project, sort_keys=False)


def assemble(out_dir: Path) -> Path:
    """Write the self-contained pack to `out_dir` (replacing what was there) and return it."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    for name in PACK_FILES:
        shutil.copyfile(POLICY_PACK_DIR / name, out_dir / name)
    shutil.copytree(POLICY_PACK_DIR / "config", out_dir / "config")
    (out_dir / "PulumiPolicy.yaml").write_text(_project_file())
    package = out_dir / "modelplane"
    package.mkdir()
    (package / "__init__.py").write_text('"""The layers of modelplane the policy pack runs on."""\n')
    _copy_package(Path(modelplane.policies.__file__).parent, package / "policies")
    _copy_package(Path(modelplane.terms.__file__).parent, package / "terms")
    return out_dir


if __name__ == "__main__":
    print(assemble(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("build/policy-pack")))
