"""Powertools Logger, Tracer and Metrics shared by every function (one instance per process)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "sandbox-control-plane"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace="SandboxControlPlane", service=SERVICE)
