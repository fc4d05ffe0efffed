"""Egress that matches the promise (docs/network.md), read from the synthesized templates: endpoint policies,
sandbox security groups, the DNS firewall and the flow logs, per variant (created VPC: ecs, docker;
imported VPC: eks)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandboxcp_infra.network import WORKSPACE_S3_ACTIONS
from tests.infra import helpers as h
from tests.infra.conftest import Synthesized, Variants

ACCOUNT_ONLY = {
    "StringEquals": {"aws:PrincipalAccount": {"Ref": "AWS::AccountId"}},
    "StringEqualsIfExists": {"aws:ResourceAccount": {"Ref": "AWS::AccountId"}},
}


@pytest.fixture(scope="session", params=["ecs", "docker"])
def created(request: pytest.FixtureRequest, synthesized_variants: Variants) -> Synthesized:
    """The variants whose VPC the stack creates (and so fences completely)."""
    return synthesized_variants[request.param]


def _endpoints(synth: Synthesized) -> dict[str, dict[str, Any]]:
    """Endpoint properties by service short name (`s3`, `execute-api`, `ecr.dkr`, ...)."""
    found = {}
    for endpoint in h.of_type(synth, "AWS::EC2::VPCEndpoint").values():
        name = json.dumps(endpoint["Properties"]["ServiceName"])
        short = name.split("amazonaws.com.")[-1] if "amazonaws.com." in name else name.split(".")[-1]
        found[short.split('"')[0].removeprefix(".")] = endpoint["Properties"]
    return found


def _statements(endpoint: dict[str, Any]) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = endpoint["PolicyDocument"]["Statement"]
    return statements


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def test_s3_gateway_endpoint_reaches_the_workspace_bucket_and_ecr_layers_only(created: Synthesized) -> None:
    s3 = _endpoints(created)["s3"]
    bucket = created.logical_id(created.stack.storage.bucket)
    workspace, *rest = _statements(s3)
    assert workspace["Effect"] == "Allow" and workspace["Principal"] == {"AWS": "*"}
    assert sorted(h.as_list(workspace["Action"])) == sorted(WORKSPACE_S3_ACTIONS)
    assert [h.refs(r) for r in workspace["Resource"]] == [{bucket}, {bucket}]
    assert workspace["Condition"] == {"StringEquals": {"aws:PrincipalAccount": {"Ref": "AWS::AccountId"}}}
    if created.variant == "ecs":  # Fargate pulls image layers from ECR's bucket
        (layers,) = rest
        assert layers["Action"] == "s3:GetObject"
        assert "starport-layer-bucket/*" in _text(layers["Resource"])
        assert "prod-" in _text(layers["Resource"]) and "AWS::Region" in _text(layers["Resource"])
    else:
        assert rest == []


def test_dynamodb_gateway_endpoint_is_this_accounts_tables_only(created: Synthesized) -> None:
    (statement,) = _statements(_endpoints(created)["dynamodb"])
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalAccount": {"Ref": "AWS::AccountId"}}}
    assert ":table/*" in _text(statement["Resource"]) and "AWS::AccountId" in _text(statement["Resource"])


def test_interface_endpoints_serve_this_account_only(variant: Synthesized) -> None:
    endpoints = _endpoints(variant)
    interface = {n: e for n, e in endpoints.items() if e.get("VpcEndpointType") == "Interface"}
    assert "execute-api" in interface
    for name, endpoint in interface.items():
        (statement,) = _statements(endpoint)
        assert statement["Effect"] == "Allow" and statement["Principal"] == {"AWS": "*"}, name
        if name == "execute-api":
            # Executors call unsigned (bearer tokens): the limit is the resource, this account's APIs.
            assert statement["Action"] == "execute-api:Invoke"
            # `arn:<partition>:execute-api:<region>:<this account>:*` (literal where the stack has an env)
            resource = _text(statement["Resource"])
            account = "123456789012" if variant.variant == "eks" else "AWS::AccountId"
            assert (
                ":execute-api:" in resource and account in resource and resource.rstrip('"]}').endswith(":*")
            )
            assert "Condition" not in statement
        else:
            assert (statement["Action"], statement["Resource"]) == ("*", "*"), name
            assert statement["Condition"] == ACCOUNT_ONLY, name


def _egress(synth: Synthesized, group: Any) -> list[dict[str, Any]]:
    group_id = synth.logical_id(group)
    rules = [
        r["Properties"]
        for r in h.of_type(synth, "AWS::EC2::SecurityGroupEgress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]}
    ]
    return rules + synth.resources[group_id]["Properties"].get("SecurityGroupEgress", [])


def test_sandboxes_send_https_to_the_endpoints_and_s3_only(created: Synthesized) -> None:
    runtime = created.stack.runtime
    group = runtime.security_group if created.variant == "ecs" else runtime.hosts_security_group
    endpoints_sg = created.logical_id(created.stack.network.endpoints_sg)
    rules = _egress(created, group)
    destinations = sorted(_text({k: v for k, v in r.items() if k.startswith("Destination")}) for r in rules)
    assert all((r["IpProtocol"], r["FromPort"], r["ToPort"]) == ("tcp", 443, 443) for r in rules)
    assert not any("CidrIp" in r for r in rules), "no address range: not 0.0.0.0/0, not the VPC"
    to_endpoints = _text({"DestinationSecurityGroupId": {"Fn::GetAtt": [endpoints_sg, "GroupId"]}})
    (to_s3,) = [d for d in destinations if "DestinationPrefixListId" in d]
    assert destinations == sorted([to_endpoints, to_s3])
    # The prefix list is the region's S3 list, looked up at deploy time (its id differs per region).
    (lookup_id,) = h.refs(json.loads(to_s3))
    lookup = created.resources[lookup_id]
    assert lookup["Type"] == "Custom::AWS"
    call = _text(lookup["Properties"])
    assert "DescribeManagedPrefixLists" in call and "com.amazonaws." in call and ".s3" in call


def test_dns_firewall_resolves_the_services_names_only(created: Synthesized) -> None:
    (group,) = h.of_type(created, "AWS::Route53Resolver::FirewallRuleGroup").values()
    rules = sorted(group["Properties"]["FirewallRules"], key=lambda r: r["Priority"])
    allow, block = rules
    assert (allow["Action"], block["Action"], block["BlockResponse"]) == ("ALLOW", "BLOCK", "NXDOMAIN")
    assert allow["FirewallDomainRedirectionAction"] == "TRUST_REDIRECTION_DOMAIN"
    lists = h.of_type(created, "AWS::Route53Resolver::FirewallDomainList")
    (blocked_id,) = h.refs(block["FirewallDomainListId"])
    assert lists[blocked_id]["Properties"]["Domains"] == ["*"]
    (allowed_id,) = h.refs(allow["FirewallDomainListId"])
    allowed = [_text(d) for d in lists[allowed_id]["Properties"]["Domains"]]
    assert not any(d in ('"*"', '"*.amazonaws.com"') for d in allowed)

    def has(prefix: str) -> bool:  # `<prefix><region>.amazonaws.com`, the region a CloudFormation reference
        return any(d.startswith(f'{{"Fn::Join": ["", ["{prefix}", {{"Ref": "AWS::Region"}}') for d in allowed)

    for prefix in ("*.execute-api.", "*.s3.", "s3.", "dynamodb."):
        assert has(prefix), prefix
    assert has("logs.") == has("api.ecr.") == has("*.dkr.ecr.") == (created.variant == "ecs")
    assert has("secretsmanager.") == (created.variant == "docker")
    if created.variant == "docker":  # the Docker engine is addressed by IP here: nothing to add
        assert not any("10.0.1.10" in d for d in allowed)

    (association,) = h.of_type(created, "AWS::Route53Resolver::FirewallRuleGroupAssociation").values()
    (vpc_id,) = h.of_type(created, "AWS::EC2::VPC")
    assert association["Properties"]["VpcId"] == {"Ref": vpc_id}
    assert h.refs(association["Properties"]["FirewallRuleGroupId"]) == set(
        h.of_type(created, "AWS::Route53Resolver::FirewallRuleGroup")
    )


def test_an_imported_vpc_keeps_its_own_resolver_and_gateways(synthesized_variants: Variants) -> None:
    eks = synthesized_variants["eks"]
    for cfn_type in (
        "AWS::Route53Resolver::FirewallRuleGroupAssociation",
        "AWS::Route53Resolver::FirewallRuleGroup",
        "AWS::EC2::FlowLog",
    ):
        assert h.of_type(eks, cfn_type) == {}, cfn_type


def test_flow_logs_are_kept_with_the_data(created: Synthesized) -> None:
    (flow_log,) = h.of_type(created, "AWS::EC2::FlowLog").values()
    (group_id,) = h.refs(flow_log["Properties"]["LogGroupName"])
    group = created.resources[group_id]
    assert group["DeletionPolicy"] == "RetainExceptOnCreate"
    assert group["UpdateReplacePolicy"] == "Retain"
    assert group["Properties"]["RetentionInDays"] == 30
