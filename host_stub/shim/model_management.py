"""Stand-in for ``comfy.model_management``: the interrupt flag and the memory functions packs call.

The stub loads no models of its own, so the functions that would unload ComfyUI's models only
release torch's cached blocks; they exist so that a pack written for ComfyUI runs unchanged.
Installed in ``sys.modules`` only while a host is active (see :mod:`host_stub.shim`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from host_stub import memory

log = logging.getLogger(__name__)

DISABLE_SMART_MEMORY = False


class InterruptProcessingException(Exception):  # noqa: N818 - ComfyUI's name, kept for compatibility
    """Raised at the next check after a cancel request.

    A plain ``Exception`` subclass, as in ComfyUI 0.3.64: packs must re-raise it before any broad
    ``except Exception`` handler, and running them here shows whether they do.
    """


_interrupt_lock = threading.RLock()
_interrupt_requested = False

# Counters that let tests (and curious users) see that the host asked for memory to be freed.
calls: dict[str, int] = {"unload_all_models": 0, "free_memory": 0, "soft_empty_cache": 0}


def interrupt_current_processing(value: bool = True) -> None:
    global _interrupt_requested
    with _interrupt_lock:
        _interrupt_requested = value


def processing_interrupted() -> bool:
    with _interrupt_lock:
        return _interrupt_requested


def throw_exception_if_processing_interrupted() -> None:
    """Raise once per request: the flag is cleared as the exception is raised, like ComfyUI."""
    global _interrupt_requested
    with _interrupt_lock:
        if _interrupt_requested:
            _interrupt_requested = False
            raise InterruptProcessingException()


def _torch_module() -> Any:
    import torch  # imported here: most graphs never need it just to ask for a device

    return torch


def get_torch_device() -> Any:
    torch = _torch_module()
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _is_cpu(dev: Any) -> bool:
    return getattr(dev, "type", str(dev)) in ("cpu", "mps")


def get_free_memory(dev: Any = None, torch_free_too: bool = False) -> Any:
    """Free memory on ``dev`` in bytes; with ``torch_free_too`` also what torch's allocator holds free."""
    if dev is None:
        dev = get_torch_device()
    if _is_cpu(dev):
        total_free = torch_free = memory.available_ram_bytes()
    else:
        torch = _torch_module()
        stats = torch.cuda.memory_stats(dev)
        torch_free = stats.get("reserved_bytes.all.current", 0) - stats.get("active_bytes.all.current", 0)
        cuda_free, _total = torch.cuda.mem_get_info(dev)
        total_free = cuda_free + torch_free
    return (total_free, torch_free) if torch_free_too else total_free


def get_total_memory(dev: Any = None, torch_total_too: bool = False) -> Any:
    if dev is None:
        dev = get_torch_device()
    if _is_cpu(dev):
        total = torch_total = memory.total_ram_bytes()
    else:
        torch = _torch_module()
        _free, total = torch.cuda.mem_get_info(dev)
        torch_total = torch.cuda.memory_stats(dev).get("reserved_bytes.all.current", 0)
    return (total, torch_total) if torch_total_too else total


def free_memory(memory_required: float, device: Any, keep_loaded: list[Any] | None = None) -> list[Any]:
    """Make room for ``memory_required`` bytes. The stub holds no models, so nothing is unloaded."""
    calls["free_memory"] += 1
    log.debug("free_memory(%s, %s): the stub holds no models to unload", memory_required, device)
    if not _is_cpu(device):
        soft_empty_cache()
    return []


def unload_all_models() -> None:
    calls["unload_all_models"] += 1
    free_memory(1e30, get_torch_device())


def soft_empty_cache(force: bool = False) -> None:
    calls["soft_empty_cache"] += 1
    if memory.cuda_in_use():
        torch = _torch_module()
        torch.cuda.empty_cache()
        torch.cuda.ipc_collect()


def cleanup_models_gc() -> None:
    """Nothing to collect: the stub keeps no model list."""


def __getattr__(name: str) -> Any:
    # OOM_EXCEPTION needs torch; resolve it only when someone asks for it.
    if name == "OOM_EXCEPTION":
        return _torch_module().cuda.OutOfMemoryError
    raise AttributeError(name)
