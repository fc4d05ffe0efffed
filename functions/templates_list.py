"""GET /api/v1/templates: the sandbox templates."""

from typing import Annotated

from sandboxcp.api.params import Query
from sandboxcp.api.resolver import lambda_entry, make_resolver
from sandboxcp.api.schemas.templates import TemplateList, TemplateResponse
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.templates import list_templates

app = make_resolver()
ROUTE = route_for("templates_list")


@app.get(resolver_path(ROUTE.path))
def list_(
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10000)] = 0,
    next_token: Annotated[
        str | None,
        Query(min_length=1, max_length=4096, description="A page's `next_token` (instead of offset)"),
    ] = None,
) -> TemplateList:
    page = list_templates(get_deps(), limit=limit, offset=offset, next_token=next_token)
    return TemplateList(
        templates=[TemplateResponse.of(t) for t in page.items], total=page.total, next_token=page.next_token
    )


handler = lambda_entry(app)
