"""The service around the core: REST API, background jobs, and the client the CLI uses.

This package sits above ``service``, ``ingest``, ``training`` and ``ui`` (it may import all
four); only ``cli`` imports it.
"""

API_PREFIX = "/api/v1"
