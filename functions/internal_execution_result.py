"""POST /internal/executions/{execution_id}/result: the execution's outcome, reported with an
Idempotency-Key. Powertools Idempotency answers a repeat with the stored response; the conditional write
behind it stores one outcome per execution even when keys differ."""

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any

from sandboxcp.api.params import Body
from sandboxcp.api.resolver import callback_session, lambda_entry, make_resolver
from sandboxcp.api.schemas.executions import ResultRecorded
from sandboxcp.domain.errors import InvalidParameter, StateConflict
from sandboxcp.domain.models import ExecutionOutcome
from sandboxcp.observability import prepare_init
from sandboxcp.routes import resolver_path, route_for
from sandboxcp.services.callbacks import record_result
from sandboxcp.services.deps import get_deps
from sandboxcp.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

app = make_resolver()
ROUTE = route_for("internal_execution_result")


# Powertools' Idempotency utility imports boto3 and its DynamoDB persistence layer: built at the first
# invocation, not at import (sandboxcp.observability, "Cold start").
@cache
def _config() -> "IdempotencyConfig":
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

    return IdempotencyConfig(
        event_key_jmespath="[execution_id, idempotency_key]", expires_after_seconds=86400
    )


@cache
def _recorder() -> Callable[..., dict[str, Any]]:
    from aws_lambda_powertools.utilities.idempotency import idempotent_function

    from sandboxcp.adapters.dynamo.idempotency import persistence_layer

    store = persistence_layer(get_settings().idempotency_table)
    recorder: Callable[..., dict[str, Any]] = idempotent_function(
        data_keyword_argument="request", config=_config(), persistence_store=store
    )(_record)
    return recorder


def _record(request: dict[str, Any]) -> dict[str, Any]:
    outcome = ExecutionOutcome.model_validate(request["outcome"])
    execution, created = record_result(get_deps(), request["session_id"], request["execution_id"], outcome)
    message = "Result created successfully" if created else "Result already recorded"
    return {"message": message, "execution_id": execution.execution_id, "status": execution.status.value}


@app.post(resolver_path(ROUTE.path))
def report(execution_id: str, body: Annotated[ExecutionOutcome, Body()]) -> ResultRecorded:
    key = app.current_event.headers.get("Idempotency-Key")
    if not key:
        raise InvalidParameter(
            "The Idempotency-Key header is required", solution="Send the execution id as the key"
        )
    request = {
        "execution_id": execution_id,
        "idempotency_key": key,
        "session_id": callback_session(app),
        "outcome": body.model_dump(mode="json"),
    }
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    try:
        return ResultRecorded(**_recorder()(request=request))
    except IdempotencyAlreadyInProgressError as err:
        raise StateConflict("The same result is being recorded by a concurrent request") from err


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _config().register_lambda_context(context)
    return _entry(event, context)


_entry = lambda_entry(app)
prepare_init(["aws_lambda_powertools.utilities.idempotency"])  # SnapStart: in the snapshot, not on a request
