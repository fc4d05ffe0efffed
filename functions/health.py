"""GET /api/v1/health: liveness of the API (no key needed)."""

from sandboxcp.api.resolver import lambda_entry, make_resolver
from sandboxcp.routes import resolver_path, route_for

app = make_resolver()
ROUTE = route_for("health")


@app.get(resolver_path(ROUTE.path))
def health() -> dict[str, str]:
    return {"status": "healthy"}


handler = lambda_entry(app)
