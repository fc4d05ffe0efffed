"""`-c waf=true`: a WAF web ACL on the public API's stage with a rate-based rule per client IP.

The public API launches compute for anyone holding a key, and answers 401s to anyone at all: a client IP over
the limit is blocked (403 from WAF) until its rate falls back under it. Stage throttling (api.py) caps the
whole API; this caps each source. Costs a web ACL and a rule per month plus requests (docs/deploy.md)."""

from __future__ import annotations

from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

# Requests per client IP in any 5-minute window (WAF's evaluation window) before that IP is blocked.
RATE_LIMIT_PER_IP = 1000
RATE_WINDOW_S = 300


def _visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric_name, sampled_requests_enabled=True
    )


class PublicApiFirewall(Construct):
    """`web_acl`, associated with `stage`."""

    def __init__(
        self, scope: Construct, construct_id: str, *, stage: apigw.Stage, rate_limit: int = RATE_LIMIT_PER_IP
    ) -> None:
        super().__init__(scope, construct_id)
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility("sandboxcp-public-api"),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="rate-per-ip",
                    priority=0,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            aggregate_key_type="IP",
                            limit=rate_limit,
                            evaluation_window_sec=RATE_WINDOW_S,
                        )
                    ),
                    visibility_config=_visibility("sandboxcp-public-api-rate-per-ip"),
                )
            ],
        )
        self.association = wafv2.CfnWebACLAssociation(
            self, "Association", resource_arn=stage.stage_arn, web_acl_arn=self.web_acl.attr_arn
        )
