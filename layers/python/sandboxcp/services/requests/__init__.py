"""Inputs of the use cases, validated at the edge by the API layer. The limits shared with the executor
live in sandbox_executor.contract; docs/api.md's "Limits" table lists them all.

One module per resource: a function imports (and builds) only the body it takes (issue #14, cold
imports)."""
