"""Peak activation memory of a forward pass, measured on the meta device.

The model is built from its config with no weights (``torch.device("meta")``) and its real
``forward`` runs on meta tensors: no arithmetic, no allocation, a fraction of a second even for
the full-size I2VGen-XL UNet. A dispatch mode sees every tensor the forward creates and keeps a
running total of the bytes alive, freeing them when the tensor's last reference goes, exactly
as the caching allocator would see them. The peak of that total is the activation memory of
the real architecture at the real shapes, for any model family, with no calibration table.

Attention is the one place where meta execution differs from a GPU or modern CPU: on meta,
``scaled_dot_product_attention`` falls back to the math path and materialises the full score
matrix, which the fused kernels (flash / memory-efficient on CUDA, flash on CPU) never do. The
trace therefore replaces the call by its output alone.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class _LiveBytes(TorchDispatchMode):
    """Counts bytes of tensor storages created during the forward while they are alive."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: dict[int, int] = {}
        # ids of tensors already counted (a WeakSet would compare tensors with their
        # elementwise __eq__); an id leaves the set when its tensor dies, before it can be reused
        self._tracked: set[int] = set()

    def _release(self, tensor_id: int, key: int, nbytes: int) -> None:
        self._tracked.discard(tensor_id)
        left = self._refs[key] - 1
        if left:
            self._refs[key] = left
        else:
            del self._refs[key]
            self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor) or id(tensor) in self._tracked:
                continue
            storage = tensor.untyped_storage()
            key, nbytes = storage._cdata, storage.nbytes()
            if key not in self._refs:
                self._refs[key] = 0
                self.live += nbytes
                self.peak = max(self.peak, self.live)
            self._refs[key] += 1
            self._tracked.add(id(tensor))
            weakref.finalize(tensor, self._release, id(tensor), key, nbytes)
        return out


class _FusedAttention(TorchFunctionMode):
    """Makes SDPA allocate only its output, like the fused kernels real devices use."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.scaled_dot_product_attention:
            query, value = args[0], args[2] if len(args) > 2 else kwargs["value"]
            return query.new_empty(query.shape[:-1] + value.shape[-1:])
        return func(*args, **(kwargs or {}))


# Meta modules are shared between estimates; tracing toggles no state on them, but a lock keeps
# two threads from interleaving dispatch modes, which are process-global.
_trace_lock = threading.Lock()


def peak_bytes(fn: Any, *args: Any, **kwargs: Any) -> int:
    """Peak bytes of tensors alive at once while ``fn(*args, **kwargs)`` runs on meta tensors.

    Counts only what the call allocates: its inputs and the module's parameters are excluded.
    """
    with _trace_lock, torch.no_grad():
        tracker = _LiveBytes()
        with _FusedAttention(), tracker:
            result = fn(*args, **kwargs)
        del result
        return tracker.peak
