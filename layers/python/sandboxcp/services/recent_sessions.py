"""Running sessions as this function instance last read them, so that a submit into a session it has
seen needs no read: the write that records the execution is conditioned on the session still being
what was read (running, same executor address and key, same workspace revision:
`ExecutionRepository.create(session_as_read=...)`), and a session that changed is read again.

One per function instance (`Dependencies.recent_sessions`); a session is kept for at most `TTL_S`, and
at most `MAX_SESSIONS` of them."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from sandboxcp.domain.models import Session

TTL_S = 60.0
MAX_SESSIONS = 256


class RecentSessions:
    def __init__(self, ttl_s: float = TTL_S, max_sessions: int = MAX_SESSIONS) -> None:
        self._ttl_s = ttl_s
        self._max = max_sessions
        self._kept: OrderedDict[str, tuple[Session, float]] = OrderedDict()
        self._lock = threading.Lock()  # the local stack runs functions in threads of one process

    def get(self, tenant_id: str, session_id: str) -> Session | None:
        with self._lock:
            kept = self._kept.get(session_id)
            if kept is None:
                return None
            session, until = kept
            if until < time.monotonic() or session.tenant_id != tenant_id:
                del self._kept[session_id]
                return None
            self._kept.move_to_end(session_id)
            return session

    def put(self, session: Session) -> None:
        with self._lock:
            self._kept[session.session_id] = (session, time.monotonic() + self._ttl_s)
            self._kept.move_to_end(session.session_id)
            while len(self._kept) > self._max:
                self._kept.popitem(last=False)

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._kept.pop(session_id, None)

