"""HTTP edge: the powertools resolver factory, the one exception-to-HTTP mapping, response schemas."""

from sandboxcp.api.lean_powertools import lean_packages

lean_packages()  # before any module of powertools' event handler or data classes is imported (see there)
