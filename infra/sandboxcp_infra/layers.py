"""The two Lambda layers every function uses: the project's shared code and its third-party dependencies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import BundlingOptions, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

REPO_ROOT = Path(__file__).resolve().parents[2]
# layers/python/sandboxcp -> /opt/python/sandboxcp, which the Python runtime puts on sys.path.
SHARED_CODE_DIR = REPO_ROOT / "layers"
DEPENDENCIES_DIR = Path(__file__).resolve().parent / "dependencies"
REQUIREMENTS_FILE = "requirements.txt"

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64
# pip's names for the Lambda target above: wheels for CPython 3.12 on manylinux aarch64.
PIP_PLATFORM = "manylinux2014_aarch64"
PIP_PYTHON_VERSION = "3.12"

ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/*.egg-info", "**/.mypy_cache", "**/.pytest_cache"]


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
    """`code`: the sandboxcp package from layers/; `dependencies`: the pinned third-party wheels."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)

        self.code = lambda_.LayerVersion(
            self,
            "SharedCode",
            description="sandboxcp domain, services and adapters (layers/python/sandboxcp)",
            code=lambda_.Code.from_asset(str(SHARED_CODE_DIR), exclude=ASSET_EXCLUDES),
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
