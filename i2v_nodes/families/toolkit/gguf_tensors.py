"""GGUF tensors into weightless models, the quantised matrices kept quantised.

This does what diffusers' ``from_single_file(..., quantization_config=GGUFQuantizationConfig(...))``
does, with its own layer (``GGUFLinear``, which dequantises its weight on each call, on any device)
and its own parameter type, but without its copy of the file: diffusers reads every tensor with
``tensor.data.copy()``, so a 10 GB expert becomes 10 GB of private memory. Here the file is mapped
copy-on-write and the quantised blocks are used where they lie: their pages stay file-backed, so the
kernel can drop and re-read them under pressure instead of ending the process, and nothing is read
twice. tests/test_gguf.py checks the model built here computes what ``from_single_file`` builds.

Differences, both exact: BF16 tensors (not block-quantised, and no smaller than the compute dtype)
are dequantised at load rather than on every call; and F32 / F16 tensors that are not at the
allocator's alignment are copied (see ``file_tensors.aligned``), as safetensors' are.
"""

from __future__ import annotations

from pathlib import Path

from i2v_nodes.errors import ModelError
from i2v_nodes.families.toolkit.file_tensors import aligned
from i2v_nodes.families.toolkit.gguf_header import BLOCKS, read_gguf_header
from i2v_nodes.lazy import torch


def read_gguf_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a GGUF file, mapped (nothing copied): the block-quantised ones as diffusers'
    ``GGUFParameter`` (their bytes), the rest as plain tensors of the stored dtype (BF16 dequantised),
    each in its original shape."""
    from diffusers.quantizers.gguf.utils import GGUFParameter, dequantize_gguf_tensor
    from gguf import GGUFReader

    header = read_gguf_header(path)  # a file cut short, or of a type the pack cannot read, stops here
    try:
        reader = GGUFReader(path, "c")  # copy-on-write: writable tensors, pages shared with the file
    except (ValueError, KeyError, IndexError, TypeError, OverflowError, OSError) as exc:
        raise ModelError(f"cannot read the tensors of {Path(path).name}: {exc}") from exc
    state: dict[str, torch.Tensor] = {}
    for tensor in reader.tensors:
        data = torch.from_numpy(tensor.data)
        info = header.tensors[tensor.name]
        kind = tensor.tensor_type.name
        if kind in ("F32", "F16"):
            state[tensor.name] = data.reshape(info.shape)
            continue
        rows = data.reshape(*info.shape[:-1], -1)  # blocks of each row, in the original shape
        quantised = GGUFParameter(rows, quant_type=tensor.tensor_type)
        state[tensor.name] = quantised if kind in BLOCKS else dequantize_gguf_tensor(quantised).float()
    return state


def assign_quantised(model: torch.nn.Module, state: dict[str, torch.Tensor], dtype: torch.dtype,
                     path: Path) -> torch.nn.Module:
    """Assign GGUF tensors (in the model's own names) to a model built on the meta device: every
    Linear whose weight is block-quantised becomes diffusers' ``GGUFLinear`` computing in ``dtype``,
    except in the modules the class keeps in fp32 (``_keep_in_fp32_modules``), which are dequantised
    to fp32 now; every other tensor is dequantised and cast to ``dtype`` (fp32 where kept)."""
    from diffusers.quantizers.gguf.utils import GGUFParameter, dequantize_gguf_tensor

    keep = set(getattr(model, "_keep_in_fp32_modules", None) or ())
    layers = _quantised_layers(model, state, dtype, keep)
    plain: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        owner, _, leaf = name.rpartition(".")
        if owner in layers and leaf == "weight":
            layer = layers[owner]
            if tuple(tensor.quant_shape) != (layer.out_features, layer.in_features):
                raise ModelError(f"{path.name}: {name} holds a {tuple(tensor.quant_shape)} matrix where the "
                                 f"model its header describes has {(layer.out_features, layer.in_features)}")
            layer._parameters["weight"] = tensor
            continue
        if isinstance(tensor, GGUFParameter):
            tensor = dequantize_gguf_tensor(tensor)
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float32 if keep.intersection(name.split(".")) else dtype)
        plain[name] = tensor
    missing, unexpected = model.load_state_dict(aligned(plain), strict=False, assign=True)
    missing = [name for name in missing if name.removesuffix(".weight") not in layers]
    if missing or unexpected:
        raise ModelError(f"{path.name} does not fit the model its header describes: missing "
                         f"{missing[:5]}, unexpected {unexpected[:5]}")
    return model.eval()


def _quantised_layers(model: torch.nn.Module, state: dict[str, torch.Tensor], dtype: torch.dtype,
                      keep: set[str]) -> dict[str, torch.nn.Module]:
    """Swap each Linear whose weight is block-quantised (outside ``keep``) for a weightless
    ``GGUFLinear``; returns them by name."""
    from diffusers.quantizers.gguf.utils import GGUFLinear, GGUFParameter

    swapped = {}
    for name, module in list(model.named_modules()):
        quantised = isinstance(state.get(f"{name}.weight"), GGUFParameter)
        if not (isinstance(module, torch.nn.Linear) and quantised) or keep.intersection(name.split(".")):
            continue
        parent_name, _, child = name.rpartition(".")
        layer = GGUFLinear(module.in_features, module.out_features, module.bias is not None,
                           compute_dtype=dtype, device="meta")
        layer.source_cls = type(module)
        layer.requires_grad_(False)
        setattr(model.get_submodule(parent_name) if parent_name else model, child, layer)
        swapped[name] = layer
    return swapped
