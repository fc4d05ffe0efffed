"""werkzeug's threaded WSGI server, with its connection threads reused.

werkzeug's `ThreadedWSGIServer` starts a thread per connection. Starting a thread costs about 0.2 ms of
CPU, a tenth of what a sandbox's small upload cost the local stack in all, and most connections carry one
request (the executor's callbacks; its uploads share a few kept connections, handler.py). Here a thread
that has answered its connection waits a little for the next one instead of exiting. There is still a
thread for every connection in flight and no bound: a slow or idle client holds up nobody else, as with
werkzeug's own server.
"""

from __future__ import annotations

import queue
import socketserver
import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer

IDLE_S = 10.0  # how long a finished connection thread waits for another connection before it exits

_Job = tuple[Any, Any]  # (the accepted socket, the client's address)


class _ReusedThreads(socketserver.ThreadingMixIn):
    """ThreadingMixIn whose threads take the next connection when done (up to IDLE_S later)."""

    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._idle = 0  # threads waiting for a connection, less the connections already queued for them
        self._idle_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    @property
    def idle_threads(self) -> int:
        """Threads waiting for a connection (for tests and tools)."""
        with self._idle_lock:
            return self._idle

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._idle_lock:
            if self._idle > 0:
                self._idle -= 1
                self._jobs.put((request, client_address))
                return
        thread = threading.Thread(
            target=self._serve_connections,
            args=((request, client_address),),
            name=self.thread_name,
            daemon=True,
        )
        thread.start()

    @property
    def thread_name(self) -> str:
        """The name of this server's connection threads."""
        return f"connection-{id(self):x}"

    def _serve_connections(self, job: _Job) -> None:
        while True:
            self.process_request_thread(*job)  # handles errors and closes the connection
            with self._idle_lock:
                self._idle += 1
            try:
                job = self._jobs.get(timeout=IDLE_S)
            except queue.Empty:
                with self._idle_lock:  # a connection may have been queued for this thread meanwhile
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        self._idle -= 1
                        return


class PooledWSGIServer(_ReusedThreads, BaseWSGIServer):
    """What `werkzeug.serving.make_server(..., threaded=True)` makes, with reused connection threads."""

    multithread = True

