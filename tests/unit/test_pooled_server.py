"""The local stack's WSGI server reuses its connection threads (sandboxcp/local/serving.py) without giving up
werkzeug's one thread per connection in flight: a connection that stalls holds up nobody else, and threads
left idle exit. Real sockets and a real server; the app records which thread answered."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandboxcp.local import serving
from sandboxcp.local.handler import GatewayRequestHandler
from sandboxcp.local.serving import PooledWSGIServer


class _App:
    def __init__(self) -> None:
        self.threads: list[int] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.threads.append(threading.get_ident())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, _App, Any]]:
    monkeypatch.setattr(serving, "IDLE_S", 2.0)
    app = _App()
    server = PooledWSGIServer("127.0.0.1", 0, app, GatewayRequestHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.port}", app, server
    server.shutdown()
    server.server_close()


def _get(url: str) -> str:
    return httpx.get(url, timeout=5).text


def test_connections_one_after_another_are_answered_by_one_thread(served: tuple[str, _App, Any]) -> None:
    url, app, server = served
    for _ in range(20):
        assert _get(url) == "ok"
        _until(lambda: server.idle_threads == 1)  # the thread is back waiting before the next connection
    # werkzeug's own threaded server starts a thread for each of them.
    assert len(set(app.threads)) == 1


def test_a_stalled_connection_does_not_hold_up_the_next(served: tuple[str, _App, Any]) -> None:
    url, _, server = served
    port = server.port
    stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
    try:
        for sock in stalled:
            sock.sendall(b"GET / HTTP/1.1\r\n")  # the request line, never the end of the headers
        started = time.monotonic()
        assert _get(url) == "ok"  # served while five threads wait on stalled clients
        assert time.monotonic() - started < 2
    finally:
        for sock in stalled:
            sock.close()


def test_idle_threads_exit(served: tuple[str, _App, Any]) -> None:
    url, _, server = served

    def alive() -> int:
        return sum(t.name == server.thread_name for t in threading.enumerate())

    with httpx.Client(timeout=5) as client:  # eight at once: several threads
        results = list(_parallel(lambda: client.get(url).text, 8))
    assert results == ["ok"] * 8
    assert alive() > 1
    _until(lambda: alive() == 0, timeout=10)  # IDLE_S (2 s here) after their last connection
    assert server.idle_threads == 0
    assert _get(url) == "ok"  # and a new connection still gets a thread


def _until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _parallel(call: Any, n: int) -> Iterator[Any]:
    barrier = threading.Barrier(n)
    out: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        out[i] = call()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return iter(out)
