"""AnimateDiff image-to-video through diffusers' stock ``PIAPipeline`` (PIA, the Personalized Image
Animator: a Stable Diffusion 1.5 base, AnimateDiff-style motion modules, and PIA's image-conditioned
input layer).

A model is a base plus a motion adapter. Four ways to have one, all read without loading weights:

- a saved ``PIAPipeline`` folder (``save_pretrained``): its ``unet/`` already holds the base's UNet
  with the adapter merged in (``UNetMotionModel``); the ``motion_adapter/`` copy beside it is unused;
- a base + adapter folder: an SD 1.5 diffusers folder (``unet/`` a ``UNet2DConditionModel``) with the
  adapter in ``motion_adapter/`` and ``model_index.json`` naming ``PIAPipeline`` and the adapter.
  The pipeline merges the two when it loads; the folder is refused before that when they do not fit
  (:func:`check_pair`), and the UNet is counted with the adapter's weights (``weight_folders``);
- the hub id ``openmmlab/PIA-condition-adapter``: the published adapter on the published SD 1.5
  base, with PIA's own scheduler settings (``load_source``), sized from published configs;
- ComfyUI's own files (LoadI2VModelFiles): an SD 1.5 checkpoint from ``checkpoints`` and PIA's motion
  module as a safetensors file from ``animatediff_models`` (:mod:`.files`).

What else sets it apart, and how the pack handles it:

- the pipeline draws the initial noise, the image's VAE latent sample and (strength below 1) the
  noise for the image from its generator, and takes one prompt per call: the pack calls it once per
  clip (``pipeline_calls``) with ``torch.Generator("cpu").manual_seed`` of the clip's seed, exactly as
  a plain stock call would;
- prompts: PIA's default ``clip_skip=None`` (the text tower's last hidden state, after its final layer
  norm), computed once per prompt and passed as embeddings;
- a step callback but no ``interrupt`` flag: a cancel raises a private exception from the callback;
- decoding outside the pipeline (``output_type="latent"``) in the VAE's own dtype, ``decode_chunk_size``
  frames per VAE call with the pipeline's own ``decode_latents``: the stock call decodes every frame
  in one VAE call, which is the same as one chunk of all frames;
- the motion modules' positional encoding covers 32 frames: up to 32 run, above the trained 16 with
  the guard's warning.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from i2v_nodes.errors import InputError, ModelError
from i2v_nodes.families.animatediff import components, files, load, write
from i2v_nodes.families.animatediff.configs import BASE_OF_HUB, PIA, PIA_SCHEDULER
from i2v_nodes.families.animatediff.pairs import check_pair, is_base_unet, read_config, runnable_unet_config
from i2v_nodes.families.animatediff.spec import (
    ADAPTER,
    IMAGE_CHANNELS,
    OPTION_INPUTS,
    OWN,
    RULES,
    SPEC,
    AnimateDiffSettings,
)
from i2v_nodes.families.animatediff.tiers import TIERS
from i2v_nodes.families.contract.family import CallSettings, Family
from i2v_nodes.families.contract.files import LoadSpec, SingleFiles
from i2v_nodes.families.contract.jobs import Denoised, DenoiseJob, StepCancelled, StockOutput, StockRun
from i2v_nodes.families.contract.traces import MemoryTraces
from i2v_nodes.families.toolkit.frames import bridge_vae_dtype, video_to_frames
from i2v_nodes.families.toolkit.meta import config_json
from i2v_nodes.families.toolkit.options import check_own_or_range, with_own
from i2v_nodes.lazy import torch

# An SD 1.5 checkpoint (UNet, VAE, CLIP text) in diffusion_model and PIA's motion module in
# diffusion_model_2: see .files (what a file is), .load and .write.
FILES = SingleFiles(
    description=("ComfyUI's Stable Diffusion 1.5 checkpoints with PIA's motion module (safetensors, "
                 "animatediff_models) and SD VAEs"),
    identify=files.identify,
    assemble=files.assemble,
    load=load.load_pipeline,
    tokenizer_check=load.check_tokenizer,
    write=write.write_files,
    formats=("fp32", "bf16", "fp16"),  # no fp8 SD 1.5 checkpoints or motion modules
)


class AnimateDiffFamily(Family):
    spec = SPEC
    traces_file = Path(__file__).with_name("traces.py")
    tiers = TIERS
    files = FILES

    @functools.cached_property
    def traces(self) -> MemoryTraces:
        from i2v_nodes.families.animatediff.traces import (
            AnimateDiffTraces,  # builds models on the meta device: torch
        )

        return AnimateDiffTraces()

    def variant_of(self, index: Mapping[str, Any], configs: Mapping[str, Any],
                   source: str = "") -> str | None:
        if index.get("_class_name") not in self.spec.pipeline_classes:
            return None
        unet = configs.get("unet", {})
        if is_base_unet(unet):
            adapter = configs.get(ADAPTER)
            if adapter is None:
                raise ModelError(f"{source}: unet/ is a plain Stable Diffusion UNet and model_index.json "
                                 "names no motion adapter: put PIA's adapter "
                                 f"(openmmlab/PIA-condition-adapter) in {ADAPTER}/ and add "
                                 f"\"{ADAPTER}\": [\"diffusers\", \"MotionAdapter\"] to model_index.json")
            check_pair(unet, adapter, where=source)
        elif unet.get("in_channels", IMAGE_CHANNELS) != IMAGE_CHANNELS:
            raise ModelError(f"{source}: its UNet takes {unet.get('in_channels')} input channels; PIA's "
                             f"takes {IMAGE_CHANNELS} (latents, mask and image latents): not a PIA model")
        return PIA

    def published_configs(self, hub_id: str) -> dict[str, dict[str, Any]]:
        configs = super().published_configs(hub_id)
        # the UNet that runs: the base's with the adapter merged in (what the parameters count)
        configs["unet"] = json.loads(runnable_unet_config(config_json(configs)))
        return configs

    def pipeline_class(self, variant: str = "") -> type:
        from diffusers import PIAPipeline

        return PIAPipeline

    def weight_folders(self, role: str, configs: Mapping[str, Any]) -> tuple[str, ...]:
        # a base + adapter folder: the adapter's weights join the UNet when the pipeline loads
        if role == "unet" and is_base_unet(configs.get("unet", {})):
            return (role, ADAPTER)
        return (role,)

    def hub_repos(self, hub_id: str) -> tuple[str, ...]:
        return (BASE_OF_HUB[hub_id], hub_id) if hub_id in BASE_OF_HUB else (hub_id,)

    def load_source(self, source: str, local: bool, spec: LoadSpec) -> tuple[str, dict[str, Any]]:
        pair = source in BASE_OF_HUB if not local else is_base_unet(read_config(Path(source) / "unet"))
        if pair and spec.weights == "fp8":
            # fp8 storage is set on the UNet as read, and the pipeline then builds a new one to merge the
            # adapter into: the new one would be neither fp8 nor what the guard planned
            raise InputError("weights", "fp8 needs the UNet saved with its adapter merged in: load the "
                                        "model once with weights default, save it (pipe.save_pretrained) as "
                                        "a folder and pick that folder, or keep weights default")
        if not pair or local:
            return source, {}
        from diffusers import DDIMScheduler, MotionAdapter

        # the published adapter on the published base, with PIA's own sampler settings
        adapter = MotionAdapter.from_pretrained(source, dtype=spec.dtype, use_safetensors=True)
        return BASE_OF_HUB[source], {ADAPTER: adapter, "scheduler": DDIMScheduler.from_config(PIA_SCHEDULER)}

    def prepare(self, pipe: Any) -> None:
        # The UNet holds the adapter's weights now (merged at load, or saved merged): the adapter module
        # is a second copy that would only take memory (and travel to the device with the pipeline).
        pipe.register_modules(**{ADAPTER: None})
        bridge_vae_dtype(pipe, "unet")

    def encode_prompt(self, pipe: Any, text: str, device: torch.device) -> torch.Tensor:
        """Embeddings as PIA's default ``clip_skip=None`` makes them: the text tower's output (its last
        hidden state after the final layer norm), padded to the tokenizer's length and truncated."""
        tokens = pipe.tokenizer([text], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                                truncation=True, return_tensors="pt")
        encoder = pipe.text_encoder
        masked = getattr(encoder.config, "use_attention_mask", False)
        mask = tokens.attention_mask.to(device) if masked else None
        embeds = encoder(tokens.input_ids.to(device), attention_mask=mask)[0]
        return embeds.to(dtype=encoder.dtype, device=device)

    def initial_latents(self, pipe, variant, seeds, frames, height, width, device) -> torch.Tensor:
        # What each clip's generator draws first: the pipeline draws it itself from the same seed (see
        # the module docstring); this is the noise the pack's seed stands for.
        scale = pipe.vae_scale_factor
        shape = (1, RULES.latent_channels, frames, height // scale, width // scale)
        noise = [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed),
                             dtype=pipe.text_encoder.dtype) for seed in seeds]
        return torch.cat(noise).to(device)

    def pipeline_calls(self, clips: int) -> int:
        return clips

    def steps_run(self, steps: int, options: Any = None) -> int:
        return int(steps * with_own(options, OWN).strength)  # the pipeline skips the first steps below 1

    def denoise(self, pipe: Any, job: DenoiseJob, device: torch.device) -> Denoised:
        settings = with_own(job.options, OWN)
        _check_steps(job.steps, settings.strength)

        def step_end(_pipe, _step, _timestep, tensors) -> dict:
            if job.step_end is not None and job.step_end():
                raise StepCancelled(tensors["latents"])
            return {}

        videos = []
        for seed in job.seeds:
            try:
                latents = pipe(
                    **self.call_arguments(pipe, job),
                    prompt_embeds=job.prompt_embeds,
                    negative_prompt_embeds=job.negative_embeds,
                    generator=torch.Generator("cpu").manual_seed(seed),
                    output_type="latent",
                    return_dict=False,
                    callback_on_step_end=step_end,
                )[0]
            except StepCancelled as cancel:
                pipe.maybe_free_model_hooks()  # what the pipeline does at its end, for offload modes
                videos.append(cancel.latents)
                break
            videos.append(latents)
        return Denoised(torch.cat(videos))  # [clips, C, frames, h, w], as the contract has it

    def decode(self, pipe: Any, clip: Denoised, chunk: int, vae_dtype: torch.dtype) -> torch.Tensor:
        return video_to_frames(_decode_chunks(pipe, clip.video.to(vae_dtype), chunk))

    def stock_output(self, pipe: Any, run: StockRun) -> StockOutput:
        arguments = {**self.call_arguments(pipe, run),
                     "prompt": run.prompt, "negative_prompt": run.negative_prompt,
                     "generator": torch.Generator("cpu").manual_seed(run.seed)}
        if run.decode_chunk >= run.num_frames:  # one VAE call for every frame: the plain stock call
            return StockOutput(pipe(**arguments, output_type="pt").frames[0].permute(0, 2, 3, 1))
        # the pipeline has no chunked decode: its own decode_latents, a chunk of frames at a time
        latents = pipe(**arguments, output_type="latent").frames
        video = pipe.video_processor.postprocess_video(_decode_chunks(pipe, latents, run.decode_chunk), "pt")
        return StockOutput(video[0].permute(0, 2, 3, 1))

    def make_options(self, values: Mapping[str, Any]) -> AnimateDiffSettings:
        for name, (kind, spec) in OPTION_INPUTS.items():
            check_own_or_range(name, kind, values.get(name, spec["default"]), spec["max"])
        own = AnimateDiffSettings()
        return AnimateDiffSettings(strength=float(values.get("strength", own.strength)),
                                   motion_scale=int(values.get("motion_scale", own.motion_scale)))

    def check_options(self, variant: str, options: Any) -> None:
        if options is not None and not isinstance(options, AnimateDiffSettings):
            raise InputError("options", f"expected AnimateDiff settings, got {type(options).__name__}")

    def random_pipeline(self, configs: Mapping[str, Any]) -> Any:
        return components.build(configs)

    def call_arguments(self, pipe: Any, call: CallSettings) -> dict[str, Any]:
        settings = with_own(call.options, OWN)
        return {
            "image": call.image,
            "width": call.width,
            "height": call.height,
            "num_frames": call.num_frames,
            "num_inference_steps": call.steps,
            "guidance_scale": call.guidance_scale,
            "strength": settings.strength,
            "motion_scale": settings.motion_scale,
        }


FAMILY = AnimateDiffFamily()


# --- helpers -------------------------------------------------------------------------------------




def _check_steps(steps: int, strength: float) -> None:
    # the pipeline runs int(steps * strength) steps; none at all would fail deep inside it
    if int(steps * strength) < 1:
        raise InputError("strength", f"{strength} of {steps} steps runs no step at all: raise strength to at "
                                     f"least {1 / steps:.2f} or raise steps")


def _decode_chunks(pipe: Any, latents: torch.Tensor, chunk: int) -> torch.Tensor:
    """``[1, C, F, h, w]`` latents to ``[1, 3, F, H, W]`` video with the pipeline's own ``decode_latents``,
    ``chunk`` frames per VAE call."""
    frames = latents.shape[2]
    step = max(1, min(chunk, frames))
    return torch.cat([pipe.decode_latents(latents[:, :, i:i + step]) for i in range(0, frames, step)], dim=2)


