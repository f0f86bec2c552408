"""The engine: host-agnostic model loading, caching, memory planning, sampling and encoding.

Nothing here imports ``i2v_nodes.nodes`` or ``host_stub``.
"""
