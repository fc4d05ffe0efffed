"""HTTP edge: the powertools resolver factory, the one exception-to-HTTP mapping, response schemas."""
