"""`sandboxcp mcp` through the `mcp` package's own stdio client against the real local stack: tools/list,
then create a sandbox, run `print(6*7)`, images, files and terminate."""

from __future__ import annotations

import base64
import os
import sys

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import ImageContent, TextContent

from tests.e2e.conftest import Stack
from tests.sdk.test_sdk_e2e import PNG

pytestmark = pytest.mark.e2e
TOOLS = {
    "create_sandbox",
    "run_code",
    "write_file",
    "read_file",
    "list_files",
    "list_templates",
    "terminate_sandbox",
}


def test_mcp_server_lists_tools_and_runs_code(stack: Stack, tenant_key: str) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "sandboxcp.cli", "mcp"],
        env={"SANDBOXCP_URL": stack.url, "SANDBOXCP_API_KEY": tenant_key, "PATH": os.environ["PATH"]},
    )

    async def scenario() -> None:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            listed = await session.list_tools()
            assert {t.name for t in listed.tools} == TOOLS
            run_schema = next(t for t in listed.tools if t.name == "run_code").input_schema
            assert set(run_schema["required"]) == {"sandbox_id", "code"}

            templates = await session.call_tool("list_templates", {})
            assert "python-basic" in {t["id"] for t in templates.structured_content["result"]}  # type: ignore[index]

            created = await session.call_tool("create_sandbox", {"template": "python-basic", "timeout": 300})
            assert not created.is_error and created.structured_content is not None
            sid = created.structured_content["sandbox_id"]

            ran = await session.call_tool("run_code", {"sandbox_id": sid, "code": "print(6*7)"})
            assert not ran.is_error
            text = ran.content[0]
            assert isinstance(text, TextContent) and "42" in text.text and "status: success" in text.text
            assert ran.structured_content is not None and ran.structured_content["stdout"] == "42\n"

            failed = await session.call_tool("run_code", {"sandbox_id": sid, "code": "1/0"})
            assert "ZeroDivisionError" in failed.content[0].text  # type: ignore[union-attr]
            assert failed.structured_content is not None and failed.structured_content["status"] == "failed"

            # images: a value with a PNG repr (as matplotlib figures come back) and an image file written
            code = (
                f"open('/workspace/dot.png', 'wb').write({PNG!r})\n"
                "class Figure:\n"
                "    def _repr_png_(self):\n"
                "        return open('/workspace/dot.png', 'rb').read()\n"
                "Figure()"
            )
            imaged = await session.call_tool("run_code", {"sandbox_id": sid, "code": code})
            images = [c for c in imaged.content if isinstance(c, ImageContent)]
            assert len(images) == 2 and all(base64.b64decode(i.data) == PNG for i in images)
            assert {i.mime_type for i in images} == {"image/png"}

            wrote = await session.call_tool(
                "write_file", {"sandbox_id": sid, "path": "in/a.txt", "content": "hi"}
            )
            assert wrote.structured_content == {"path": "in/a.txt", "size": 2}
            await session.call_tool(
                "write_file",
                {
                    "sandbox_id": sid,
                    "path": "b.bin",
                    "content": base64.b64encode(b"\x00\xff").decode(),
                    "encoding": "base64",
                },
            )
            read = await session.call_tool("read_file", {"sandbox_id": sid, "path": "in/a.txt"})
            assert read.content[0].text == "hi"  # type: ignore[union-attr]
            binary = await session.call_tool("read_file", {"sandbox_id": sid, "path": "b.bin"})
            assert base64.b64encode(b"\x00\xff").decode() in binary.content[0].text  # type: ignore[union-attr]
            image = await session.call_tool("read_file", {"sandbox_id": sid, "path": "dot.png"})
            assert isinstance(image.content[0], ImageContent)
            files = await session.call_tool("list_files", {"sandbox_id": sid})
            assert {"in/a.txt", "b.bin", "dot.png"} <= {f["path"] for f in files.structured_content["result"]}  # type: ignore[index]

            gone = await session.call_tool("terminate_sandbox", {"sandbox_id": sid})
            assert not gone.is_error
            refused = await session.call_tool("run_code", {"sandbox_id": sid, "code": "print(1)"})
            assert refused.is_error and "Sandbox.StateConflict" in refused.content[0].text  # type: ignore[union-attr]
            assert "solution" in refused.content[0].text  # type: ignore[union-attr]

    anyio.run(scenario)
