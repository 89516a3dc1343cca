"""Pruneboard's API: FastAPI routes, services, the database schema and settings; it never imports
torch, the engine or the worker (see docs/architecture.md)."""
