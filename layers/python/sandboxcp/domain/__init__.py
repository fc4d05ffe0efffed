"""Pure domain: models, state machines, errors, identifiers. Imports no AWS or HTTP client."""
