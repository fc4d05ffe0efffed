"""GET /api/v1/metrics: Prometheus text format 0.0.4 (process counters and live gauges from DynamoDB);
a tenant's key sees its own figures only, an admin key everyone's."""

from sandboxcp.api.params import Response
from sandboxcp.api.resolver import caller, lambda_entry, make_resolver
from sandboxcp.observability import bind_request
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.deps import get_deps
from sandboxcp.services.health import metrics_text

app = make_resolver()
ROUTE = route_for("metrics_prometheus")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@app.get(resolver_path(ROUTE.path))
def metrics() -> Response[str]:
    who = caller(app)
    bind_request(tenant_id=who.tenant_id)
    return Response(200, CONTENT_TYPE, metrics_text(get_deps(), who))


handler = lambda_entry(app)
