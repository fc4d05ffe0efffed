"""The sandbox-facing S3 path (`/_s3/...` on /run/controlplane.sock, served by the local S3 forwarder) serves
only the workspace requests the control plane signed for a session's prefix (DESIGN.md, trust boundary (2)).

Hostile code in the attacker's (t1) sandbox speaks raw HTTP over AF_UNIX to the socket: it lists the
bucket, reads, overwrites and deletes the victim's (t2) file with forged signatures, repurposes the
presigned GET and POST policy its own tenant got from the public API, and calls moto's own API (data.json,
reset). Every attempt must be refused, the victim's file and the stack must be unharmed. Then odd file
names (which broke when the forwarder passed on the decoded path) round-trip into /workspace."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests.integration.conftest import run_code
from tests.security.conftest import Tenants

pytestmark = pytest.mark.e2e

BUCKET = "sandboxcp-workspace"
VICTIM_FILE = b"t2's confidential numbers: 4 8 15 16 23 42\n"
BIG = 4 * 1024 * 1024 + 1  # above the inline limit: its download is a 307 to a presigned GET

# Raw HTTP/1.1 over the control plane's socket, as any code in the sandbox can send it.
ATTACK = r"""
import socket

def request(method, target, body, headers):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect('/run/controlplane.sock')
    head = f'{method} {target} HTTP/1.1\r\nHost: s3\r\nConnection: close\r\n'
    head += f'Content-Length: {len(body)}\r\n'
    head += ''.join(f'{k}: {v}\r\n' for k, v in headers.items()) + '\r\n'
    s.sendall(head.encode('latin-1') + body)
    data = b''
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    status = int(data.split(b' ', 2)[1])
    return status, data.partition(b'\r\n\r\n')[2]

def handler(event):
    out = {}
    for name, (method, target, body, headers) in event['attacks'].items():
        try:
            status, answer = request(method, target, body.encode('latin-1'), headers)
            out[name] = [status, answer[:400].decode('latin-1')]
        except OSError as exc:
            out[name] = [0, repr(exc)]
    return out
"""


def _via(url: str) -> str:
    """A presigned URL's target on the socket (how the executor sends it: SANDBOXCP_S3_VIA)."""
    parts = urlsplit(url)
    return "/_s3" + parts.path + (f"?{parts.query}" if parts.query else "")


def _fake_query(signature: str = "0" * 64) -> str:
    now = datetime.now(UTC)
    return (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential=local%2F{now:%Y%m%d}%2Fus-east-1%2Fs3%2Faws4_request"
        f"&X-Amz-Date={now:%Y%m%dT%H%M%SZ}&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
        f"&X-Amz-Signature={signature}"
    )


def _form(fields: dict[str, str], content: bytes) -> tuple[str, dict[str, str]]:
    """A multipart/form-data upload (as a latin-1 string, for the event) and its headers."""
    boundary = secrets.token_hex(12)
    body = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in fields.items()
    )
    body += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n'
    body += content.decode("latin-1") + f"\r\n--{boundary}--\r\n"
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def _own_grants(t: Tenants) -> tuple[str, dict[str, Any]]:
    """What the attacker's tenant legitimately gets from the public API for its own session: a presigned
    GET (the 307 of a large file's download) and a POST policy (upload-url)."""
    grant = t.attacker.post(
        f"/sessions/{t.attacker_sid}/files/upload-url", json={"path": "big.bin", "size": BIG}
    )
    assert grant.status_code == 200, grant.text
    form = grant.json()
    posted = httpx.post(form["url"], data=form["fields"], files={"file": ("big.bin", b"b" * BIG)}, timeout=60)
    assert posted.status_code in (200, 201, 204), posted.text
    redirect = t.attacker.get(f"/sessions/{t.attacker_sid}/files/big.bin", follow_redirects=False)
    assert redirect.status_code == 307, redirect.text
    policy = t.attacker.post(
        f"/sessions/{t.attacker_sid}/files/upload-url", json={"path": "own.txt", "size": 10}
    )
    assert policy.status_code == 200, policy.text
    return redirect.headers["location"], policy.json()


