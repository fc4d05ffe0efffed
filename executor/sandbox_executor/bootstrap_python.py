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

_HANDLER_RUNTIME = r"""
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

def _main(ret_fd):
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
"""

PYTHON_BOOTSTRAP = _HANDLER_RUNTIME + "\nsys.exit(_main(int(sys.argv[1])))\n"

# The fork server (forkserver.py): an interpreter that has already started and imported what
# every handler run needs, and forks one child per execution. The child gets its stdin, stdout,
# stderr and return pipe as fds 0-3 over the unix socket (SCM_RIGHTS), starts a session of its own,
# dies with the server, and is dumpable again (the server is not: its children run user code as
# our uid and must not be able to rewrite it for the runs after theirs). The server reports each
# child's pid, then its wait status and rusage; it serves one run at a time.
PYTHON_FORKSERVER = (
    _HANDLER_RUNTIME
    + r"""
import array, ctypes, fcntl, signal, socket

def _child_exit(main):
    # What interpreter exit does that a run can see (join its threads, run its atexit functions,
    # flush), without tearing the interpreter down: that alone would take longer than the run.
    try:
        try:
            code = main(3)
        except SystemExit as exc:
            code = exc.code
        if code is None:
            code = 0
        elif not isinstance(code, int):
            sys.stderr.write("%s\n" % (code,))
            code = 1
        import atexit, threading
        threading._shutdown()
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    return code & 0xFF

def _serve(sock_fd):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
    sock = socket.socket(fileno=sock_fd)
    sock.set_inheritable(False)
    server = os.getpid()
    while True:
        fds = array.array("i")
        msg, ancdata, _flags, _addr = sock.recvmsg(65536, socket.CMSG_SPACE(4 * fds.itemsize))
        if not msg:
            return 0
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
        request = json.loads(msg)
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                os.setsid()
                libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
                if os.getppid() != server:
                    os._exit(137)
                libc.prctl(4, 1, 0, 0, 0)
                high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in fds]  # received ones may be 0-3
                for fd in fds:
                    os.close(fd)
                for target, fd in enumerate(high):
                    os.dup2(fd, target)
                    os.close(fd)
                os.environ.clear()
                os.environ.update(request["env"])
                os.chdir(request["cwd"])
            except BaseException:
                os._exit(126)
            os._exit(_child_exit(_main))
        for fd in fds:
            os.close(fd)
        sock.sendall(json.dumps({"pid": pid}).encode())
        _, status, usage = os.wait4(pid, 0)
        sock.sendall(json.dumps({
            "pid": pid, "status": status,
            "rusage": [usage.ru_utime, usage.ru_stime, usage.ru_maxrss],
        }).encode())

sys.exit(_serve(int(sys.argv[1])))
"""
)
