"""`sandboxcp mcp`: an MCP server on stdio that lets an AI agent use sandboxes.

Tools: `create_sandbox`, `run_code` (stdout, stderr, the result and images as MCP image content),
`write_file`, `read_file`, `list_files`, `list_templates`, `terminate_sandbox`. It talks to the API with
the Python SDK (`SANDBOXCP_URL`, `SANDBOXCP_API_KEY`), so it works against the local stack and a deployed
one alike. Built on the official `mcp` package (`MCPServer`); an example client configuration is in
docs/sdk.md.
"""

from __future__ import annotations

import base64
import json
import mimetypes
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ContentBlock, ImageContent, TextContent

from sandboxcp_client import AsyncSandboxClient
from sandboxcp_client.errors import ApiError, SandboxError
from sandboxcp_client.models import ExecutionResult

INSTRUCTIONS = (
    "Run untrusted code in isolated sandboxes. Call create_sandbox once, then run_code as often as needed "
    "(each run is a fresh process: files in the workspace persist, variables do not), move files with "
    "write_file/read_file, and call terminate_sandbox when done. Python without a handler runs as a "
    "script and the value of its last expression is returned; matplotlib figures come back as images."
)
MAX_IMAGE_BYTES = 5 * 1024 * 1024  # images bigger than this are listed, not inlined
MAX_TEXT_FILE_BYTES = 1024 * 1024
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


def _tool_error(err: SandboxError) -> ToolError:
    if isinstance(err, ApiError):
        text = f"{err.error_code}: {err.detail or err.description}"
        if err.solution:
            text += f" (solution: {err.solution})"
        return ToolError(text)
    return ToolError(str(err))


def _summary(result: ExecutionResult) -> str:
    parts = [f"status: {result.status} (exit code {result.exit_code}, {result.execution_time:.3f} s)"]
    if result.stdout:
        parts.append("stdout:\n" + result.stdout)
    if result.stderr:
        parts.append("stderr:\n" + result.stderr)
    if result.text is not None:
        parts.append("result: " + result.text)
    elif result.return_value is not None:
        parts.append("result: " + json.dumps(result.return_value))
    if result.stdout_truncated or result.stderr_truncated:
        parts.append("(output truncated at 1 MiB)")
    files = [a.path for a in result.artifacts]
    if files:
        parts.append("files written: " + ", ".join(files))
    return "\n".join(parts)


