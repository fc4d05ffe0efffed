"""REST APIs built from the route table: the resource tree from the paths, one Lambda integration per route,
the route's auth mapped to a REQUEST Lambda authorizer, and gateway responses in the contract's error body.
PublicApi serves the routes with api == "public"; internal_api.InternalApi serves the executor callbacks."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct, IConstruct

from sandboxcp.routes import AUTHORIZERS, ROUTES, Auth, Route
from sandboxcp_infra.nag import acknowledge
from sandboxcp_infra.naming import deployment_name
from sandboxcp_infra.waf import PublicApiFirewall

STAGE_NAME = "prod"
PUBLIC_RATE_LIMIT, PUBLIC_BURST_LIMIT = 100, 200

_ACCESS_LOG_FORMAT = apigw.AccessLogFormat.custom(
    json.dumps(
        {
            "requestId": apigw.AccessLogField.context_request_id(),
            "ip": apigw.AccessLogField.context_identity_source_ip(),
            "method": apigw.AccessLogField.context_http_method(),
            "resource": apigw.AccessLogField.context_resource_path(),
            "status": apigw.AccessLogField.context_status(),
            "latencyMs": apigw.AccessLogField.context_response_latency(),
            "principal": apigw.AccessLogField.context_authorizer_principal_id(),
            "authorizerError": apigw.AccessLogField.context_authorizer_error(),
            "integrationError": apigw.AccessLogField.context_integration_error_message(),
            "error": apigw.AccessLogField.context_error_message(),
        }
    )
)


AUTH_SOLUTION = "Send 'Authorization: Bearer <token>' with a valid token"
ROUTE_SOLUTION = "Check the method and path against the API contract"
NO_ROUTE_DETAIL = "No route serves this method on this path"


@dataclass(frozen=True)
class GatewayError:
    """A refusal API Gateway answers itself (no handler runs), in the contract's error body. Codes,
    descriptions and solutions match the local emulator (sandboxcp/local/gateway.py)."""

    response_type: apigw.ResponseType
    status: str | None  # None keeps API Gateway's own status (the DEFAULT_* families)
    error_code: str
    description: str
    solution: str
    detail: str | None = None  # None: API Gateway's own message ($context.error.messageString)

    @property
    def template(self) -> str:
        # $context.error.messageString is already a quoted JSON string; $context.requestId is a bare value.
        detail = json.dumps(self.detail) if self.detail is not None else "$context.error.messageString"
        return (
            "{"
            f'"error_code":{json.dumps(self.error_code)},'
            f'"description":{json.dumps(self.description)},'
            f'"error_detail":{detail},'
            f'"solution":{json.dumps(self.solution)},'
            '"request_id":"$context.requestId"'
            "}"
        )


GATEWAY_ERRORS: tuple[GatewayError, ...] = (
    GatewayError(
        apigw.ResponseType.UNAUTHORIZED, "401", "Sandbox.Unauthorized", "Authentication failed", AUTH_SOLUTION
    ),
    GatewayError(
        apigw.ResponseType.ACCESS_DENIED, "403", "Sandbox.Forbidden", "Access denied", AUTH_SOLUTION
    ),
    # API Gateway's answer for a path or a method it does not serve (HEAD on a GET route included): it
    # cannot tell the two apart, so both are a 404 here, where the local emulator and the handlers answer
    # an unserved method with 405 and `Allow` (docs/api.md, "Protocol errors"). Its own message ("Missing
    # Authentication Token") would mislead: the detail says what happened.
    GatewayError(
        apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN,
        "404",
        "Sandbox.NotFound",
        "Not found",
        ROUTE_SOLUTION,
        detail=NO_ROUTE_DETAIL,
    ),
    GatewayError(
        apigw.ResponseType.REQUEST_TOO_LARGE,
        "413",
        "Sandbox.InvalidParameter",
        "Payload too large",
        ROUTE_SOLUTION,
    ),
    GatewayError(
        apigw.ResponseType.THROTTLED,
        "429",
        "Sandbox.TooManyRequestsExection",  # sic: the contract's spelling
        "Too many requests",
        "Retry later with exponential backoff",
    ),
    GatewayError(
        apigw.ResponseType.AUTHORIZER_FAILURE,
        "500",
        "Sandbox.InternalError",
        "Authorizer error",
        "Retry later; if it persists, report the request_id",
    ),
    GatewayError(
        apigw.ResponseType.DEFAULT_4_XX, None, "Sandbox.InvalidParameter", "Invalid request", ROUTE_SOLUTION
    ),
    GatewayError(
        apigw.ResponseType.DEFAULT_5_XX,
        None,
        "Sandbox.InternalError",
        "Internal error",
        "Retry later; if it persists, report the request_id",
    ),
)


class ApiGatewayLoggingRole(Construct):
    """The account-wide role API Gateway needs before any stage may write access or execution logs.

    API Gateway keeps one such role per account and region, so the stack sets it once for both APIs and
    never unsets it (RETAIN): other APIs in the account may rely on it."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        policy = iam.ManagedPolicy.from_aws_managed_policy_name(
            "service-role/AmazonAPIGatewayPushToCloudWatchLogs"
        )
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            managed_policies=[policy],
        )
        # Kept when the stack goes (the account setting is region-wide and other APIs may log through this
        # role), but not after a failed first deploy: RetainExceptOnCreate.
        role.apply_removal_policy(RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE)
        self.account = apigw.CfnAccount(self, "Account", cloud_watch_role_arn=role.role_arn)
        self.account.apply_removal_policy(RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE)
        acknowledge(
            role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "AWS's documented policy for API Gateway's account-wide logging role; only it assumes the role.",
        )


