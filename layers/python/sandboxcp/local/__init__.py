"""Local mode: the same handlers behind an API Gateway emulator, moto for AWS, real sandboxes."""