def build_server(url: str | None = None, api_key: str | None = None) -> MCPServer[Any]:
    """The MCP server, with one API client for its lifetime."""
    state: dict[str, AsyncSandboxClient] = {}

    @asynccontextmanager
    async def lifespan(_server: MCPServer[Any]) -> AsyncIterator[dict[str, Any]]:
        try:
            yield {}
        finally:
            if "client" in state:
                await state.pop("client").aclose()

    server: MCPServer[Any] = MCPServer(
        "sandboxcp", instructions=INSTRUCTIONS, version="0.1.0", lifespan=lifespan, log_level="WARNING"
    )

    def api() -> AsyncSandboxClient:
        if "client" not in state:
            state["client"] = AsyncSandboxClient(url, api_key)
        return state["client"]

    @server.tool()
    async def create_sandbox(template: str = "python-basic", timeout: int = 600) -> dict[str, Any]:
        """Create a sandbox from a template (python-basic, python-datascience, nodejs-basic, ...) that lives
        `timeout` seconds (60-3600) and wait until it runs. Returns its sandbox_id."""
        try:
            client = api()
            info = await client.sessions.create(template, timeout=timeout)
            info = await client.sessions.wait_until_running(info.session_id)
        except SandboxError as err:
            raise _tool_error(err) from err
        if info.status != "running":
            raise ToolError(f"the sandbox did not start: {info.error_message or info.status}")
        return {"sandbox_id": info.session_id, "status": info.status, "template": info.template_id}

    @server.tool()
    async def run_code(
        sandbox_id: str,
        code: str,
        language: Literal["python", "javascript", "shell"] = "python",
        timeout: int = 30,
    ) -> CallToolResult:
        """Run code in the sandbox and return stdout, stderr, the result (Python: the last expression's
        value; a `handler(event)` is called with {}) and images (open matplotlib figures, and image files
        the code wrote). `timeout` is in seconds (1-3600)."""
        client = api()
        try:
            result = await client.executions.run(sandbox_id, code, language=language, timeout=timeout)
        except SandboxError as err:
            raise _tool_error(err) from err
        content: list[ContentBlock] = [TextContent(type="text", text=_summary(result))]
        for image in result.images:
            content.append(ImageContent(type="image", data=image.data_base64, mime_type=image.mime_type))
        for artifact in result.artifacts:
            if artifact.mime_type in IMAGE_TYPES and artifact.size <= MAX_IMAGE_BYTES:
                try:
                    data = await client.files.read(sandbox_id, artifact.path)
                except SandboxError:
                    continue
                encoded = base64.b64encode(data).decode()
                content.append(ImageContent(type="image", data=encoded, mime_type=artifact.mime_type))
        structured = {
            "status": result.status,
            "exit_code": result.exit_code,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "result": result.text if result.text is not None else result.return_value,
            "artifacts": [a.path for a in result.artifacts],
        }
        return CallToolResult(content=content, structured_content=structured, is_error=False)

    @server.tool()
    async def write_file(
        sandbox_id: str, path: str, content: str, encoding: Literal["utf-8", "base64"] = "utf-8"
    ) -> dict[str, Any]:
        """Write a file into the sandbox's workspace (/workspace/<path>). Binary content: base64 with
        encoding="base64"."""
        data = base64.b64decode(content) if encoding == "base64" else content.encode("utf-8")
        try:
            stored = await api().files.upload(sandbox_id, path, data)
        except SandboxError as err:
            raise _tool_error(err) from err
        return {"path": stored.path, "size": stored.size}

    @server.tool()
    async def read_file(sandbox_id: str, path: str) -> list[TextContent | ImageContent]:
        """Read a file from the sandbox's workspace: text as text, images as images, other binary files as
        base64."""
        try:
            data = await api().files.read(sandbox_id, path)
        except SandboxError as err:
            raise _tool_error(err) from err
        mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if mime in IMAGE_TYPES:
            return [ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type=mime)]
        if len(data) <= MAX_TEXT_FILE_BYTES:
            try:
                return [TextContent(type="text", text=data.decode("utf-8"))]
            except UnicodeDecodeError:
                pass
        return [
            TextContent(type="text", text=f"base64 ({len(data)} bytes): {base64.b64encode(data).decode()}")
        ]

    @server.tool()
    async def list_files(sandbox_id: str) -> list[dict[str, Any]]:
        """The files in the sandbox's workspace (path and size)."""
        try:
            files = await api().files.list(sandbox_id)
        except SandboxError as err:
            raise _tool_error(err) from err
        return [{"path": f.path, "size": f.size} for f in files]

    @server.tool()
    async def list_templates() -> list[dict[str, Any]]:
        """The templates a sandbox can be created from."""
        try:
            page = await api().templates.list()
        except SandboxError as err:
            raise _tool_error(err) from err
        return [
            {"id": t.id, "name": t.name, "languages": t.languages, "packages": t.pre_installed_packages}
            for t in page.templates
            if not t.deprecated
        ]

    @server.tool()
    async def terminate_sandbox(sandbox_id: str) -> str:
        """Terminate the sandbox (its files are kept 24 hours)."""
        try:
            return await api().sessions.terminate(sandbox_id)
        except SandboxError as err:
            raise _tool_error(err) from err

    return server


def serve(url: str | None = None, api_key: str | None = None) -> None:
    """Serve on stdio until the client closes the connection."""
    build_server(url, api_key).run("stdio")
