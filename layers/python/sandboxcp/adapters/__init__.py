"""Adapters: DynamoDB (pynamodb), S3, Step Functions, container runtimes, the executor's HTTP API."""
