"""Synthesize the CDK app once per runtime variant and test session; the infra tests read those templates.

Variants: `ecs` (cdk.json's context: the default runtime in a VPC the stack creates), `eks` (the platform
team's cluster, in an imported VPC whose lookup result is given as context, as `cdk.context.json` would after
`cdk synth`), `docker` (remote Docker hosts, in a created VPC)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"
# Node 20 prints an end-of-life banner on every jsii start unless silenced (set before aws_cdk is imported).
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# `python3 infra/app.py` finds sandboxcp_infra next to it; give the tests the same import path.
if str(INFRA_DIR) not in sys.path:
    sys.path.insert(0, str(INFRA_DIR))

ACCOUNT, REGION = "123456789012", "us-east-1"
IMPORTED_VPC_ID = "vpc-0123456789abcdef0"
IMPORTED_VPC_CIDR = "10.20.0.0/16"
IMPORTED_PRIVATE_SUBNETS = ("subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2")
EKS_CLUSTER_SG = "sg-0123456789abcdef0"
EKS_S3_CIDRS = "52.216.0.0/15, 3.5.0.0/19"  # as an operator copies them from the S3 prefix list
EKS_CONTEXT = {
    "runtime": "eks",
    "eks_cluster_name": "platform",
    "eks_endpoint": "https://0123456789ABCDEF.gr7.us-east-1.eks.amazonaws.com",
    "eks_ca_data": "TFMwdExTMUNSVWRKVGlCRFJWSlVTVVpKUTBGVVJTMHRMUzB0Q2c9PQ==",
    "eks_cluster_sg": EKS_CLUSTER_SG,
    "eks_s3_cidrs": EKS_S3_CIDRS,
    "vpc_id": IMPORTED_VPC_ID,
}
DOCKER_CONTEXT = {"runtime": "docker", "docker_host": "tcp://10.0.1.10:2376"}


def imported_vpc_lookup() -> dict[str, Any]:
    """What `cdk synth` stores in cdk.context.json after looking up IMPORTED_VPC_ID (Vpc.from_lookup)."""
    key = (
        f"vpc-provider:account={ACCOUNT}:filter.vpc-id={IMPORTED_VPC_ID}:region={REGION}"
        ":returnAsymmetricSubnets=true"
    )

    def subnet(subnet_id: str, cidr: str, az: str) -> dict[str, str]:
        return {"subnetId": subnet_id, "cidr": cidr, "availabilityZone": az, "routeTableId": f"rtb-{az}"}

    private = [
        subnet(IMPORTED_PRIVATE_SUBNETS[0], "10.20.0.0/19", "us-east-1a"),
        subnet(IMPORTED_PRIVATE_SUBNETS[1], "10.20.32.0/19", "us-east-1b"),
    ]
    public = [subnet("subnet-0ccccccccccccccc3", "10.20.64.0/20", "us-east-1a")]
    return {
        key: {
            "vpcId": IMPORTED_VPC_ID,
            "vpcCidrBlock": IMPORTED_VPC_CIDR,
            "ownerAccountId": ACCOUNT,
            "availabilityZones": [],
            "subnetGroups": [
                {"name": "Private", "type": "Private", "subnets": private},
                {"name": "Public", "type": "Public", "subnets": public},
            ],
        }
    }


VARIANTS: dict[str, dict[str, Any]] = {
    "ecs": {},
    "eks": {**EKS_CONTEXT, **imported_vpc_lookup()},
    "docker": DOCKER_CONTEXT,
}


def cdk_context(**overrides: Any) -> dict[str, Any]:
    """cdk.json's context (what `cdk synth` uses), with bundling skipped (no pip install in tests) and the
    explicit opt-out of an alarm email (a deploy must name one or opt out)."""
    context: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    return {**context, "aws:cdk:bundling-stacks": [], "alarm_email": "none", **overrides}


def load_cdk_app_module() -> Any:
    """infra/app.py under its own module name (a bare `app` could shadow other packages)."""
    spec = importlib.util.spec_from_file_location("sandboxcp_cdk_app", INFRA_DIR / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Synthesized:
    """One variant's cloud assembly: the parent template, each nested stack's, and `resources`, every stack's
    resources in one map with the references between stacks followed back to what they name (a nested
    stack's parameter becomes the value its parent passes, a parent's `Outputs.X` of a nested stack becomes
    that output's value), so a test reads `{"Ref": <table id>}` wherever the table is used."""

    variant: str
    stack: Any  # sandboxcp_infra.SandboxControlPlaneStack
    template: dict[str, Any]  # the parent stack's CloudFormation template as JSON
    template_path: Path
    outdir: Path
    templates: dict[str, dict[str, Any]]  # stack construct path -> template (the parent's and each nested)
    template_paths: dict[str, Path]
    resources: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]  # the parent's outputs, references followed like `resources`

    def logical_id(self, construct: Any) -> str:
        """Logical id of an L2 construct's CloudFormation resource (or of a CfnResource itself), in the
        template of the stack that holds it."""
        from aws_cdk import Stack

        cfn = getattr(construct.node, "default_child", None) or construct
        return str(Stack.of(cfn).resolve(cfn.logical_id))


