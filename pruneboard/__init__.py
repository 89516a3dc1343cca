"""Pruneboard's torch-free core: the one job spec (``pruneboard.spec``) and the job statuses.

Everything here imports in well under a second and never imports torch, the engine, the API or
the worker (an import-linter contract), so the API, the CLI's parser and the form can all read
the same rules the engine runs by.
"""