def _attacks(t: Tenants, own_get: str, own_post: dict[str, Any]) -> dict[str, list[Any]]:
    victim_key = f"workspace/{t.victim_sid}/secret.txt"
    victim_path = f"/_s3/{BUCKET}/{victim_key}"
    own_target = _via(own_get)
    own_query = own_target.partition("?")[2]
    post_url = _via(own_post["url"])
    fake_fields = {
        **own_post["fields"],
        "key": victim_key,
        "x-amz-signature": "0" * 64,
    }
    repurposed = {**own_post["fields"], "key": victim_key}
    widened = {**own_post["fields"], "key": victim_key}
    # A policy of the attacker's own making (anything for a year), under the signature of its own.
    document = {"expiration": "2099-01-01T00:00:00Z", "conditions": [["starts-with", "$key", "workspace/"]]}
    widened["policy"] = base64.b64encode(json.dumps(document).encode()).decode()
    none: dict[str, str] = {}
    return {
        "list the bucket": ["GET", f"/_s3/{BUCKET}/", "", none],
        "list the victim's prefix": [
            "GET",
            f"/_s3/{BUCKET}?list-type=2&prefix=workspace/{t.victim_sid}/",
            "",
            none,
        ],
        "list the buckets": ["GET", "/_s3/", "", none],
        "unsigned GET of the victim's file": ["GET", victim_path, "", none],
        "GET of the victim's file, fake signature": ["GET", f"{victim_path}?{_fake_query()}", "", none],
        "GET of the victim's file, own signature": ["GET", f"{victim_path}?{own_query}", "", none],
        "PUT into the victim's file, fake signature": [
            "PUT",
            f"{victim_path}?{_fake_query()}",
            "pwned",
            none,
        ],
        "PUT into the victim's file, own signature": ["PUT", f"{victim_path}?{own_query}", "pwned", none],
        "DELETE of the victim's file": ["DELETE", f"{victim_path}?{_fake_query()}", "", none],
        "POST into the victim's prefix, fake signature": ["POST", post_url, *_form(fake_fields, b"pwned")],
        "POST into the victim's prefix, own policy": ["POST", post_url, *_form(repurposed, b"pwned")],
        "POST into the victim's prefix, rewritten policy": ["POST", post_url, *_form(widened, b"pwned")],
        "moto-api data.json": ["GET", "/_s3/moto-api/data.json", "", none],
        "moto-api data.json via dot segments": ["GET", f"/_s3/{BUCKET}/../moto-api/data.json", "", none],
        "moto-api reset": ["POST", "/_s3/moto-api/reset", "", none],
        "moto-api reset by GET": ["GET", "/_s3/moto-api/reset", "", none],
    }


def _victim_file(t: Tenants, path: str) -> None:
    """The victim's file the attacks aim at, uploaded through the public API."""
    up = t.victim.post(
        f"/sessions/{t.victim_sid}/files/upload", files={"file": (path, VICTIM_FILE)}, data={"path": path}
    )
    assert up.status_code == 200, up.text


def test_the_sandbox_reaches_only_what_was_signed_for_its_own_session(tenants: Tenants) -> None:
    t = tenants
    _victim_file(t, "secret.txt")
    own_get, own_post = _own_grants(t)
    attacks = _attacks(t, own_get, own_post)
    # The control: the attacker's own presigned GET does work from inside the sandbox.
    attacks["own presigned GET (allowed)"] = ["GET", _via(own_get), "", {}]

    status, result = t.attack(ATTACK, event={"attacks": attacks})
    assert status == "completed", result
    answers = result["return_value"]
    own_status, own_body = answers.pop("own presigned GET (allowed)")
    assert own_status == 200 and own_body.startswith("b" * 100), own_body[:200]
    for name, (code, body) in answers.items():
        assert code == 403, f"{name}: {code} {body[:300]}"
        assert "AccessDenied" in body, name
        assert t.victim_sid not in body and "confidential" not in body, name

    # The victim's file is untouched, its session (and the stack's tables: no reset) still works.
    got = t.victim.get(f"/sessions/{t.victim_sid}/files/secret.txt")
    assert got.status_code == 200 and got.content == VICTIM_FILE
    listed = {f["path"] for f in t.victim.get(f"/sessions/{t.victim_sid}/files").json()["files"]}
    assert "secret.txt" in listed and not any("pwned" in p or p.startswith("own") for p in listed)
    status, result = run_code(
        t.victim, t.victim_sid, "def handler(event):\n    return open('/workspace/secret.txt').read()\n"
    )
    assert status == "completed" and result["return_value"] == VICTIM_FILE.decode(), result
    status, result = t.attack("def handler(event):\n    return 6 * 7\n")
    assert status == "completed" and result["return_value"] == 42, result


# Names the forwarder broke by passing on the decoded path: '?' and '%' in the key, percent-encoded 4 times.
FOUR_TIMES = quote(quote(quote(quote("x?y.txt", safe=""), safe=""), safe=""), safe="")
LIST_WORKSPACE = (
    "import os\n"
    "def handler(event):\n"
    "    found = {}\n"
    "    for name in event['names']:\n"
    "        p = os.path.join('/workspace', name)\n"
    "        found[name] = open(p, 'rb').read().decode() if os.path.isfile(p) else None\n"
    "    return found\n"
)


