"""GET /api/v1/health (no key): DynamoDB, S3 and runtime checks; 503 only when DynamoDB is down."""

import json

from sandboxcp.api.params import Response
from sandboxcp.api.resolver import lambda_entry, make_resolver
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.health import check_health

app = make_resolver()
ROUTE = route_for("health")


@app.get(resolver_path(ROUTE.path))
def health() -> Response[str]:
    status, body = check_health(get_deps())
    return Response(status, "application/json", json.dumps(body))


handler = lambda_entry(app)
