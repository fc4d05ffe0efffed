"""The Python child's bootstrap, run fileless as ``python -u -c BOOTSTRAP <fd>`` (FR-013).

Protocol with the executor:

* stdin carries one JSON document ``{"code": str, "event": object}``;
* the code is compiled with filename ``<handler>`` and executed in a fresh ``__main__`` module;
  it must define a callable ``handler``, called as ``handler(event)`` (or ``handler(event, None)``
  when it takes two required positional parameters, for Lambda-style ``(event, context)``
  handlers); a coroutine result is awaited with ``asyncio.run``;
* ``json.dumps`` of the return value is written to the extra pipe fd ``argv[1]``, so that what
  the user prints on stdout never mixes with the return value;
* failures (including SyntaxError, a missing handler and a non-JSON return value) print to
  stderr and exit 1. Tracebacks start at the first ``<handler>`` frame.

``-u`` matters: on a timeout the child is SIGKILLed, and block-buffered prints would be lost.
"""

PYTHON_BOOTSTRAP = r"""
import json, linecache, os, sys, traceback, types

def _print_user_traceback(exc):
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "<handler>":
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)

def _call(handler, event):
    code = getattr(handler, "__code__", None)
    if code is not None and code.co_argcount - len(getattr(handler, "__defaults__", None) or ()) >= 2:
        result = handler(event, None)
    else:
        result = handler(event)
    if hasattr(result, "__await__"):
        import asyncio
        async def _await(awaitable):
            return await awaitable
        result = asyncio.run(_await(result))
    return result

def _main():
    ret_fd = int(sys.argv[1])
    os.set_inheritable(ret_fd, False)
    sys.argv = ["<handler>"]
    request = json.loads(sys.stdin.buffer.read())
    code, event = request["code"], request.get("event")
    linecache.cache["<handler>"] = (len(code), None, code.splitlines(True), "<handler>")
    module = types.ModuleType("__main__")
    module.__builtins__ = __builtins__
    sys.modules["__main__"] = module
    try:
        exec(compile(code, "<handler>", "exec"), module.__dict__)
        handler = module.__dict__.get("handler")
        if not callable(handler):
            sys.stderr.write("handler not found: the code must define a function `def handler(event): ...`\n")
            return 1
        result = _call(handler, event)
    except SystemExit:
        raise
    except BaseException as exc:
        _print_user_traceback(exc)
        return 1
    try:
        data = json.dumps(result, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        sys.stderr.write("return value is not JSON serializable: %s\n" % exc)
        return 1
    with os.fdopen(ret_fd, "wb") as out:
        out.write(data.encode("utf-8"))
    return 0

sys.exit(_main())
"""