class _Assembly:
    """Follows references across the parent and nested templates (see Synthesized)."""

    def __init__(self, stack: Any, outdir: Path) -> None:
        from aws_cdk import NestedStack

        self.stacks = {stack.node.path: stack}
        self.stacks |= {c.node.path: c for c in stack.node.find_all() if NestedStack.is_nested_stack(c)}
        self.paths = {path: outdir / s.template_file for path, s in self.stacks.items()}
        self.templates = {path: json.loads(file.read_text()) for path, file in self.paths.items()}
        # Per stack: the nested stacks it holds, by the logical id of their AWS::CloudFormation::Stack.
        self.children: dict[str, dict[str, str]] = {path: {} for path in self.stacks}
        for path, nested in self.stacks.items():
            parent = nested.nested_stack_parent
            if parent is not None:
                resource = parent.resolve(nested.nested_stack_resource.logical_id)
                self.children[parent.node.path][resource] = path

    def parameters(self, path: str) -> dict[str, Any]:
        nested = self.stacks[path]
        parent = nested.nested_stack_parent
        if parent is None:
            return {}
        resource = parent.resolve(nested.nested_stack_resource.logical_id)
        params: dict[str, Any] = self.templates[parent.node.path]["Resources"][resource]["Properties"].get(
            "Parameters", {}
        )
        return params

    def follow(self, path: str, value: Any) -> Any:
        if isinstance(value, list):
            return [self.follow(path, item) for item in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"} and value["Ref"] in self.parameters(path):
            parent = self.stacks[path].nested_stack_parent.node.path
            return self.follow(parent, self.parameters(path)[value["Ref"]])
        if set(value) == {"Fn::GetAtt"}:
            resource, attribute = value["Fn::GetAtt"]
            child = self.children[path].get(resource)
            if child is not None and str(attribute).startswith("Outputs."):
                output = self.templates[child]["Outputs"][attribute.removeprefix("Outputs.")]["Value"]
                return self.follow(child, output)
        return {key: self.follow(path, item) for key, item in value.items()}

    def resources(self) -> dict[str, dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {}
        for path, template in self.templates.items():
            for logical_id, resource in template["Resources"].items():
                assert logical_id not in merged, f"logical id {logical_id} in two stacks"
                merged[logical_id] = self.follow(path, resource)
        return merged


def synthesize(variant: str, outdir: Path) -> Synthesized:
    from aws_cdk import App, Environment

    app_module = load_cdk_app_module()
    # An imported VPC is looked up, so that stack is bound to an account and region.
    env = Environment(account=ACCOUNT, region=REGION) if "vpc_id" in VARIANTS[variant] else None
    app, stack = app_module.build_app(App(context=cdk_context(**VARIANTS[variant]), outdir=str(outdir)), env)
    app.synth()  # also runs cdk-nag: an unacknowledged finding raises here
    assembly = _Assembly(stack, outdir)
    root = stack.node.path
    return Synthesized(
        variant,
        stack,
        assembly.templates[root],
        assembly.paths[root],
        outdir,
        assembly.templates,
        assembly.paths,
        assembly.resources(),
        assembly.follow(root, assembly.templates[root].get("Outputs", {})),
    )


class Variants:
    """Each variant synthesized on first use, then kept for the session."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._done: dict[str, Synthesized] = {}

    def __getitem__(self, variant: str) -> Synthesized:
        if variant not in self._done:
            self._done[variant] = synthesize(variant, self._tmp.mktemp(f"cdk.out.{variant}"))
        return self._done[variant]


@pytest.fixture(scope="session")
def synthesized_variants(tmp_path_factory: pytest.TempPathFactory) -> Variants:
    return Variants(tmp_path_factory)


@pytest.fixture(scope="session")
def synthesized(synthesized_variants: Variants) -> Synthesized:
    """The default deployment (cdk.json's context: runtime=ecs, created VPC)."""
    return synthesized_variants["ecs"]


@pytest.fixture(scope="session", params=list(VARIANTS))
def variant(request: pytest.FixtureRequest, synthesized_variants: Variants) -> Synthesized:
    """Each runtime variant in turn."""
    return synthesized_variants[request.param]
