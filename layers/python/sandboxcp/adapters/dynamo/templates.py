"""Templates table."""

from __future__ import annotations

from pynamodb.exceptions import PutError

from sandboxcp.adapters.dynamo.common import condition_failed, get_item, page_slice
from sandboxcp.adapters.tables import TemplateRecord
from sandboxcp.domain.models import Template
from sandboxcp.domain.ports import Page


class DynamoTemplateRepository:
    def get(self, template_id: str) -> Template | None:
        r = get_item(TemplateRecord, template_id)
        return Template.model_validate(r.body) if r else None

    def list(self, *, limit: int, offset: int) -> Page[Template]:
        total = TemplateRecord.all_templates.count("template")
        rows = TemplateRecord.all_templates.query("template")
        return Page(
            items=[Template.model_validate(r.body) for r in page_slice(rows, limit, offset)], total=total
        )

    def put_if_absent(self, template: Template) -> bool:
        try:
            TemplateRecord(
                template_id=template.id, body=template.model_dump(mode="json"), deprecated=template.deprecated
            ).save(condition=TemplateRecord.template_id.does_not_exist())
        except PutError as err:
            if condition_failed(err):
                return False
            raise
        return True
