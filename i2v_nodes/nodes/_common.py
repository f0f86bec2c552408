"""What every node shares: the category, and errors that name the node they came from."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from i2v_nodes.errors import I2VError
from i2v_nodes.runtime.sampling import MAX_FRAMES, MAX_SIDE

CATEGORY = "i2v"
MODEL_TYPE = "I2V_MODEL"
OPTIONS_TYPE = "I2V_OPTIONS"
FRAMES_OPTIONS = {"default": 16, "min": 2, "max": MAX_FRAMES}  # each family checks its own rule at run time
# width and height widgets; step 8 suits every family (each checks its own multiple)
SIZE_OPTIONS = {"default": 512, "min": 8, "max": MAX_SIDE, "step": 8}


@contextmanager
def node_errors(class_name: str, unique_id: str | None) -> Iterator[None]:
    """Prefix the pack's own errors with the node class and id (headless logs have no graph).

    Only :class:`I2VError` is touched: the host's interrupt and unexpected errors pass unchanged.
    """
    try:
        yield
    except I2VError as exc:
        where = f"{class_name} (node {unique_id})" if unique_id else class_name
        exc.args = (f"{where}: {exc.args[0] if exc.args else exc}",) + exc.args[1:]
        raise
