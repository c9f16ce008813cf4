"""The NGSI-LD side of the cloud: API routes, media types, errors, the Device mapping.

Submodules are imported where used (the ``routes_*`` modules pull in the web
stack; ``device_model`` and ``timestamps`` are pure and cheap).
"""
