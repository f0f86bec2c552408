"""float8 weights: matrices kept in float8_e4m3fn (half of bf16) that compute in the run's dtype one
layer at a time, with ComfyUI's per-tensor scales (its fp8_scaled files); and how those files are made."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from i2v_nodes.lazy import torch

FP8_MAX = 448.0  # the largest float8_e4m3fn value


def is_float8(dtype: torch.dtype) -> bool:
    """Whether weights of ``dtype`` are stored in float8 (any of torch's one-byte float formats)."""
    return dtype.is_floating_point and dtype.itemsize == 1


def is_half(dtype: torch.dtype) -> bool:
    """Whether ``dtype`` is a half precision (bf16 or fp16)."""
    return dtype.is_floating_point and dtype.itemsize == 2


def float8_forward(module: torch.nn.Linear, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(x: torch.Tensor) -> torch.Tensor:
        weight = module.weight.to(dtype)
        scale = getattr(module, "fp8_scale", None)
        if scale is not None:
            weight = weight * scale.to(dtype)
        return torch.nn.functional.linear(x, weight, module.bias)

    return forward


def embedding_forward(module: torch.nn.Embedding,
                      dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    """Look rows up in the stored table, then cast them: exactly the rows of the table cast whole."""

    def forward(ids: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.embedding(ids, module.weight, module.padding_idx).to(dtype)

    return forward


_REPORTING: dict[type, type] = {}


def _reporting_compute_dtype(module: torch.nn.Module, dtype: torch.dtype) -> None:
    """Let a model whose weights stay in several dtypes report the one it computes in as its ``dtype``.

    diffusers and transformers models report their first floating parameter's dtype, and pipelines
    cast the prompt embeddings (and so the latents) to the text encoder's: a table kept in bf16, or a
    float8 matrix, must not decide that. The instance gets a subclass of the same name and module, so
    pipelines see the class they expect."""
    cls = type(module)
    if not isinstance(getattr(cls, "dtype", None), property):
        return
    if cls not in _REPORTING:
        _REPORTING[cls] = type(cls.__name__, (cls,), {
            "__module__": cls.__module__, "__qualname__": cls.__qualname__,
            "dtype": property(lambda self: self._i2v_compute_dtype),
        })
    module.__class__ = _REPORTING[cls]
    module._i2v_compute_dtype = dtype


def _plain_tables(module: torch.nn.Module) -> set[str]:
    """Embedding tables that are only looked up (nn.Embedding's own forward, no max_norm, not tied to
    an output layer): those can stay in their stored half precision, cast row by row."""
    head = getattr(module, "get_output_embeddings", lambda: None)()
    if head is not None and getattr(getattr(module, "config", None), "tie_word_embeddings", False):
        return set()
    return {name for name, layer in module.named_modules()
            if type(layer).forward is torch.nn.Embedding.forward and isinstance(layer, torch.nn.Embedding)
            and layer.max_norm is None}


def _gated_outputs(module: torch.nn.Module, patterns: set[str]) -> dict[str, torch.nn.Module]:
    """The output layers (``wo``) that T5-style gated feed-forwards keep in fp32, by name, each with
    its feed-forward. Their float8 matrices can stay float8 and compute in fp32 (the same numbers as
    a matrix dequantised to fp32 on load, at a quarter of its bytes) once the feed-forward casts its
    input to fp32 rather than to the weight's dtype: see ``gated_forward``."""
    if "wo" not in patterns:
        return {}
    return {f"{name}.wo": layer for name, layer in module.named_modules()
            if all(hasattr(layer, part) for part in ("wi_0", "wi_1", "wo", "act", "dropout"))}


def gated_forward(ff: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """A gated feed-forward as transformers' (U)T5 computes it, its output layer taking fp32 input
    (transformers casts to ``wo.weight.dtype``, which would be float8 here)."""

    def forward(hidden: torch.Tensor) -> torch.Tensor:
        gated = ff.act(ff.wi_0(hidden)) * ff.wi_1(hidden)
        return ff.wo(ff.dropout(gated).to(torch.float32))

    return forward


def keep_float8(module: torch.nn.Module, scales: Mapping[str, torch.Tensor], dtype: torch.dtype) -> int:
    """Let every Linear layer whose weight is float8 compute in ``dtype`` (times its ComfyUI scale,
    kept as a buffer so it moves with the layer), every Linear layer kept in its stored half precision
    (``cast_keeping_float8(keep_half=True)``) likewise, and every embedding table kept in its stored half
    precision give rows in ``dtype``. Returns how many layers stay in float8."""
    count = 0
    gated = _gated_outputs(module, set(getattr(type(module), "_keep_in_fp32_modules", None) or ()))
    tables = _plain_tables(module)
    for name, layer in module.named_modules():
        stored = layer.weight.dtype if name in tables else None
        if stored is not None and is_half(stored) and stored != dtype:
            layer.forward = embedding_forward(layer, dtype)
        if not isinstance(layer, torch.nn.Linear):
            continue
        target = torch.float32 if name in gated else dtype
        if is_float8(layer.weight.dtype) or (is_half(layer.weight.dtype) and layer.weight.dtype != target):
            if name in scales:
                layer.register_buffer("fp8_scale", scales[name].float().reshape(()), persistent=False)
            if name in gated:  # kept in fp32 by the class: computes in fp32, its input cast to it
                gated[name].forward = gated_forward(gated[name])
            layer.forward = float8_forward(layer, target)
            count += is_float8(layer.weight.dtype)
    _reporting_compute_dtype(module, dtype)
    return count


def cast_keeping_float8(
    module: torch.nn.Module,
    state: dict[str, torch.Tensor],
    scales: dict[str, torch.Tensor],
    dtype: torch.dtype,
    keep_half: bool = False,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Cast a checkpoint as from_pretrained(dtype) would, but keep float8 Linear matrices float8, and
    with ``keep_half`` bf16 / fp16 Linear matrices in their stored dtype too (an encoder run once per
    prompt: each matrix is cast as its layer runs, the very values a cast on load gives, so an fp32 run
    of a half file holds half the bytes; a denoiser, run every step, is cast once on load instead).

    A float8 tensor anywhere else (an embedding, or a part the class keeps in fp32, whose callers
    cast their input to the weight's dtype) is dequantised with its scale. An embedding table stored in
    bf16 or fp16 stays so (a lookup then a cast gives exactly the cast table's rows, and the table stays
    where it lies in the mapped file, at half the bytes of fp32). ``state`` is consumed,
    so a file read whole is never held twice. Returns the weights and the scales of the layers that
    stay float8.
    """
    linear = {
        f"{name}.weight" for name, layer in module.named_modules() if isinstance(layer, torch.nn.Linear)
    }
    tables = {f"{name}.weight" for name in _plain_tables(module)}
    patterns = set(getattr(type(module), "_keep_in_fp32_modules", None) or ())
    fp32_outputs = set(_gated_outputs(module, patterns))
    weights, kept_scales = {}, dict(scales)
    for name in list(state):
        tensor = state.pop(name)  # so the file's copy goes as soon as its cast is made
        keep_fp32 = bool(patterns & set(name.split(".")))
        stays_stored = name in linear and (not keep_fp32 or name.removesuffix(".weight") in fp32_outputs)
        target = torch.float32 if keep_fp32 else dtype
        matrix_kept = keep_half and stays_stored and tensor.dtype != target
        half_kept = is_half(tensor.dtype) and (name in tables or matrix_kept)
        if (is_float8(tensor.dtype) and stays_stored) or half_kept:
            weights[name] = tensor
            continue
        if is_float8(tensor.dtype):
            scale = kept_scales.pop(name.removesuffix(".weight"), None)
            tensor = tensor.float() * (scale.float() if scale is not None else 1.0)
        if tensor.is_floating_point():
            tensor = tensor.to(target)
        weights[name] = tensor
    return weights, kept_scales


def split_scales(
    checkpoint: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """ComfyUI's fp8_scaled files: weights, and per-layer scales keyed by the layer's name."""
    weights, scales = {}, {}
    for name, tensor in checkpoint.items():
        if name.endswith("scaled_fp8") or name.endswith(".scale_input"):
            continue  # the format marker; input scales only matter to fp8 matrix multiplies
        if name.endswith(".scale_weight"):
            scales[name.removesuffix(".scale_weight")] = tensor
        else:
            weights[name] = tensor
    return weights, scales


def quantize_fp8_scaled(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A matrix as ComfyUI's fp8_scaled files hold it: float8_e4m3fn values and one fp32 scale."""
    scale = weight.abs().max().float().clamp(min=1e-12) / FP8_MAX
    return (weight.float() / scale).to(torch.float8_e4m3fn), scale.reshape(())
