"""Launch workflow steps, template endpoints and the idempotent template seed."""

from __future__ import annotations

from sandboxcp.domain.states import SessionStatus
from sandboxcp.services import auth
from tests.functional.conftest import SAMPLE_SESSION, body, invoke, sample_event, seed_session, with_path


def test_place_assigns_runtime_and_node(deps):
    seed_session(deps, status=SessionStatus.CREATING)
    assert invoke("launch_place", sample_event("launch_place")) == {"runtime": "process", "node": "local"}
    stored = deps.sessions.get(SAMPLE_SESSION)
    assert stored is not None and stored.runtime_node == "local"


def test_start_sandbox_gives_it_a_session_scoped_token_and_no_cloud_credentials(deps):
    seed_session(deps, status=SessionStatus.CREATING)
    out = invoke("launch_start_sandbox", sample_event("launch_start_sandbox"))
    assert out == {"container_id": f"proc-{SAMPLE_SESSION}"}
    [spec] = deps.runtime.started
    token = spec.callback_token
    assert auth.authenticate_callback(deps, f"Bearer {token}") == SAMPLE_SESSION
    assert not [k for k in spec.env if k.startswith("AWS_")]
    # The token is not in the sandbox's environment: it is handed over the executor's socket once the
    # sandbox runs (the executor's address came from the runtime).
    assert token not in repr(spec) and not [v for v in spec.env.values() if token in v]
    assert deps.executor.binds == [(f"unix:///tmp/{SAMPLE_SESSION}.sock", SAMPLE_SESSION, token, {})]
    stored = deps.sessions.get(SAMPLE_SESSION)
    assert (
        stored is not None and stored.task_token.startswith("AQCE") and token not in stored.model_dump_json()
    )


def test_start_sandbox_of_a_terminated_session_leaves_nothing_running(deps):
    seed_session(deps, status=SessionStatus.TERMINATED)
    try:
        invoke("launch_start_sandbox", sample_event("launch_start_sandbox"))
    except Exception as err:  # the workflow's Catch sends this to MarkLaunchFailed
        assert "terminated" in str(err) or "no longer" in str(err)
    else:
        raise AssertionError("a terminated session must not get a sandbox")
    assert deps.runtime.started == []


def test_mark_launch_failed_fails_the_session_and_destroys_the_sandbox(deps):
    seed_session(deps, status=SessionStatus.CREATING)
    out = invoke("launch_mark_failed", sample_event("launch_mark_failed"))
    assert out == {"status": "failed"}
    stored = deps.sessions.get(SAMPLE_SESSION)
    assert stored is not None and "States.Timeout" in (stored.error_message or "")
    assert deps.runtime.destroyed == [f"proc-{SAMPLE_SESSION}"]


def test_mark_launch_failed_leaves_a_running_session_alone(deps):
    seed_session(deps)
    assert invoke("launch_mark_failed", sample_event("launch_mark_failed")) == {"status": "running"}
    assert deps.runtime.destroyed == []


def test_templates_list_and_get(deps):
    listed = body(invoke("templates_list", sample_event("templates_list")))
    assert listed["total"] == 3
    assert {t["id"] for t in listed["templates"]} == {"python-basic", "python-datascience", "nodejs-basic"}
    one = invoke("templates_get", sample_event("templates_get"))
    assert one["statusCode"] == 200 and body(one)["security_context"]["run_as_user"] == 1000
    missing = invoke("templates_get", with_path(sample_event("templates_get"), template_id="nope"))
    assert missing["statusCode"] == 404 and body(missing)["error_code"] == "Sandbox.TemplateNotFound"


def test_seed_is_idempotent(deps):
    assert invoke("seed_templates", sample_event("seed_templates")) == {"created": []}
    assert body(invoke("templates_list", sample_event("templates_list")))["total"] == 3
