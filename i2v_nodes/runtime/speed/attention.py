"""The attention kernel of the denoisers, for one run, with a fallback to PyTorch's SDPA.

diffusers' transformers dispatch attention through a backend name kept on each attention
processor. The pack sets it on the denoisers' own processors for one pipeline call and puts the
old one back afterwards, instead of diffusers' ``set_attention_backend``, which also changes the
process-wide default (other models in the same ComfyUI would follow) and may download kernels
from the hub. A kernel that is not installed, or that needs a GPU the run does not have, is never
a crash: the run uses SDPA, the report says why, and the log says it once per process.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from i2v_nodes.lazy import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backend:
    diffusers_name: str  # diffusers' AttentionBackendName value
    package: str | None  # the module it imports (None: part of torch)
    needs_cuda: bool


BACKENDS = {
    "sdpa": Backend("native", None, False),
    "flash_attn": Backend("flash", "flash_attn", True),
    "flash_attn_3": Backend("_flash_3", "flash_attn_interface", True),
    "sage": Backend("sage", "sageattention", True),
    "xformers": Backend("xformers", "xformers", True),
}

_said: set[tuple[str, str]] = set()  # fallbacks already logged in this process


def unavailable(name: str, device: torch.device) -> str | None:
    """Why ``name`` cannot run on ``device`` here (None: it can)."""
    backend = BACKENDS[name]
    if backend.package is None:
        return None
    if importlib.util.find_spec(backend.package) is None:
        return f"the {backend.package} package is not installed"
    if backend.needs_cuda and device.type != "cuda":
        return f"it needs a CUDA device, the model runs on {device.type}"
    from diffusers.models import attention_dispatch

    try:  # diffusers' own check of the package's version
        attention_dispatch._check_attention_backend_requirements(
            attention_dispatch.AttentionBackendName(backend.diffusers_name))
    except RuntimeError as exc:
        return str(exc).splitlines()[0]
    return None


@contextmanager
def chosen(denoisers: Sequence[torch.nn.Module], name: str, device: torch.device) -> Iterator[list[str]]:
    """The denoisers' attention on backend ``name`` for one call; yields notes for the report."""
    if name == "sdpa":
        yield []
        return
    reason = unavailable(name, device)
    if reason is not None:
        if (name, reason) not in _said:
            _said.add((name, reason))
            log.warning("attention %s unavailable (%s): using sdpa", name, reason)
        yield [f"attention {name} unavailable ({reason}): ran sdpa"]
        return
    from diffusers.models.attention_dispatch import AttentionBackendName

    value = AttentionBackendName(BACKENDS[name].diffusers_name)
    processors = [m.processor for d in denoisers for m in d.modules()
                  if hasattr(getattr(m, "processor", None), "_attention_backend")]
    previous = [p._attention_backend for p in processors]
    for processor in processors:
        processor._attention_backend = value
    try:
        yield [f"attention {name}"]
    finally:
        for processor, old in zip(processors, previous, strict=True):
            processor._attention_backend = old
