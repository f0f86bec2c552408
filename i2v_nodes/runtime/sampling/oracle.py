"""The oracle: a plain stock pipeline call with the noise the pack draws, which the pack's frames
must equal bit for bit (tests and benchmarks)."""

from __future__ import annotations

from typing import Any

import torch

from i2v_nodes.families.contract.jobs import Keyframe, StockOutput, StockRun
from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.sampling.settings import SampleSettings, images_to_pil


def stock_reference(handle: ModelHandle, pipe: Any, image: torch.Tensor, s: SampleSettings,
                    decode_chunk: int = 1, end_image: torch.Tensor | None = None) -> StockOutput:
    """Frames (and sound) of a plain stock pipeline call on the first image, with the prompt texts and
    the noise the pack draws for ``s.seed``: what :func:`sample` must return, bit for bit (the oracle
    of the tests and benchmarks). The pipeline steps the scheduler it has: for a sampler, give it that
    sampler's scheduler; one that draws noise each step draws the pack's, from ``s.seed``. With
    ``end_image``, its first image is the last frame's condition, prepared as the start image is."""
    from i2v_nodes.runtime.sampling import schedulers  # diffusers' schedulers: not at the nodes' import

    family = handle.family
    settings = s.options.for_family(handle.family.name, handle.name) if s.options is not None else None
    noise = family.initial_latents(pipe, handle.variant, [s.seed], s.num_frames, s.height, s.width,
                                   torch.device(handle.device))
    prepared = family.prepare_image(images_to_pil(image)[0], s.width, s.height)
    keyframes: tuple[Keyframe, ...] = ()
    if end_image is not None:
        end = family.prepare_image(images_to_pil(end_image, "end_image")[0], s.width, s.height)
        keyframes = (Keyframe(end, s.num_frames - 1),)
    run = StockRun(prepared, s.prompt, s.negative_prompt, noise, s.width, s.height, s.num_frames, s.steps,
                   s.guidance_scale, s.target_fps, decode_chunk, settings, s.seed, handle.variant, keyframes)
    with schedulers.step_noise(s.seed):
        return family.stock_output(pipe, run)
