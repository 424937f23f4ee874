"""The worker's read API without HTTP: request/response models, bearer auth, the OpenAPI document,
the per-worker cache of published lists and the request logic (``ReadService``).

``streams/api.py`` serves it with aiohttp on the worker's event loop; this package never imports
faust, aiokafka or aiohttp, so the logic is tested without a server. See docs/api.md.
"""
