"""Templates table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pynamodb.exceptions import DeleteError, PutError

from sandboxcp.adapters.dynamo.common import condition_failed, get_item, query_page
from sandboxcp.adapters.tables import TemplateRecord
from sandboxcp.domain.errors import StateConflict
from sandboxcp.domain.models import Template
from sandboxcp.domain.ports import Page


def _record(template: Template) -> TemplateRecord:
    return TemplateRecord(
        template_id=template.id, body=template.model_dump(mode="json"), deprecated=template.deprecated
    )


class DynamoTemplateRepository:
    def get(self, template_id: str) -> Template | None:
        r = get_item(TemplateRecord, template_id)
        return Template.model_validate(r.body) if r else None

    def list(
        self,
        *,
        limit: int,
        offset: int,
        start_key: dict[str, Any] | None = None,
        with_total: bool = True,
    ) -> Page[Template]:
        rows, total, next_key = query_page(
            TemplateRecord.all_templates,
            "template",
            key_attrs=("template_id", "kind"),
            hash_attr="kind",
            limit=limit,
            offset=offset,
            start_key=start_key,
            scan_index_forward=True,
            with_total=with_total,
        )
        return Page(items=[Template.model_validate(r.body) for r in rows], total=total, next_key=next_key)

    def put_if_absent(self, template: Template) -> bool:
        try:
            _record(template).save(condition=TemplateRecord.template_id.does_not_exist())
        except PutError as err:
            if condition_failed(err):
                return False
            raise
        return True

    def replace(self, template: Template, *, expected_updated_at: datetime) -> None:
        """Optimistic concurrency: the write holds only if the stored body is still the version read
        (compared as stored, so bodies written by older model versions compare equal to themselves)."""
        conflict = StateConflict(
            f"Template '{template.id}' was changed or deleted concurrently",
            solution="Read the template again and retry the update",
        )
        current = get_item(TemplateRecord, template.id)
        if current is None or Template.model_validate(current.body).updated_at != expected_updated_at:
            raise conflict
        try:
            _record(template).save(condition=TemplateRecord.body == current.body)
        except PutError as err:
            if condition_failed(err):
                raise conflict from err
            raise

    def delete(self, template_id: str) -> bool:
        try:
            TemplateRecord(template_id=template_id).delete(condition=TemplateRecord.template_id.exists())
        except DeleteError as err:
            if condition_failed(err):
                return False
            raise
        return True