def test_odd_names_reach_the_workspace_under_their_exact_names(tenants: Tenants) -> None:
    t = tenants
    # Through the public API (which normalizes a path by decoding it, so the stored names are the ones it
    # answers with), then into /workspace by the executor's presigned GETs.
    stored = []
    for name in ("q%3Fx.txt", FOUR_TIMES):
        up = t.victim.post(
            f"/sessions/{t.victim_sid}/files/upload",
            files={"file": ("f", f"uploaded as {name}".encode())},
            data={"path": name},
        )
        assert up.status_code == 200, up.text
        stored.append((up.json()["path"], f"uploaded as {name}"))
    assert [p for p, _ in stored] == ["q?x.txt", "x%3Fy.txt"]  # normalize_path decodes up to three times
    names = [p for p, _ in stored]
    status, result = run_code(t.victim, t.victim_sid, LIST_WORKSPACE, event={"names": names})
    assert status == "completed", result
    assert result["return_value"] == dict(stored)

    # Written by code under the literal names: uploaded with the POST policy, then (once removed from
    # /workspace) downloaded again by a later execution's presigned GETs, which list the workspace once
    # it changed through the API (docs/workspace.md: the revision).
    literal = {"q%3Fx.txt": "literal q", FOUR_TIMES: "literal four", "a b €.txt": "literal space euro"}
    write = (
        "def handler(event):\n"
        "    for name, text in event['files'].items():\n"
        "        open('/workspace/' + name, 'w').write(text)\n"
    )
    status, result = run_code(t.victim, t.victim_sid, write, event={"files": literal})
    assert status == "completed", result
    assert set(literal) <= {a["path"] for a in result["artifacts"]}
    listed = {f["path"] for f in t.victim.get(f"/sessions/{t.victim_sid}/files").json()["files"]}
    assert set(literal) <= listed
    remove = (
        "import os\ndef handler(event):\n    for n in event['names']:\n        os.remove('/workspace/' + n)\n"
    )
    status, result = run_code(t.victim, t.victim_sid, remove, event={"names": list(literal)})
    assert status == "completed", result
    bump = t.victim.post(
        f"/sessions/{t.victim_sid}/files/upload", files={"file": ("f", b"new")}, data={"path": "rev.txt"}
    )
    assert bump.status_code == 200, bump.text
    status, result = run_code(t.victim, t.victim_sid, LIST_WORKSPACE, event={"names": [*literal, *names]})
    assert status == "completed", result
    assert result["return_value"] == {**literal, **dict(stored)}
    status, result = run_code(t.victim, t.victim_sid, "def handler(event):\n    return 'still fine'\n")
    assert status == "completed" and result["return_value"] == "still fine", result


def test_a_form_upload_stores_only_what_its_own_policy_was_checked_for(tenants: Tenants) -> None:
    """The forwarder stores an accepted form upload itself (no second parser reads the form): hostile code
    holding a real policy for one file of its own session bends the form around it."""
    t = tenants
    policy = t.attacker.post(
        f"/sessions/{t.attacker_sid}/files/upload-url", json={"path": "own.txt", "size": 10}
    )
    assert policy.status_code == 200, policy.text
    grant = policy.json()
    target, own = _via(grant["url"]), grant["fields"]
    victim_key = f"workspace/{t.victim_sid}/own.txt"
    # The key part moved after the file part (S3 ignores fields after the file).
    late, late_headers = _form({k: v for k, v in own.items() if k != "key"}, b"late")
    boundary = late_headers["Content-Type"].rpartition("=")[2]
    key_part = f'--{boundary}\r\nContent-Disposition: form-data; name="key"\r\n\r\n{victim_key}\r\n'
    late = late.replace(f"--{boundary}--", key_part + f"--{boundary}--")

    def post(extra: dict[str, str], content: bytes = b"a") -> list[Any]:
        return ["POST", target, *_form({**own, **extra}, content)]

    attacks = {
        "redirect after the upload": post({"success_action_redirect": "http://x/"}),
        "another answer status": post({"success_action_status": "201"}),
        "metadata no condition names": post({"x-amz-meta-owner": "victim"}),
        "larger than the policy allows": post({}, b"x" * 11),
        "the key again after the file": ["POST", target, late, late_headers],
        "the key twice": post({"KEY": victim_key}),
    }
    attacks["own upload (allowed)"] = post({}, b"mine only")
    status, result = t.attack(ATTACK, event={"attacks": attacks})
    assert status == "completed", result
    answers = result["return_value"]
    assert answers.pop("own upload (allowed)") == [204, ""]
    for name, (code, body) in answers.items():
        assert code == 403 and "AccessDenied" in body, f"{name}: {code} {body[:300]}"
    # Stored: the allowed upload's bytes under the one key its policy named, nothing else anywhere.
    got = t.attacker.get(f"/sessions/{t.attacker_sid}/files/own.txt")
    assert got.status_code == 200 and got.content == b"mine only"
    for client, sid in ((t.attacker, t.attacker_sid), (t.victim, t.victim_sid)):
        paths = {f["path"] for f in client.get(f"/sessions/{sid}/files").json()["files"]}
        assert not {"late", "a"} & paths and (sid == t.attacker_sid or "own.txt" not in paths), paths


