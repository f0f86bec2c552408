"""Latents to frames, one clip at a time, with a NaN check and one fp32 retry for half-precision VAEs."""

from __future__ import annotations

import logging

import torch

from i2v_nodes.errors import NonFiniteError
from i2v_nodes.families.contract.family import Family
from i2v_nodes.families.contract.jobs import Denoised
from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.loading.precision import nonfinite_summary
from i2v_nodes.runtime.sampling.loaded import Loaded

log = logging.getLogger(__name__)


def decode_checked(family: Family, handle: ModelHandle, loaded: Loaded, latents: Denoised, chunk: int,
                    clip: int) -> torch.Tensor:
    """Decode one clip; NaN from a half-precision VAE gets one retry in fp32, then a clear error."""
    pipe, vae_dtype = loaded.pipeline, loaded.vae_dtype
    frames = family.decode(pipe, latents, chunk, vae_dtype)
    problem = nonfinite_summary(frames)
    if problem is None:
        return frames.cpu()
    if vae_dtype == torch.float32:
        raise NonFiniteError(f"the VAE decode of clip {clip} gave {problem} even in fp32: the latents "
                             "are out of range for this VAE")
    log.warning("VAE decode in %s gave %s for clip %d; retrying in fp32 (set vae_precision to fp32 to "
                "skip this)", vae_dtype, problem, clip)
    vae = getattr(pipe, handle.roles.vae)
    vae.to(torch.float32)
    try:
        frames = family.decode(pipe, latents, chunk, torch.float32)
    finally:
        vae.to(vae_dtype)
    problem = nonfinite_summary(frames)
    if problem:
        raise NonFiniteError(f"the VAE decode of clip {clip} gave {problem} in {vae_dtype} and again "
                             "in fp32: the latents are out of range for this VAE")
    return frames.cpu()
