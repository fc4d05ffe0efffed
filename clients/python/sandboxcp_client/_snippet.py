"""Plain Python snippets on a handler-style executor.

The executor runs Python as `handler(event)` and requires a `handler` (executor/sandbox_executor/
bootstrap_python.py): a bare script fails with "handler not found". `run_code("1 + 1")` therefore sends
the snippet inside a small handler that runs it as a script in the module's namespace, evaluates a final
expression (as a notebook cell does) and returns an envelope with that value (JSON when it can be, and its
repr), plus a PNG of every matplotlib figure left open. Tracebacks point at the snippet's own lines
(`File "<code>", line N`). JavaScript and shell run plain scripts natively and are sent unchanged.

Each run is a fresh process: variables do not carry over between runs, files in /workspace do.
"""

from __future__ import annotations

import ast
from typing import Any

ENVELOPE_KEY = "__sandboxcp__"
ENVELOPE_VERSION = "snippet/1"

_WRAPPER = r"""
_SANDBOXCP_SOURCE = __SOURCE__


def handler(event):
    import ast, base64, io, json, linecache, os, sys, traceback

    os.environ.setdefault("MPLBACKEND", "Agg")
    name = "<code>"
    source = _SANDBOXCP_SOURCE
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    namespace = globals()
    try:
        tree = ast.parse(source, name, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, name, "exec"), namespace)
        value = eval(compile(last, name, "eval"), namespace) if last is not None else None
    except SystemExit:
        raise
    except BaseException as exc:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != name:
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb)
        sys.stderr.flush()
        raise SystemExit(1)
    out = {"__sandboxcp__": "snippet/1", "json": None, "text": None, "images": []}
    if value is not None:
        try:
            json.dumps(value, allow_nan=False)
            out["json"] = value
        except (TypeError, ValueError, RecursionError):
            pass
        try:
            out["text"] = repr(value)
        except Exception:
            out["text"] = "<%s object>" % type(value).__name__
        repr_png = getattr(value, "_repr_png_", None)
        if callable(repr_png) and not isinstance(value, type):
            try:
                png = repr_png()
                if isinstance(png, bytes):
                    encoded = base64.b64encode(png).decode()
                    out["images"].append({"mime_type": "image/png", "data_base64": encoded})
            except Exception:
                pass
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        try:
            for number in plt.get_fignums():
                buf = io.BytesIO()
                plt.figure(number).savefig(buf, format="png", bbox_inches="tight")
                encoded = base64.b64encode(buf.getvalue()).decode()
                out["images"].append({"mime_type": "image/png", "data_base64": encoded})
            plt.close("all")
        except Exception as exc:
            sys.stderr.write("figures not captured: %s\n" % exc)
    return out
"""


def defines_handler(code: str) -> bool:
    """Whether Python code defines a top-level `handler` (then it runs handler-style as is). Code this
    machine's Python cannot parse is treated as a snippet, so the sandbox reports the SyntaxError."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "handler"
        for node in tree.body
    )


def wrap_snippet(code: str) -> str:
    """The handler that runs `code` as a script and returns the envelope."""
    return _WRAPPER.replace("__SOURCE__", repr(code), 1)


def unwrap(return_value: Any) -> tuple[Any, str | None, list[dict[str, Any]]] | None:
    """(json value, repr text, images) from a snippet's envelope; None when it is not one."""
    if not isinstance(return_value, dict) or return_value.get(ENVELOPE_KEY) != ENVELOPE_VERSION:
        return None
    images = [i for i in return_value.get("images") or [] if isinstance(i, dict)]
    text = return_value.get("text")
    return return_value.get("json"), text if isinstance(text, str) else None, images
