"""API keys table (SHA-256 hashes of the secrets only)."""

from __future__ import annotations

from sandboxcp.adapters.dynamo.common import get_item
from sandboxcp.adapters.tables import ApiKeyRecord
from sandboxcp.domain.models import ApiKey


class DynamoApiKeyRepository:
    def get(self, key_hash: str) -> ApiKey | None:
        r = get_item(ApiKeyRecord, key_hash)
        if r is None:
            return None
        return ApiKey(
            key_hash=r.key_hash, tenant_id=r.tenant_id, is_admin=bool(r.is_admin), created_at=r.created_at
        )

    def put(self, key: ApiKey) -> None:
        ApiKeyRecord(**key.model_dump()).save(condition=ApiKeyRecord.key_hash.does_not_exist())
