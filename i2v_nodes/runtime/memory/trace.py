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
trace therefore replaces the call by its output alone. RMS norm is the other: CUDA runs
``torch.nn.functional.rms_norm`` as one fused kernel (when input and weight share a dtype) that
allocates only its output, where meta, like a CPU, decomposes it into float32 temporaries the size of
the input (three of them alive at once for Wan's query and key norms: 4.3 GiB at 1280x720x81). A
trace for CUDA (``kernels="cuda"``) counts the output alone.

Meta execution still costs Python time per operation, and video VAEs repeat one sub-module call
per frame and per tile (hundreds of identical calls for 81 frames in tiles). A call named in
``repeat`` (a sub-module's ``forward``, or any method) is traced once per distinct call signature
(the shapes of its tensors, the values of everything else, the state of the cache lists it is
handed) and later identical calls are replayed: the peak they reach is taken from the traced call,
and their outputs and cache-list updates are recreated with the same shapes, so the live total
stays exact.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_unflatten


class _LiveBytes(TorchDispatchMode):
    """Counts bytes of tensor storages created during the forward while they are alive."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self.counting_peak = True  # off while a replay recreates outputs whose peak is already known
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
        # a view of a tensor made before the trace (a weight's transpose, an input) allocates nothing
        given = {t.untyped_storage()._cdata for t in tree_flatten((args, kwargs))[0]
                 if isinstance(t, torch.Tensor)}
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor) or id(tensor) in self._tracked:
                continue
            storage = tensor.untyped_storage()
            key, nbytes = storage._cdata, storage.nbytes()
            if key not in self._refs and key in given:
                continue
            if key not in self._refs:
                self._refs[key] = 0
                self.live += nbytes
                if self.counting_peak:
                    self.peak = max(self.peak, self.live)
            self._refs[key] += 1
            self._tracked.add(id(tensor))
            weakref.finalize(tensor, self._release, id(tensor), key, nbytes)
        return out


KERNELS = ("cpu", "cuda")  # whose fused kernels a trace assumes


class _FusedKernels(TorchFunctionMode):
    """Makes SDPA (and, for CUDA, RMS norm) allocate only its output, like the fused kernels real
    devices use."""

    def __init__(self, kernels: str) -> None:
        super().__init__()
        if kernels not in KERNELS:
            raise ValueError(f"kernels must be one of {KERNELS}, not {kernels!r}")
        self.fused_norms = kernels == "cuda"

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            query = args[0] if args else kwargs["query"]
            value = args[2] if len(args) > 2 else kwargs["value"]
            return query.new_empty(query.shape[:-1] + value.shape[-1:])
        if self.fused_norms and func is F.rms_norm:
            x = args[0] if args else kwargs["input"]
            weight = args[2] if len(args) > 2 else kwargs.get("weight")
            if weight is None or weight.dtype == x.dtype:  # else CUDA decomposes it too
                return x.new_empty(x.shape)
        return func(*args, **kwargs)


@dataclass(frozen=True)
class _Record:
    """What one traced call did: its peak above the live total at entry, what it returned, and
    what it left in the lists it was handed (per slot: unchanged, a new tensor, or a value)."""

    peak_above_entry: int
    output: Any  # a pytree of ("new", shape, stride, dtype) / ("input", leaf index) / ("value", value)
    lists: tuple[tuple[int, tuple[Any, ...]], ...]  # (argument leaf index, slots after the call)


_UNCHANGED = ("unchanged",)


# What each repeated call did, by call signature, kept for its owner's lifetime: a call is a
# function of its signature, so a later trace (another frame count, another size with the same
# inner tiles) replays what an earlier one traced. None: not replayable, always run.
_RECORDS: weakref.WeakKeyDictionary[Any, dict[tuple, _Record | None]] = weakref.WeakKeyDictionary()

Repeat = tuple[Any, str]  # (owner, method name): a module's "forward", or another method


class _Repeats:
    """Trace each distinct call of the given modules once; replay the identical ones."""

    def __init__(self, tracker: _LiveBytes, kernels: str):
        self.tracker = tracker
        self.kernels = kernels

    @contextmanager
    def installed(self, repeat: tuple[Repeat, ...]) -> Iterator[None]:
        with ExitStack() as stack:
            for owner, name in repeat:
                stack.enter_context(self._wrapped(owner, name))
            yield

    @contextmanager
    def _wrapped(self, owner: Any, name: str) -> Iterator[None]:
        inner = getattr(owner, name)
        setattr(owner, name, lambda *a, **k: self.call(owner, name, inner, a, k))
        try:
            yield
        finally:
            delattr(owner, name)  # the instance attribute goes; the class's method shows again

    def call(self, owner: Any, name: str, inner: Any, args: tuple, kwargs: dict) -> Any:
        leaves, spec = tree_flatten((args, kwargs))
        records = _RECORDS.setdefault(owner, {})
        key = (name, self.kernels, str(spec), tuple(_signature(x) for x in leaves))
        if None in key[3]:
            return inner(*args, **kwargs)
        lists = [(i, value) for i, value in enumerate([*args, *kwargs.values()]) if isinstance(value, list)]
        # weak references only: holding the inputs would keep alive what the call frees
        inputs = [_weak(leaf) for leaf in leaves]
        del leaves
        record = records.get(key, _UNCHANGED)
        if isinstance(record, _Record):
            return self._replay(record, inputs, lists)
        if record is None:
            return inner(*args, **kwargs)
        out, records[key] = self._trace(inner, args, kwargs, inputs, lists)
        return out

    def _trace(self, inner: Any, args: tuple, kwargs: dict, inputs: list,
               lists: list) -> tuple[Any, _Record | None]:
        tracker = self.tracker
        before = [[_weak(item) for item in items] for _, items in lists]
        entry, saved_peak = tracker.live, tracker.peak
        tracker.peak = entry
        out = inner(*args, **kwargs)
        peak_above = tracker.peak - entry
        tracker.peak = max(saved_peak, tracker.peak)
        record = None
        output = _describe(out, inputs)
        slots = [tuple(_slot(old, new) for old, new in zip(was, items, strict=True)) if len(was) == len(items)
                 else None for was, (_, items) in zip(before, lists, strict=True)]
        if output is not None and all(s is not None and None not in s for s in slots):
            changes = tuple((i, s) for (i, _), s in zip(lists, slots, strict=True))
            record = _Record(peak_above, output, changes)
        return out, record

    def _replay(self, record: _Record, inputs: list, lists: list) -> Any:
        tracker = self.tracker
        tracker.peak = max(tracker.peak, tracker.live + record.peak_above_entry)
        tracker.counting_peak = False
        try:
            by_index = dict(lists)
            for index, slots in record.lists:
                target = by_index[index]
                for position, slot in enumerate(slots):
                    if slot != _UNCHANGED:
                        target[position] = _make(slot, inputs)
            return _rebuild(record.output, inputs)
        finally:
            tracker.counting_peak = True


_PLAIN = (int, float, bool, str, type(None))


def _signature(leaf: Any) -> Any:
    """What a call's behaviour may depend on: tensor layouts and plain values (None: anything else,
    which makes the call unsafe to replay)."""
    if isinstance(leaf, torch.Tensor):
        return ("tensor", tuple(leaf.shape), leaf.dtype, leaf.stride())
    return ("value", type(leaf).__name__, leaf) if isinstance(leaf, _PLAIN) else None


def _new_tensor(value: torch.Tensor) -> Any:
    """How to recreate a tensor a call made: one that owns exactly its storage (any dense layout),
    else None (a view hides its storage's true size; such a call is never replayed)."""
    owns_storage = value.storage_offset() == 0 and \
        value.untyped_storage().nbytes() == value.numel() * value.element_size()
    return ("new", tuple(value.shape), value.stride(), value.dtype) if owns_storage else None


def _weak(item: Any) -> Any:
    return weakref.ref(item) if isinstance(item, torch.Tensor) else item


def _deref(item: Any) -> Any:
    return item() if isinstance(item, weakref.ref) else item


def _slot(old: Any, new: Any) -> Any:
    if new is _deref(old):
        return _UNCHANGED
    if isinstance(new, torch.Tensor):
        return _new_tensor(new)
    return ("value", new) if isinstance(new, _PLAIN) else None


def _describe(out: Any, inputs: list) -> Any:
    flat, spec = tree_flatten(out)
    described = []
    for value in flat:
        same = next((i for i, item in enumerate(inputs) if _deref(item) is value), None)
        if same is not None:
            described.append(("input", same))
        elif isinstance(value, torch.Tensor):
            described.append(_new_tensor(value))
        else:
            described.append(("value", value) if isinstance(value, _PLAIN) else None)
    return None if None in described else (described, spec)


def _make(slot: Any, inputs: list) -> Any:
    if slot[0] == "new":
        return torch.empty_strided(slot[1], slot[2], dtype=slot[3], device="meta")
    return _deref(inputs[slot[1]]) if slot[0] == "input" else slot[1]


def _rebuild(output: Any, inputs: list) -> Any:
    described, spec = output
    return tree_unflatten([_make(slot, inputs) for slot in described], spec)


# Meta modules are shared between estimates; tracing toggles no state on them, but a lock keeps
# two threads from interleaving dispatch modes, which are process-global.
_trace_lock = threading.Lock()


def peak_bytes(fn: Any, *args: Any, repeat: tuple[Repeat, ...] = (), kernels: str = "cpu",
               **kwargs: Any) -> int:
    """Peak bytes of tensors alive at once while ``fn(*args, **kwargs)`` runs on meta tensors.

    Counts only what the call allocates: its inputs and the module's parameters are excluded.
    The ``repeat`` calls, ``(owner, method name)``, are traced once per signature and replayed after.
    ``kernels`` names the device whose fused kernels the run would use ("cpu" or "cuda").
    """
    with _trace_lock, torch.no_grad():
        tracker = _LiveBytes()
        with _FusedKernels(kernels), tracker, _Repeats(tracker, kernels).installed(repeat):
            result = fn(*args, **kwargs)
        del result
        return tracker.peak
