"""What an HTTP function takes from powertools' event handler, imported through `sandboxcp.api` (whose import
registers powertools' event handler package lean: sandboxcp/api/lean_powertools.py)."""

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

__all__ = ["Body", "Query", "Response"]
