"""HTTP edge: the powertools resolver factory, the one exception-to-HTTP mapping, response schemas."""

from sandboxcp.api.lean_powertools import lean_event_handler

lean_event_handler()  # before any module of powertools' event handler is imported (see its docstring)
