"""The cloud's services: what the API asks for, in the twin's terms, over the store's repositories.

Layers, one way only (import-linter, ``pyproject.toml``): the HTTP routes call services,
services compose repositories' units of work, the store knows nothing above it.
"""
