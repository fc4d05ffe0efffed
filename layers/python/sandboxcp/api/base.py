"""The base of the response bodies (the sandboxcp.api.schemas package)."""

from __future__ import annotations

from sandboxcp.domain.base import DomainModel


class ResponseModel(DomainModel):
    """A response body, built on first use like every domain model (sandboxcp.domain.base): a function
    builds the few models it answers with, not every model of the modules it imports
    (sandboxcp.observability, "Cold start")."""
