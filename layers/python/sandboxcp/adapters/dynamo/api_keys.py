"""API keys table (SHA-256 hashes of the secrets only)."""

from __future__ import annotations

import threading
import time

from sandboxcp.adapters.dynamo.common import get_item
from sandboxcp.adapters.tables import ApiKeyRecord
from sandboxcp.domain.models import ApiKey

# How long a warm authorizer trusts a key it found without reading it again: one GetItem saved on every
# request after the first. Deleting a key's item takes up to this long to take effect (docs/api.md). A key
# not found is never remembered: a key issued a moment ago works at once.
FOUND_KEY_TTL_S = 30.0
MAX_REMEMBERED = 1024


class DynamoApiKeyRepository:
    def __init__(self, found_ttl_s: float = FOUND_KEY_TTL_S) -> None:
        self._ttl = found_ttl_s
        self._found: dict[str, tuple[ApiKey, float]] = {}  # key hash -> (key, when to read it again)
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> ApiKey | None:
        now = time.monotonic()
        with self._lock:
            remembered = self._found.get(key_hash)
        if remembered is not None and remembered[1] > now:
            return remembered[0]
        r = get_item(ApiKeyRecord, key_hash)
        if r is None:
            return None
        key = ApiKey(
            key_hash=r.key_hash, tenant_id=r.tenant_id, is_admin=bool(r.is_admin), created_at=r.created_at
        )
        with self._lock:
            if len(self._found) >= MAX_REMEMBERED:
                self._found.clear()
            self._found[key_hash] = (key, now + self._ttl)
        return key

    def put(self, key: ApiKey) -> None:
        ApiKeyRecord(**key.model_dump()).save(condition=ApiKeyRecord.key_hash.does_not_exist())
