"""The workspace bucket: session files under `workspace/<session_id>/`, execution outputs under `results/`."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from sandboxcp_infra.naming import env_var

WORKSPACE_PREFIX = "workspace/"
RESULTS_PREFIX = "results/"
# Terminating a session tags its workspace objects; S3 deletes them a day later (the design keeps
# workspaces 24 h after terminate), so no function ever has to list and delete a workspace.
EXPIRE_TAG_KEY = "sandboxcp-expire"
EXPIRE_TAG_VALUE = "true"
EXPIRED_WORKSPACE_DAYS = 1
RESULTS_DAYS = 30
ACCESS_LOG_DAYS = 90


class WorkspaceStorage(Construct):
    """Private, encrypted, TLS-only workspace bucket whose lifecycle rules clean up after sessions, plus the
    bucket that receives its server access logs."""

    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)

        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            # Server access log delivery writes only to SSE-S3 buckets. cdk-nag's S1 accepts this bucket
            # unlogged because it is the workspace bucket's log target.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(ACCESS_LOG_DAYS))
            ],
            removal_policy=removal_policy,
        )
        self.bucket = s3.Bucket(
            self,
            "Workspaces",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            # Workspaces are scratch space that sessions rewrite constantly; versions would only add cost.
            versioned=False,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="workspaces/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="abort-incomplete-multipart-uploads",
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
                s3.LifecycleRule(
                    id="expire-terminated-workspaces",
                    prefix=WORKSPACE_PREFIX,
                    tag_filters={EXPIRE_TAG_KEY: EXPIRE_TAG_VALUE},
                    expiration=Duration.days(EXPIRED_WORKSPACE_DAYS),
                ),
                s3.LifecycleRule(
                    id="expire-results",
                    prefix=RESULTS_PREFIX,
                    expiration=Duration.days(RESULTS_DAYS),
                ),
            ],
            removal_policy=removal_policy,
        )
        self.environment = {env_var("workspace_bucket"): self.bucket.bucket_name}
