"""The Python code context's interpreter, run fileless as ``python -u -c KERNEL <request fd> <reply fd>``.

It keeps one ``__main__`` namespace for its whole life: imports, variables and definitions of a cell
are there for the next one. Protocol with the executor (contexts.py):

* a request is one JSON line on the request fd: ``{"code", "nonce", "outputs_dir"}``;
* the cell's prints go to fds 1 and 2 as they happen; when the cell is over the kernel writes the
  marker ``\\x1e<nonce>\\x1e`` to both, so the executor knows where the cell's output ends;
* then one JSON line on the reply fd: ``{"status": "ok"|"error", "outputs": [...], "ename", "evalue"}``.

Outputs are MIME bundles like a notebook's: ``{"type": "result", "data": {...}}`` for the value of the
last expression and ``{"type": "display", "data": {...}}`` for each ``display(obj)`` call and each
matplotlib figure left open by the cell (``plt.show()`` displays and closes them). Images are also
written to ``outputs_dir`` so that they come back as the execution's artifacts. SIGINT interrupts the
running cell (KeyboardInterrupt); between cells it is ignored.
"""

PYTHON_KERNEL = r'''
import ast, base64, builtins, json, linecache, os, signal, sys, traceback, types
import importlib.abc, importlib.util

_request = os.fdopen(int(sys.argv[1]), "rb", buffering=0)
_reply = os.fdopen(int(sys.argv[2]), "wb", buffering=0)
os.set_inheritable(_request.fileno(), False)
os.set_inheritable(_reply.fileno(), False)
sys.argv = [""]
_main = types.ModuleType("__main__")
_main.__builtins__ = builtins
sys.modules["__main__"] = _main
_cell = {"outputs": [], "dir": "", "images": 0, "count": 0}
_MIME_METHODS = (
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("application/json", "_repr_json_"),
)


def _figure_png(fig):
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _is_figure(obj):
    mpl_figure = sys.modules.get("matplotlib.figure")
    return mpl_figure is not None and isinstance(obj, mpl_figure.Figure)


def _bundle(obj):
    data = {}
    if _is_figure(obj):
        data["image/png"] = _figure_png(obj)
    elif not isinstance(obj, type):
        for mime, method in _MIME_METHODS:
            render = getattr(obj, method, None)
            if not callable(render):
                continue
            try:
                value = render()
            except Exception:
                continue
            if value is not None:
                data[mime] = value
    try:
        data["text/plain"] = repr(obj)
    except Exception as exc:
        data["text/plain"] = "<unrepresentable %s: %s>" % (type(obj).__name__, exc)
    return data


def _add(kind, data):
    png = data.get("image/png")
    if isinstance(png, bytes):
        _cell["images"] += 1
        try:
            os.makedirs(_cell["dir"], exist_ok=True)
            with open(os.path.join(_cell["dir"], "output-%d.png" % _cell["images"]), "wb") as f:
                f.write(png)
        except OSError:
            pass
        data["image/png"] = base64.b64encode(png).decode("ascii")
    _cell["outputs"].append({"type": kind, "data": data})


def display(*objs):
    """Show objects as rich outputs of the running cell (like IPython's display)."""
    for obj in objs:
        _add("display", _bundle(obj))


builtins.display = display


def _flush_figures():
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return
    for num in pyplot.get_fignums():
        display(pyplot.figure(num))
    pyplot.close("all")


class _InlineBackend(importlib.abc.Loader):
    """matplotlib backend `module://sandboxcp_inline`: Agg canvases, figures shown as PNG outputs."""

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        from matplotlib.backend_bases import FigureManagerBase
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        module.FigureCanvas = FigureCanvasAgg
        module.FigureManager = FigureManagerBase
        module.show = lambda *args, **kwargs: _flush_figures()


class _InlineBackendFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "sandboxcp_inline":
            return importlib.util.spec_from_loader(name, _InlineBackend())
        return None


sys.meta_path.append(_InlineBackendFinder())
os.environ.setdefault("MPLBACKEND", "module://sandboxcp_inline")


def _print_cell_traceback(exc):
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell"):
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)


def _run(code):
    _cell["count"] += 1
    filename = "<cell-%d>" % _cell["count"]
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    tree = ast.parse(code, filename, "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, filename, "exec"), _main.__dict__)
    if last is not None:
        value = eval(compile(last, filename, "eval"), _main.__dict__)
        if value is not None:
            if _is_figure(value):
                sys.modules["matplotlib.pyplot"].close(value)
            _add("result", _bundle(value))
            builtins._ = value


def _serve():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        line = _request.readline()
        if not line:
            return 0
        request = json.loads(line)
        _cell.update(outputs=[], dir=request.get("outputs_dir") or "", images=0)
        reply = {"status": "ok"}
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            try:
                _run(request["code"])
            finally:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            _flush_figures()
        except SystemExit as exc:
            reply = {"status": "error", "ename": "SystemExit", "evalue": str(exc.code)}
        except BaseException as exc:
            _print_cell_traceback(exc)
            reply = {"status": "error", "ename": type(exc).__name__, "evalue": str(exc)}
        reply["outputs"] = _cell["outputs"]
        marker = ("\x1e%s\x1e" % request["nonce"]).encode()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        for fd in (1, 2):
            os.write(fd, marker)
        try:
            data = json.dumps(reply, default=repr)
        except Exception as exc:
            data = json.dumps({"status": "error", "ename": type(exc).__name__, "evalue": str(exc)})
        _reply.write(data.encode() + b"\n")


sys.exit(_serve())
'''