BINARY_MEDIA_TYPES = ("multipart/form-data", "application/octet-stream")


class RoutedRestApi(Construct):
    """A REST API serving `routes`, each integrated with its module's function: regional, or private behind
    `private_endpoint` (an execute-api interface endpoint, the only way in, enforced by the API's policy).

    `authorizers` maps each route auth kind to the authorizer function guarding it, or None for open routes.
    Every route's auth must be in the map, so a route can never end up open by omission."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        description: str,
        routes: Sequence[Route],
        functions: Mapping[str, lambda_.IFunction],
        authorizers: Mapping[Auth, lambda_.IFunction | None],
        log_retention: logs.RetentionDays,
        logging_role: ApiGatewayLoggingRole | None,
        rate_limit: int,
        burst_limit: int,
        private_endpoint: ec2.IInterfaceVpcEndpoint | None = None,
        waf: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self.private_endpoint = private_endpoint
        access_logs = logs.LogGroup(
            self, "AccessLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.rest_api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"{deployment_name(self)}-{construct_id}",
            description=description,
            endpoint_configuration=apigw.EndpointConfiguration(
                types=[apigw.EndpointType.PRIVATE if private_endpoint else apigw.EndpointType.REGIONAL],
                # Associating the endpoint gives the API the `<api id>-<vpce id>` hostname (base_url).
                vpc_endpoints=[private_endpoint] if private_endpoint else None,
            ),
            policy=_private_api_policy(private_endpoint) if private_endpoint else None,
            cloud_watch_role=False,  # ApiGatewayLoggingRole sets the account's role once for both APIs
            # File uploads (multipart) reach Lambda base64-encoded and file downloads leave as bytes.
            binary_media_types=list(BINARY_MEDIA_TYPES),
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                tracing_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                # Request bodies carry user code and env vars: never copy them into execution logs.
                data_trace_enabled=False,
                metrics_enabled=True,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=_ACCESS_LOG_FORMAT,
                throttling_rate_limit=rate_limit,
                throttling_burst_limit=burst_limit,
            ),
        )
        if logging_role is not None:
            self.rest_api.deployment_stage.node.add_dependency(logging_role.account)
        self.gateway_responses = {
            error.response_type.response_type: self.rest_api.add_gateway_response(
                error.response_type.response_type.title().replace("_", ""),
                type=error.response_type,
                status_code=error.status,
                templates={"application/json": error.template},
            )
            for error in GATEWAY_ERRORS
        }

        # One authorizer per function; "api_key" and "admin" share the API-key authorizer, which reports the
        # key's admin flag in its context for the handler to check.
        by_function: dict[str, apigw.RequestAuthorizer] = {}
        for route in routes:
            if route.auth not in authorizers:
                raise ValueError(
                    f"{route.method} {route.path}: auth {route.auth!r} is not served by {construct_id}"
                )
            function = authorizers[route.auth]
            authorizer = None
            if function is not None:
                key = function.node.path
                if key not in by_function:
                    by_function[key] = apigw.RequestAuthorizer(
                        self,
                        f"Authorizer{len(by_function) or ''}",
                        handler=function,
                        identity_sources=[apigw.IdentitySource.header("Authorization")],
                        # Keys can be revoked and callback tokens die with their session: decide every call.
                        results_cache_ttl=Duration.seconds(0),
                    )
                authorizer = by_function[key]
            method = self.rest_api.root.resource_for_path(route.path).add_method(
                route.method,
                # allow_test_invoke=False: no extra invoke permission for the console's test-invoke stage.
                apigw.LambdaIntegration(functions[route.module], allow_test_invoke=False),
                authorizer=authorizer,
                authorization_type=apigw.AuthorizationType.CUSTOM
                if authorizer
                else apigw.AuthorizationType.NONE,
            )
            if authorizer is None:
                _acknowledge_open_route(method, route)

        acknowledge(
            self.rest_api,
            "AwsSolutions-APIG2",
            "Handlers validate every body with the contract's pydantic models and answer with the contract's "
            "error body; API Gateway's own 400 would not match that contract.",
        )
        self.web_acl: wafv2.CfnWebACL | None = None
        if waf:
            self.web_acl = PublicApiFirewall(self, "Firewall", stage=self.rest_api.deployment_stage).web_acl
        elif private_endpoint is not None:
            acknowledge(
                self.rest_api.deployment_stage,
                "AwsSolutions-APIG3",
                "Private API: reachable only through the VPC's execute-api endpoint (its resource policy), "
                "called only by executors with a session's callback token; stage throttling caps it.",
            )
        else:
            acknowledge(
                self.rest_api.deployment_stage,
                "AwsSolutions-APIG3",
                "The WAF web ACL with a per-IP rate rule is opt-in (`-c waf=true`, docs/deploy.md): it costs "
                "per month. Stage throttling and the Lambda authorizer guard the API without it.",
            )
        acknowledge(
            self.rest_api,
            "AwsSolutions-COG4",
            "Callers authenticate with bearer secrets (tenant API keys, per-session callback tokens) checked "
            "by a Lambda REQUEST authorizer against stored hashes, as the API contract defines; no Cognito.",
        )

    @property
    def base_url(self) -> str:
        """`https://<id>.execute-api.<region>.<suffix>/<stage>` built from the API id alone; for a private API
        the endpoint-specific `<id>-<vpce id>` host, which resolves to the endpoint without private DNS.

        Unlike `rest_api.url` this does not reference the deployment stage, so a function the API integrates
        can still receive it (e.g. the callback URL) without a dependency cycle."""
        stack = Stack.of(self)
        host = self.rest_api.rest_api_id
        if self.private_endpoint is not None:
            host = f"{host}-{self.private_endpoint.vpc_endpoint_id}"
        return f"https://{host}.execute-api.{stack.region}.{stack.url_suffix}/{STAGE_NAME}"


def _private_api_policy(endpoint: ec2.IInterfaceVpcEndpoint) -> iam.PolicyDocument:
    """A private API's resource policy: invocable only through `endpoint` (the authorizer still decides)."""
    invoke = {"actions": ["execute-api:Invoke"], "resources": ["execute-api:/*"]}
    return iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(principals=[iam.AnyPrincipal()], **invoke),  # type: ignore[arg-type]
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                conditions={"StringNotEquals": {"aws:SourceVpce": endpoint.vpc_endpoint_id}},
                **invoke,  # type: ignore[arg-type]
            ),
        ]
    )


def _acknowledge_open_route(method: IConstruct, route: Route) -> None:
    reason = f"{route.method} {route.path} is open by contract: auth='none' in sandboxcp.routes (health)."
    acknowledge(method, "AwsSolutions-APIG4", reason)


class PublicApi(RoutedRestApi):
    """The client-facing API (`/api/v1/...`): tenant API keys, admin keys, and the open health check."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Mapping[str, lambda_.IFunction],
        log_retention: logs.RetentionDays,
        logging_role: ApiGatewayLoggingRole | None,
        waf: bool = False,
    ) -> None:
        api_key_authorizer = functions[AUTHORIZERS["api_key"].module]
        super().__init__(
            scope,
            construct_id,
            description="Sandbox Control Plane public API (Authorization: Bearer <api key>)",
            routes=[r for r in ROUTES if r.api == "public"],
            functions=functions,
            authorizers={"api_key": api_key_authorizer, "admin": api_key_authorizer, "none": None},
            log_retention=log_retention,
            logging_role=logging_role,
            rate_limit=PUBLIC_RATE_LIMIT,
            burst_limit=PUBLIC_BURST_LIMIT,
            waf=waf,
        )
