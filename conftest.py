"""Fixtures for the whole suite: real Kafka and PostgreSQL servers (see amiflow_runtime.testing)."""

pytest_plugins = ["amiflow_runtime.testing"]
