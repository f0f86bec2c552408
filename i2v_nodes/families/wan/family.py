"""Wan 2.1 / 2.2 image-to-video through diffusers' stock ``WanImageToVideoPipeline``.

Four published shapes, one pipeline class:

- ``wan2.1-i2v``: Wan 2.1 I2V 14B (480P and 720P): one transformer, a CLIP image encoder;
- ``wan2.2-i2v-a14b``: Wan 2.2 I2V A14B: two experts, ``transformer`` for high noise and
  ``transformer_2`` for low noise, switched at ``boundary_ratio`` (one active at a time);
- ``wan2.1-flf2v``: Wan 2.1 FLF2V-14B-720P, first and last frame: Wan 2.1's layout with positions
  for both images' CLIP states; it needs an end image (see :mod:`.last_frame`);
- ``wan2.2-ti2v-5b``: Wan 2.2 TI2V-5B: the 48-channel VAE with 16x spatial compression and
  per-token timesteps (``expand_timesteps``). Its repo is saved as ``WanPipeline``; the I2V
  class loads it.

The pipeline calls the transformer once per CFG half and step, and has ``callback_on_step_end``
and an ``interrupt`` flag: progress and cancel go through those. Decoding happens outside the
pipeline (``output_type="latent"``), as in the stock code, so NaNs can be caught and retried.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from i2v_nodes.errors import InputError
from i2v_nodes.families.contract.family import CallSettings, Family
from i2v_nodes.families.contract.files import SingleFiles
from i2v_nodes.families.contract.jobs import Denoised, DenoiseJob, StockOutput, StockRun
from i2v_nodes.families.contract.traces import MemoryTraces
from i2v_nodes.families.toolkit.calls import common_arguments
from i2v_nodes.families.toolkit.frames import video_to_frames
from i2v_nodes.families.wan import components, files, last_frame, load, write
from i2v_nodes.families.wan.lean_blocks import lean_blocks
from i2v_nodes.families.wan.spec import (
    A14B,
    FLF2V,
    OPTION_INPUTS,
    RULES,
    SPEC,
    TEXT_TOKENS,
    TI2V,
    WAN21,
    WanSettings,
)
from i2v_nodes.families.wan.tiers import TIERS
from i2v_nodes.lazy import torch

FILES = SingleFiles(
    description="ComfyUI's Wan files: diffusion models, UMT5 text encoders, Wan VAEs, CLIP vision",
    identify=files.identify,
    assemble=files.assemble,
    load=load.load_pipeline,
    tokenizer_check=load.check_tokenizer,
    write=write.write_files,
    formats=write.FORMATS,
    gguf=files.GGUF_DESCRIPTION,
)


class WanFamily(Family):
    spec = SPEC
    traces_file = Path(__file__).with_name("traces.py")
    tiers = TIERS
    files = FILES

    @functools.cached_property
    def traces(self) -> MemoryTraces:
        from i2v_nodes.families.wan.traces import WanTraces  # builds models on the meta device: torch

        return WanTraces()

    def variant_of(self, index: Mapping[str, Any], configs: Mapping[str, Any],
                   source: str = "") -> str | None:
        if index.get("_class_name") not in self.spec.pipeline_classes:
            return None
        if index.get("expand_timesteps"):
            return TI2V
        if _named(index, "transformer_2"):
            return A14B
        if configs.get("transformer", {}).get("pos_embed_seq_len"):
            return FLF2V  # positions for the start and end images' CLIP states
        in_channels = configs.get("transformer", {}).get("in_channels")
        if index.get("_class_name") == "WanImageToVideoPipeline" and in_channels in (None, 36):
            return WAN21
        return None  # text-to-video (16 input channels): not an image-to-video model

    def pipeline_class(self, variant: str = "") -> type:
        from diffusers import WanImageToVideoPipeline

        return WanImageToVideoPipeline

    def prepare(self, pipe: Any) -> None:
        """Lean blocks: the same numbers with a fraction of the float32 temporaries (see lean_blocks)."""
        for role in ("transformer", "transformer_2"):
            if getattr(pipe, role, None) is not None:
                lean_blocks(getattr(pipe, role))

    def lora_target(self, role: str) -> tuple[str, dict[str, Any]]:
        # diffusers keys both experts' LoRAs "transformer."; a flag sends one to the low-noise expert
        return "transformer", ({"load_into_transformer_2": True} if role == "transformer_2" else {})

    def encode_prompt(self, pipe: Any, text: str, device: torch.device) -> torch.Tensor:
        embeds, _ = pipe.encode_prompt(
            prompt=text,
            do_classifier_free_guidance=False,
            num_videos_per_prompt=1,
            max_sequence_length=TEXT_TOKENS,
            device=device,
        )
        return embeds

    def initial_latents(self, pipe, variant, seeds, frames, height, width, device) -> torch.Tensor:
        rules = RULES[variant]
        shape = (
            1,
            rules.latent_channels,
            rules.latent_frames(frames),
            height // rules.vae_spatial,
            width // rules.vae_spatial,
        )
        noise = [
            torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s), dtype=torch.float32)
            for s in seeds
        ]
        return torch.cat(noise).to(device)  # the pipeline keeps its latents in float32

    def call_arguments(self, pipe: Any, call: CallSettings) -> dict[str, Any]:
        return {**common_arguments(call), **_guidance_2(pipe, call.options),
                **last_frame.end_arguments(call), "max_sequence_length": TEXT_TOKENS}

    def denoise(self, pipe: Any, job: DenoiseJob, device: torch.device) -> Denoised:
        clips = job.latents.shape[0]

        def step_end(_pipe, step, _timestep, _tensors) -> dict:
            if job.cfg_steps and step + 1 >= job.cfg_steps:
                # CFG truncation: the stock loop runs the unconditional pass only while guidance > 1
                pipe._guidance_scale = 1.0
            if job.step_end is not None and job.step_end():
                pipe._interrupt = True  # the stock loop skips the remaining steps
            return {}

        negative = job.negative_embeds.expand(clips, -1, -1) if job.negative_embeds is not None else None
        with _run_settings(pipe, job.options):
            out = pipe(
                **self.call_arguments(pipe, job),
                prompt_embeds=job.prompt_embeds.expand(clips, -1, -1),
                negative_prompt_embeds=negative,
                output_type="latent",
                return_dict=False,
                callback_on_step_end=step_end,
            )
        return Denoised(out[0])

    def decode(self, pipe: Any, clip: Denoised, chunk: int, vae_dtype: torch.dtype) -> torch.Tensor:
        latents = clip.video
        # The stock pipeline's decode, step for step (un-normalise with the VAE's mean and std).
        vae = pipe.vae
        latents = latents.to(dtype=vae_dtype)
        channels = vae.config.z_dim
        mean = (
            torch.tensor(vae.config.latents_mean).view(1, channels, 1, 1, 1).to(latents.device, latents.dtype)
        )
        inverse_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, channels, 1, 1, 1).to(
            latents.device, latents.dtype
        )
        video = vae.decode(latents / inverse_std + mean, return_dict=False)[0]
        return video_to_frames(video)

    def stock_output(self, pipe: Any, run: StockRun) -> StockOutput:
        with _run_settings(pipe, run.options):
            video = pipe(
                **self.call_arguments(pipe, run),
                prompt=run.prompt,
                negative_prompt=run.negative_prompt,
                output_type="pt",
            ).frames
        return StockOutput(video[0].permute(0, 2, 3, 1))

    def make_options(self, values: Mapping[str, Any]) -> WanSettings:
        for name, (_kind, spec) in OPTION_INPUTS.items():
            value = values.get(name, spec["default"])
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not spec["min"] <= value <= spec["max"]
            ):
                raise InputError(
                    name, f"expected a number from {spec['min']} to {spec['max']}, got {value!r}"
                )
        return WanSettings(**{name: float(values.get(name, 0.0)) for name in OPTION_INPUTS})

    def check_options(self, variant: str, options: Any) -> None:
        if options is None:
            return
        if not isinstance(options, WanSettings):
            raise InputError("options", f"expected Wan settings, got {type(options).__name__}")
        if variant != A14B:
            used = [name for name in ("guidance_scale_2", "boundary_ratio") if getattr(options, name)]
            if used:
                raise InputError(
                    "options",
                    f"{' and '.join(used)} {'set' if len(used) > 1 else 'sets'} the second (low-noise) "
                    f"expert of Wan 2.2 A14B; this model ({variant}) has one transformer: set "
                    f"{'them' if len(used) > 1 else 'it'} to 0",
                )


    def random_pipeline(self, configs) -> Any:
        return components.build(configs)


FAMILY = WanFamily()


# --- helpers -------------------------------------------------------------------------------------


def _named(index: Mapping[str, Any], component: str) -> bool:
    entry = index.get(component)
    return isinstance(entry, list) and len(entry) == 2 and entry[0] is not None


def _guidance_2(pipe: Any, options: WanSettings | None) -> dict[str, Any]:
    if options is None or not options.guidance_scale_2 or pipe.config.boundary_ratio is None:
        return {}
    return {"guidance_scale_2": options.guidance_scale_2}


@contextmanager
def _run_settings(pipe: Any, options: WanSettings | None) -> Iterator[None]:
    """Apply flow shift and boundary ratio for one call, then put the pipeline back as it was.

    The pipeline is shared through the cache (one run at a time), so nothing may outlive the run.
    """
    scheduler, boundary = pipe.scheduler, pipe.config.boundary_ratio
    try:
        if options is not None and options.flow_shift:
            key = "flow_shift" if "flow_shift" in scheduler.config else "shift"
            pipe.scheduler = type(scheduler).from_config(scheduler.config, **{key: options.flow_shift})
        if options is not None and options.boundary_ratio and boundary is not None:
            pipe.register_to_config(boundary_ratio=options.boundary_ratio)
        yield
    finally:
        pipe.scheduler = scheduler
        pipe.register_to_config(boundary_ratio=boundary)
