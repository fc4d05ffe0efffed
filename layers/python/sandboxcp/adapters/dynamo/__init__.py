"""DynamoDB repositories (pynamodb), one module per table. Every status change is a conditional update
whose condition is the domain state machine's set of allowed source statuses, so two racing writers never
both win."""
