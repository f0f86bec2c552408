"""``python -m host_stub serve``: ComfyUI's HTTP and websocket API with a queue that survives restarts.

See ``host_stub/README.md`` (the "serve" section). :class:`host_stub.server.app.Server` runs the
server in-process; :mod:`host_stub.server.store` is the SQLite queue and history.
"""
