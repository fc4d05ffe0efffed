"""Attack: code in a sandbox floods the control plane with its executor's own callbacks (live output
chunks, posted by the executor with the session's token) while another tenant works through the public API.
Every request's handler must act on its own request: the local stack runs all functions in threads of one
process, where powertools kept the event being resolved on a class shared by every handler, so a victim's
handler could read the attacker's callback (a 500, or the attacker's identity and body) and the
attacker's output handler the victim's request. docs/security.md, promise 6 (one request, one identity);
tests/unit/test_resolver_threads.py holds the mechanism deterministically."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.security.conftest import Tenants

pytestmark = pytest.mark.e2e

# Prints for a few seconds, flushing every line: its executor posts a chunk every ~100 ms, and the chunk
# posts of several such runs overlap the victim's requests.
REQUESTS = 240
FLOOD = (
    "import sys, time\n"
    "def handler(e):\n"
    "    end = time.time() + 6\n"
    "    n = 0\n"
    "    while time.time() < end:\n"
    "        print('attacker-line', n, flush=True)\n"
    "        n += 1\n"
    "        time.sleep(0.002)\n"
    "    return n\n"
)


def test_a_sandbox_flooding_callbacks_never_mixes_with_another_tenants_requests(tenants: Tenants) -> None:
    attacker: dict[str, tuple[str, dict]] = {}
    flooding = threading.Thread(target=lambda: attacker.update(run=tenants.attack(FLOOD, timeout=60)))
    flooding.start()
    victim, sid = tenants.victim, tenants.victim_sid

    def victim_request(i: int) -> tuple[int, object]:
        if i % 2:
            got = victim.get(f"/sessions/{sid}")
            return got.status_code, got.json().get("session_id") if got.status_code == 200 else got.json()
        code = f"def handler(e):\n    return {{'mine': {i}, 'event': e}}\n"
        ran = victim.post(
            f"/sessions/{sid}/execute-sync", json={"code": code, "language": "python", "event": {"i": i}}
        )
        # Anything but the run's own answer is shown whole (a refusal's error body says why).
        return ran.status_code, ran.json().get("return_value") if ran.status_code == 200 else ran.json()

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(victim_request, range(REQUESTS)))
    flooding.join(60)
    expected = [(200, sid) if i % 2 else (200, {"mine": i, "event": {"i": i}}) for i in range(REQUESTS)]
    assert answers == expected, (
        [(i, a) for i, a in enumerate(answers) if a != expected[i]],
        tenants.stack.output()[-6000:],  # the stack's log: an unexpected error's traceback
    )
    # The attacker's own run got its own output and nothing of the victim's.
    status, result = attacker["run"]
    assert status == "completed" and result["return_value"] > 0, result
    assert "attacker-line 0\n" in result["stdout"] and "mine" not in result["stdout"]