# One connection kept across requests (HTTP/1.1 keep-alive, sandboxcp/local/handler.py): each step is sent
# whole, then its answers are read; an answer is [status, its Connection header]; None: the server closed.
KEPT_CONNECTION = r"""
import socket

def answer(f):
    line = f.readline()
    if not line:
        return None
    headers = {}
    while (h := f.readline()) not in (b'\r\n', b''):
        k, _, v = h.decode('latin-1').partition(':')
        headers[k.strip().lower()] = v.strip()
    f.read(int(headers.get('content-length', '0')))
    return [int(line.split()[1]), headers.get('connection', '')]

def handler(event):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect('/run/controlplane.sock')
    f = s.makefile('rb')
    out = []
    for raw, answers in event['steps']:
        s.sendall(raw.encode('latin-1'))
        got = [answer(f) for _ in range(answers)]
        out.append(got)
        if None in got:
            break
    return out
"""


def _raw(method: str, target: str, body: str = "", headers: dict[str, str] | None = None) -> str:
    """A request as sent on a kept connection: HTTP/1.1 and no `Connection: close`."""
    head = f"{method} {target} HTTP/1.1\r\nHost: s3\r\nContent-Length: {len(body)}\r\n"
    return head + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()) + "\r\n" + body


def test_a_kept_connection_carries_each_request_as_one_of_its_own(tenants: Tenants) -> None:
    """Hostile code keeps one connection to the socket: a request allowed on it lends nothing to the next,
    a request smuggled behind or inside another's body is refused or never read, and a refusal that left
    a body unread closes the connection."""
    t = tenants
    _victim_file(t, "kept.txt")
    own_get, own_post = _own_grants(t)
    victim_key = f"workspace/{t.victim_sid}/kept.txt"
    own_query = _via(own_get).partition("?")[2]
    post_url = _via(own_post["url"])
    repurposed, repurposed_headers = _form({**own_post["fields"], "key": victim_key}, b"pwned")
    own_form, own_headers = _form(own_post["fields"], b"kept conn!")
    reset = _raw("POST", "/_s3/moto-api/reset")
    # Inside the body, after the form's last boundary (its epilogue): bytes of the body, not a request.
    padded = own_form + reset
    steps = [
        [_raw("GET", _via(own_get)), 1],
        [_raw("GET", f"/_s3/{BUCKET}/{victim_key}?{own_query}"), 1],
        [_raw("GET", "/_s3/moto-api/data.json"), 1],
        [_raw("GET", _via(own_get)), 1],  # the connection still works, and only for what is signed
        [_raw("POST", post_url, padded, own_headers), 1],
        [_raw("POST", post_url, repurposed, repurposed_headers) + reset, 2],  # one behind the other
    ]
    status, result = t.attack(KEPT_CONNECTION, event={"steps": steps})
    assert status == "completed", result
    answers = result["return_value"]
    assert len(answers) == len(steps), answers
    (own1,), (victim_get,), (moto,), (own2,), (padded_answer,), smuggled = answers
    assert own1 == [200, ""] and own2 == [200, ""], answers  # kept: no `Connection: close`
    assert victim_get[0] == 403 and moto[0] == 403, answers
    assert padded_answer == [204, ""], answers  # the form stored, the epilogue ignored
    refused, behind = smuggled
    assert refused is not None and refused[0] == 403, answers
    # The request behind the refused one is refused too, or never read: the connection closed.
    assert behind is None or behind[0] == 403, answers
    own = t.attacker.get(f"/sessions/{t.attacker_sid}/files/own.txt")
    assert own.status_code == 200 and own.content == b"kept conn!"
    # Nothing reached moto: the victim's file is whole, and the stack's state was not reset.
    got = t.victim.get(f"/sessions/{t.victim_sid}/files/kept.txt")
    assert got.status_code == 200 and got.content == VICTIM_FILE
    listed = {f["path"] for f in t.victim.get(f"/sessions/{t.victim_sid}/files").json()["files"]}
    assert "kept.txt" in listed and not any("pwned" in p for p in listed)
    status, result = t.attack("def handler(event):\n    return 6 * 7\n")
    assert status == "completed" and result["return_value"] == 42, result
