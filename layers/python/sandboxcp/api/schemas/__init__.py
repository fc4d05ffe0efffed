"""Response bodies, one module per resource: a function imports (and builds) only the models it
answers with (issue #14, cold imports). Shared parts are in `common`."""
