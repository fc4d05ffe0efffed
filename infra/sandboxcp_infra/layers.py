"""The two Lambda layers every function uses: the project's shared code and its third-party dependencies."""

from __future__ import annotations

import atexit
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import BundlingOptions, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

REPO_ROOT = Path(__file__).resolve().parents[2]
# layers/python/sandboxcp -> /opt/python/sandboxcp, which the Python runtime puts on sys.path.
SHARED_CODE_DIR = REPO_ROOT / "layers"
# The control plane imports the contract it shares with the executor from the executor's package
# (sandbox_executor.contract, standard library only): the layer ships that module and the package's
# side-effect-free __init__ next to sandboxcp, and nothing else of the executor.
EXECUTOR_PACKAGE_DIR = REPO_ROOT / "executor" / "sandbox_executor"
SHARED_EXECUTOR_MODULES = ("__init__.py", "contract.py")
DEPENDENCIES_DIR = Path(__file__).resolve().parent / "dependencies"
REQUIREMENTS_FILE = "requirements.txt"

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64
# pip's names for the Lambda target above: wheels for CPython 3.12 on manylinux aarch64.
PIP_PLATFORM = "manylinux2014_aarch64"
PIP_PYTHON_VERSION = "3.12"

ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/*.egg-info", "**/.mypy_cache", "**/.pytest_cache"]


def stage_shared_code(target: Path) -> Path:
    """The shared-code layer's content in `target`: python/sandboxcp from layers/, and
    python/sandbox_executor with SHARED_EXECUTOR_MODULES only."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".mypy_cache", ".pytest_cache")
    shutil.copytree(SHARED_CODE_DIR, target, ignore=ignore, dirs_exist_ok=True)
    package = target / "python" / "sandbox_executor"
    package.mkdir(parents=True, exist_ok=True)
    for name in SHARED_EXECUTOR_MODULES:
        shutil.copy2(EXECUTOR_PACKAGE_DIR / name, package / name)
    return target


def _staged_shared_code() -> Path:
    """A fresh staging directory per synth (CDK copies the asset into the cloud assembly and hashes its
    content, not its path); removed when the process exits."""
    target = Path(tempfile.mkdtemp(prefix="sandboxcp-layer-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    return stage_shared_code(target)


def pip_install_command(
    requirements: Path | str, target: Path | str, python: str = sys.executable
) -> list[str]:
    """Install wheels for the Lambda platform, whatever machine runs synth (no compiler, no Docker)."""
    return [
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--requirement",
        str(requirements),
        "--target",
        str(target),
        "--platform",
        PIP_PLATFORM,
        "--implementation",
        "cp",
        "--python-version",
        PIP_PYTHON_VERSION,
        "--only-binary=:all:",
        # .pyc files compiled by the synth machine's Python would not match Lambda's 3.12: skip them.
        "--no-compile",
        # The target is a fresh layer: conflicts with the synth machine's own packages do not matter.
        "--no-warn-conflicts",
        "--root-user-action=ignore",
    ]


@jsii.implements(ILocalBundling)
class LocalPipInstall:
    """Builds the dependencies layer with the synth machine's pip; CDK uses Docker only if this fails."""

    def __init__(self, requirements: Path) -> None:
        self._requirements = requirements

    def try_bundle(self, output_dir: str, *_args: Any, **_options: Any) -> bool:
        command = pip_install_command(self._requirements, Path(output_dir) / "python")
        try:
            subprocess.run(command, check=True)
        except (OSError, subprocess.CalledProcessError) as error:
            print(f"dependencies layer: local pip install failed ({error}); trying Docker", file=sys.stderr)
            return False
        return True


class SharedLayers(Construct):
    """`code`: the sandboxcp package from layers/ and sandbox_executor.contract; `dependencies`: the pinned
    third-party wheels."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)

        self.code = lambda_.LayerVersion(
            self,
            "SharedCode",
            description="sandboxcp domain, services and adapters (layers/python), sandbox_executor.contract",
            code=lambda_.Code.from_asset(str(_staged_shared_code()), exclude=ASSET_EXCLUDES),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
        )

        self.dependencies = lambda_.LayerVersion(
            self,
            "Dependencies",
            description="Third-party packages: infra/sandboxcp_infra/dependencies/requirements.txt",
            code=lambda_.Code.from_asset(
                str(DEPENDENCIES_DIR),
                bundling=BundlingOptions(
                    local=LocalPipInstall(DEPENDENCIES_DIR / REQUIREMENTS_FILE),
                    # Fallback for machines without a usable pip; the same install inside the SAM build image.
                    image=RUNTIME.bundling_image,
                    platform="linux/arm64",
                    command=[
                        "bash",
                        "-c",
                        " ".join(
                            pip_install_command(
                                f"/asset-input/{REQUIREMENTS_FILE}", "/asset-output/python", python="python"
                            )
                        ),
                    ],
                ),
            ),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
        )

    @property
    def all(self) -> list[lambda_.ILayerVersion]:
        return [self.dependencies, self.code]
