"""The oracle: a plain stock pipeline call with the noise the pack draws, which the pack's frames
must equal bit for bit (tests and benchmarks)."""

from __future__ import annotations

from typing import Any

import torch

from i2v_nodes.families.contract.jobs import StockOutput, StockRun
from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.sampling.settings import SampleSettings, images_to_pil


def stock_reference(handle: ModelHandle, pipe: Any, image: torch.Tensor, s: SampleSettings,
                    decode_chunk: int = 1) -> StockOutput:
    """Frames (and sound) of a plain stock pipeline call on the first image, with the prompt texts and
    the noise the pack draws for ``s.seed``: what :func:`sample` must return, bit for bit (the oracle
    of the tests and benchmarks)."""
    family = handle.family
    settings = s.options.for_family(handle.family.name, handle.name) if s.options is not None else None
    noise = family.initial_latents(pipe, handle.variant, [s.seed], s.num_frames, s.height, s.width,
                                   torch.device(handle.device))
    prepared = family.prepare_image(images_to_pil(image)[0], s.width, s.height)
    return family.stock_output(pipe, StockRun(prepared, s.prompt, s.negative_prompt, noise, s.width, s.height,
                                              s.num_frames, s.steps, s.guidance_scale, s.target_fps,
                                              decode_chunk, settings, s.seed, handle.variant))
