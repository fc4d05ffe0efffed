"""``ValidationError``, apart from validation.py: the modules an idle agent imports raise or catch it, and
validation.py itself (with ``dataclasses``) comes with the first request that needs it (docs/capacity.md)."""


class ValidationError(ValueError):
    """Carries the ``error_detail`` of a 400 ``Executor.ValidationError``."""
