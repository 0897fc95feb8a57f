"""PostgreSQL with credentials from AWS Secrets Manager (see base.py)."""
