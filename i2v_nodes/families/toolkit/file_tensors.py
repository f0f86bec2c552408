"""Tensors of single files into weightless models: read (safetensors only), aligned as the allocator
would, and assigned to a model built on the meta device, so nothing is allocated twice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from i2v_nodes.errors import ModelError
from i2v_nodes.lazy import torch

ALIGNMENT = 64  # bytes: what torch's CPU allocator gives every fresh tensor


def read_tensors(path: Path, keep: Callable[[str], bool] | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (never pickle) whose names ``keep`` accepts (all without it),
    or a clear error if the file is cut short."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return {name: handle.get_tensor(name) for name in handle.keys()  # noqa: SIM118 - not a dict
                    if keep is None or keep(name)}
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types; named here
        raise ModelError(f"cannot read the tensors of {path.name}: {exc}") from exc


def aligned(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every tensor in memory of its own, at the allocator's alignment.

    safetensors hands tensors over at 16 bytes, and a CPU matrix-vector product (the VAE's timestep
    embedding, one row) sums in another order at another alignment: the same weights then give
    frames a few 1e-7 apart depending on how they were read. At the allocator's alignment they give
    the same frames however they were read. A tensor saved under two names stays one tensor. The
    dict is changed in place, one tensor at a time, so a model is never held twice.
    """
    copies: dict[int, torch.Tensor] = {}
    for name, tensor in state.items():
        if tensor.data_ptr() % ALIGNMENT:
            state[name] = copies.setdefault(id(tensor), tensor.clone())
    return state


def empty_weights():
    """Build a module with its parameters on the meta device (they are assigned from the file next)
    but its buffers computed for real (rope tables, position ids), as from_pretrained does."""
    from accelerate import init_empty_weights

    return init_empty_weights(include_buffers=False)


def assign(meta_model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> torch.nn.Module:
    try:
        meta_model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise ModelError(f"{path.name} does not fit the model its header describes: {exc}") from exc
    return meta_model.eval()
