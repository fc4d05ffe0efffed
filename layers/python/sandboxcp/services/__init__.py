"""Use cases: one function per operation, given its ports through `Dependencies`."""
