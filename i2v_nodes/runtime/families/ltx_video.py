"""LTX-Video 0.9.x image-to-video through diffusers' stock pipelines.

Every LTX-Video release is one model for text- and image-to-video (its folders are saved as
``LTXPipeline`` or ``LTXConditionPipeline``), so the release picks the pipeline:

- ``ltx-video-0.9.1``: 0.9.0 and 0.9.1 (the older VAE), through ``LTXImageToVideoPipeline``;
- ``ltx-video``: 0.9.5 and later dev releases (2B and 13B), through ``LTXConditionPipeline``, the
  image as a condition on frame 0;
- ``ltx-video-distilled``: the guidance- and timestep-distilled releases (0.9.7, 0.9.8): the same
  pipeline at 8 steps without guidance, on the timesteps the release was distilled for. Their
  configs are the dev ones, so the name tells them apart (hub id, or "distilled" in the folder path).

These pipelines draw noise from the generator well past the initial latents (the VAE's sample of the
image, the conditioning noise of every step, the decode noise of the timestep-aware VAE). Only a
generator per clip keeps each clip equal to a stock call with its seed, so the pack calls the
stock pipeline once per clip (``pipeline_calls``) with ``torch.Generator("cpu").manual_seed(seed)``,
and draws the decode noise from the same generator after the loop, exactly as the stock code does.

ComfyUI's own files (a checkpoint with the transformer and the VAE, the T5 XXL text encoder) load
through :mod:`.ltx_video_files` (what a file is, from its header), :mod:`.ltx_video_load` and
:mod:`.ltx_video_write` (the tiny models as such files), into the same stock pipelines.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from i2v_nodes.errors import InputError
from i2v_nodes.family_kit import tiny
from i2v_nodes.runtime.families.base import (
    Denoised,
    DenoiseJob,
    Family,
    PromptEncoding,
    Roles,
    Rules,
    StockOutput,
    StockRun,
    Trace,
    bridge_vae_encoder,
    meta_module,
    meta_transformers_model,
    meta_vae,
)
from i2v_nodes.runtime.families.i2vgen_xl import video_to_frames
from i2v_nodes.runtime.families.ltx_video_configs import (
    BLOCK_095,
    DEV,
    DISTILLED,
    LEGACY,
    PUBLISHED,
    TINY,
    VARIANT_OF_HUB,
)

# Lightricks' negative prompt in diffusers' LTX-Video examples.
NEGATIVE = "worst quality, inconsistent motion, blurry, jittery, distorted"
# The timesteps the distilled releases were distilled for (diffusers' LTX-Video docs), used at 8 steps.
DISTILLED_TIMESTEPS = (1000, 993, 987, 981, 975, 909, 725, 0.03)
TRACE_BLOCKS = 2  # one denoiser call's peak does not grow with depth (see wan.TRACE_BLOCKS)

_DEV_RULES = Rules(
    size_multiple=32,
    vae_spatial=32,
    vae_temporal=8,
    latent_channels=128,
    frame_step=8,
    min_frames=9,
    max_frames=513,
    trained_frames=257,
    default_width=768,
    default_height=512,
    default_frames=121,
    default_fps=24,
    default_steps=40,
    default_guidance=3.0,
    default_precision="bf16",
    default_negative=NEGATIVE,
    chunked_decode=False,
)
RULES = {
    LEGACY: dataclasses.replace(_DEV_RULES, default_steps=50),
    DEV: _DEV_RULES,
    DISTILLED: dataclasses.replace(_DEV_RULES, default_steps=len(DISTILLED_TIMESTEPS), default_guidance=1.0),
}
ROLES = Roles(denoisers=("transformer",), encoders=("text_encoder",))
_CONDITION = "LTXConditionPipeline"
_TEXT_TOKENS = {LEGACY: 128, DEV: 256, DISTILLED: 256}  # each pipeline's default max_sequence_length


@dataclass(frozen=True)
class LTXVideoSettings:
    """What the LTXVideoOptions node sets; -1 means "the model's own value" (see ``_own``)."""

    decode_timestep: float = -1.0
    decode_noise_scale: float = -1.0
    guidance_rescale: float = -1.0
    image_noise_scale: float = -1.0
    image_strength: float = -1.0


# The releases' own values (diffusers' LTX-Video docs: decode at timestep 0.05 with noise 0.025 on the
# timestep-aware VAEs; the distilled releases without image noise, with guidance rescale 0.7).
_OWN = {
    LEGACY: LTXVideoSettings(0.05, 0.025, 0.0, 0.0, 1.0),
    DEV: LTXVideoSettings(0.05, 0.025, 0.0, 0.15, 1.0),
    DISTILLED: LTXVideoSettings(0.05, 0.025, 0.7, 0.0, 1.0),
}
_CONDITION_ONLY = ("image_noise_scale", "image_strength")  # LTXImageToVideoPipeline has neither


class LTXVideo(Family):
    name = "ltx-video"
    title = "LTX-Video"
    pipeline_classes = ("LTXPipeline", "LTXImageToVideoPipeline", _CONDITION)
    hub_variants = VARIANT_OF_HUB
    published = PUBLISHED
    tiny = TINY
    options_node = "LTXVideoOptions"
    cfg_in_one_call = True  # [unconditional, conditional] rows in one transformer call
    step_caches = ("first_block", "taylorseer", "magcache", "fastercache")
    compile_blocks = True
    attention_backends = True

    # -- identity -----------------------------------------------------------------------------

    def variant_of(self, index: Mapping[str, Any], configs: Mapping[str, Any],
                   source: str = "") -> str | None:
        if index.get("_class_name") not in self.pipeline_classes:
            return None
        if BLOCK_095 not in configs.get("vae", {}).get("down_block_types", (BLOCK_095,)):
            return LEGACY
        return DISTILLED if "distilled" in source.lower() else DEV

    def rules(self, variant: str) -> Rules:
        return RULES[variant]

    def roles(self, variant: str) -> Roles:
        return ROLES

    # -- configurations and tiny models -------------------------------------------------------

    def meta_component(self, role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
        return _meta_component(role, config_json, dtype)

    def random_pipeline(self, configs) -> Any:
        return build(configs)

    # -- single files (ComfyUI's model folders) --------------------------------------------------

    single_files = ("ComfyUI's LTX-Video 0.9.x files: checkpoints (transformer and VAE), transformers, "
                    "LTX-Video VAEs, T5 v1.1 XXL text encoders")
    file_modules = "ltx_video"

    # -- loading and sampling -----------------------------------------------------------------

    def prepare(self, pipe: Any) -> None:
        bridge_vae_encoder(pipe, "transformer")  # an fp32 VAE beside a bf16 model (the default)

    def pipeline_class(self, variant: str = "") -> type:
        from diffusers import LTXConditionPipeline, LTXImageToVideoPipeline

        return LTXImageToVideoPipeline if variant == LEGACY else LTXConditionPipeline

    def encode_prompt(self, pipe: Any, text: str, device: torch.device) -> PromptEncoding:
        embeds, mask, _, _ = pipe.encode_prompt(
            prompt=text,
            do_classifier_free_guidance=False,
            num_videos_per_prompt=1,
            max_sequence_length=_text_tokens(pipe),
            device=device,
        )
        return PromptEncoding(embeds, mask)

    def initial_latents(self, pipe, variant, seeds, frames, height, width, device) -> torch.Tensor:
        # What each clip's generator draws first. The pipeline draws it itself from the same seed
        # (see the module docstring); this is the noise the pack's seed stands for.
        rules = RULES[variant]
        shape = (1, pipe.transformer.config.in_channels, rules.latent_frames(frames),
                 height // rules.vae_spatial, width // rules.vae_spatial)
        noise = [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s)) for s in seeds]
        return torch.cat(noise).to(device)

    def pipeline_calls(self, clips: int) -> int:
        return clips

    def denoise(self, pipe: Any, job: DenoiseJob, device: torch.device) -> Denoised:
        settings = _settings(job.variant, job.options)
        stopped = []

        def step_end(_pipe, _step, _timestep, _tensors) -> dict:
            if job.step_end is not None and job.step_end():
                pipe._interrupt = True  # the stock loop skips the remaining steps
                stopped.append(True)
            return {}

        videos, extras = [], []
        for seed in job.seeds:
            generator = torch.Generator("cpu").manual_seed(seed)
            negative = job.negative_embeds
            out = pipe(
                image=job.image,
                prompt_embeds=job.prompt_embeds.embeds,
                prompt_attention_mask=job.prompt_embeds.mask,
                negative_prompt_embeds=negative.embeds if negative is not None else None,
                negative_prompt_attention_mask=negative.mask if negative is not None else None,
                height=job.height,
                width=job.width,
                num_frames=job.num_frames,
                frame_rate=job.target_fps,
                num_inference_steps=job.steps,
                guidance_scale=job.guidance_scale,
                generator=generator,
                output_type="latent",
                return_dict=False,
                callback_on_step_end=step_end,
                max_sequence_length=_text_tokens(pipe),
                **_call_settings(pipe, job.variant, job.steps, settings),
            )
            dtype = job.prompt_embeds.embeds.dtype
            latents, timestep = _decode_inputs(pipe, _unpacked(pipe, out[0], job), dtype, generator, settings)
            videos.append(latents)
            extra = {"seed": torch.tensor([seed])}  # the decoder's own noise (0.9.1) is seeded from it
            if timestep is not None:
                extra["timestep"] = timestep
            extras.append(extra)
            if stopped:
                break
        joined = {name: torch.cat([extra[name] for extra in extras]) for name in extras[0]}
        return Denoised(torch.cat(videos), extras=joined)

    def decode(self, pipe: Any, clip: Denoised, chunk: int, vae_dtype: torch.dtype) -> torch.Tensor:
        timestep = clip.extras.get("timestep")
        if timestep is not None:
            timestep = timestep.to(vae_dtype)
        with _decoder_noise(int(clip.extras["seed"][0])):
            video = pipe.vae.decode(clip.video.to(vae_dtype), timestep, return_dict=False)[0]
        return video_to_frames(video)

    def stock_output(self, pipe: Any, run: StockRun) -> StockOutput:
        settings = _settings(run.variant, run.options)
        with _decoder_noise(run.seed):  # the stock call's only global-RNG draws are the decoder's noise
            video = pipe(
                image=run.image,
                prompt=run.prompt,
                negative_prompt=run.negative_prompt,
                height=run.height,
                width=run.width,
                num_frames=run.num_frames,
                frame_rate=run.target_fps,
                num_inference_steps=run.steps,
                guidance_scale=run.guidance_scale,
                generator=torch.Generator("cpu").manual_seed(run.seed),
                decode_timestep=settings.decode_timestep,
                decode_noise_scale=settings.decode_noise_scale,
                output_type="pt",
                **_call_settings(pipe, run.variant, run.steps, settings),
            ).frames
        return StockOutput(video[0].permute(0, 2, 3, 1))

    # -- options --------------------------------------------------------------------------------

    def option_inputs(self) -> dict[str, tuple[str, dict[str, Any]]]:
        def number(tooltip: str, high: float = 1.0) -> tuple[str, dict[str, Any]]:
            return ("FLOAT", {"default": -1.0, "min": -1.0, "max": high, "step": 0.005,
                              "tooltip": tooltip + " -1 = the model's own."})

        return {
            "decode_timestep": number(
                "The timestep the VAE decodes at (timestep-aware VAEs, 0.9.1 and later): the VAE finishes "
                "the last bit of denoising. Lightricks use 0.05."),
            "decode_noise_scale": number(
                "How much fresh noise is mixed into the latents before that decode (0.025 in Lightricks' "
                "examples). Higher can add fine texture, too high makes it grainy."),
            "guidance_rescale": number(
                "Rescales the guided prediction towards the conditional one (0.7 in Lightricks' examples; "
                "0 = off). Counters the over-saturation strong guidance gives. Only acts with guidance "
                "above 1."),
            "image_noise_scale": number(
                "0.9.5 and later: noise added to the input image's latents at each step (0.15 for the "
                "dev releases, 0 for the distilled ones). More lets the video move away from the image."),
            "image_strength": number(
                "0.9.5 and later: how strongly the first frame is held to the input image (1 = exactly, "
                "lower lets the model change it)."),
        }

    def make_options(self, values: Mapping[str, Any]) -> LTXVideoSettings:
        for name, (_kind, spec) in self.option_inputs().items():
            value = values.get(name, spec["default"])
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    value == -1 or 0 <= value <= spec["max"]):
                raise InputError(name, f"expected -1 (the model's own) or a number from 0 to {spec['max']}, "
                                       f"got {value!r}")
        return LTXVideoSettings(**{name: float(values.get(name, -1.0)) for name in self.option_inputs()})

    def check_options(self, variant: str, options: Any) -> None:
        if options is None:
            return
        if not isinstance(options, LTXVideoSettings):
            raise InputError("options", f"expected LTX-Video settings, got {type(options).__name__}")
        if variant == LEGACY:
            used = [name for name in _CONDITION_ONLY if getattr(options, name) != -1]
            if used:
                raise InputError("options", f"{' and '.join(used)} condition the image the way LTX-Video "
                                            f"0.9.5 and later do; this model ({variant}) cannot use them: "
                                            "set -1")

    # -- memory traces ------------------------------------------------------------------------

    def block_state(self, variant, configs, frames, height, width) -> tuple[int, int, int]:
        config, rules = json.loads(configs)["transformer"], RULES[variant]
        tokens = (rules.latent_frames(frames) * (height // rules.vae_spatial) * (width // rules.vae_spatial))
        inner = config.get("num_attention_heads", 32) * config.get("attention_head_dim", 64)
        return tokens, inner, config.get("num_layers", 28)

    def denoiser_trace(self, variant, configs, dtype, rows, frames, height, width, full_depth=False) -> Trace:
        all_configs = json.loads(configs)
        config = dict(all_configs["transformer"])
        if not full_depth:
            config["num_layers"] = min(TRACE_BLOCKS, config.get("num_layers", 28))
        model = _meta_component("transformer", json.dumps(config, sort_keys=True), dtype)
        rules = RULES[variant]
        lf, lh, lw = rules.latent_frames(frames), height // rules.vae_spatial, width // rules.vae_spatial
        tokens, text = lf * lh * lw, _TEXT_TOKENS[variant]
        with torch.device("meta"):
            kwargs = {
                "hidden_states": torch.empty(rows, tokens, model.config.in_channels, dtype=dtype),
                "encoder_hidden_states": torch.empty(rows, text, model.config.caption_channels, dtype=dtype),
                "timestep": torch.empty(rows, tokens),  # per token: the conditioned frame's are lower
                "encoder_attention_mask": torch.empty(rows, text, dtype=dtype),
                "num_frames": lf,
                "height": lh,
                "width": lw,
                "rope_interpolation_scale": (rules.vae_temporal / rules.default_fps, rules.vae_spatial,
                                             rules.vae_spatial),
                "return_dict": False,
            }
        return Trace(model, (), kwargs)

    def vae_trace(self, variant, configs, dtype, direction, frames, height, width, tiling) -> Trace:
        vae = _meta_vae(json.dumps(json.loads(configs)["vae"], sort_keys=True), dtype, tiling)
        rules = RULES[variant]
        with torch.device("meta"):
            if direction == "decode":
                latents = torch.empty(1, vae.config.latent_channels, rules.latent_frames(frames),
                                      height // rules.vae_spatial, width // rules.vae_spatial, dtype=dtype)
                timestep = torch.empty(1, dtype=dtype) if vae.config.timestep_conditioning else None
                return Trace(vae.decode, (latents, timestep), {"return_dict": False},
                             repeat=((vae, "blend_v"), (vae, "blend_h")))
            image = torch.empty(1, 3, 1, height, width, dtype=dtype)  # the pipelines encode the image alone
        return Trace(vae.encode, (image,), {"return_dict": False},
                     repeat=((vae, "blend_v"), (vae, "blend_h")))

    def encoder_traces(self, variant, configs, dtype) -> list[Trace]:
        config = json.loads(configs)["text_encoder"]
        text = _meta_component("text_encoder", json.dumps(config, sort_keys=True), dtype)
        with torch.device("meta"):
            ids = torch.empty(1, _TEXT_TOKENS[variant], dtype=torch.long)
        return [Trace(text, (ids,))]


FAMILY = LTXVideo()


# --- helpers -------------------------------------------------------------------------------------


@contextmanager
def _decoder_noise(seed: int) -> Iterator[None]:
    """The 0.9.1 VAE decoder injects noise from the global RNG (no generator reaches it): seed it from
    the clip's seed for the decode, so clips reproduce, without touching the caller's RNG state."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _text_tokens(pipe: Any) -> int:
    return _TEXT_TOKENS[DEV if type(pipe).__name__ == _CONDITION else LEGACY]


def _settings(variant: str, options: LTXVideoSettings | None) -> LTXVideoSettings:
    """The options with every -1 replaced by the variant's own value."""
    own = _OWN[variant]
    if options is None:
        return own
    return LTXVideoSettings(**{field.name: getattr(own, field.name) if getattr(options, field.name) == -1
                               else getattr(options, field.name) for field in dataclasses.fields(options)})


def _call_settings(pipe: Any, variant: str, steps: int, settings: LTXVideoSettings) -> dict[str, Any]:
    """The keyword arguments the variant and its settings add to a stock call."""
    kwargs: dict[str, Any] = {"guidance_rescale": settings.guidance_rescale}
    if type(pipe).__name__ == _CONDITION:
        kwargs["image_cond_noise_scale"] = settings.image_noise_scale
        kwargs["strength"] = settings.image_strength
    if variant == DISTILLED and steps == len(DISTILLED_TIMESTEPS):
        kwargs["timesteps"] = list(DISTILLED_TIMESTEPS)
    return kwargs


def _unpacked(pipe: Any, latents: torch.Tensor, job: DenoiseJob) -> torch.Tensor:
    """[1, C, f, h, w] latents (LTXImageToVideoPipeline returns them packed as tokens)."""
    if latents.dim() == 5:
        return latents
    rules = RULES[job.variant]
    return pipe._unpack_latents(latents, rules.latent_frames(job.num_frames), job.height // rules.vae_spatial,
                                job.width // rules.vae_spatial, pipe.transformer_spatial_patch_size,
                                pipe.transformer_temporal_patch_size)


def _decode_inputs(pipe: Any, latents: torch.Tensor, dtype: torch.dtype, generator: torch.Generator,
                   settings: LTXVideoSettings) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What the stock pipeline hands its VAE after the loop: un-normalised latents, for a timestep-aware
    VAE mixed with decode noise from the clip's generator, and the decode timestep."""
    from diffusers.utils.torch_utils import randn_tensor

    vae = pipe.vae
    latents = pipe._denormalize_latents(latents, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
    latents = latents.to(dtype)
    if not vae.config.timestep_conditioning:
        return latents, None
    noise = randn_tensor(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    timestep = torch.tensor([settings.decode_timestep], device=latents.device, dtype=latents.dtype)
    scale = torch.tensor([settings.decode_noise_scale], device=latents.device, dtype=latents.dtype)
    scale = scale[:, None, None, None, None]
    return (1 - scale) * latents + scale * noise, timestep


@functools.lru_cache(maxsize=32)
def _meta_component(role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
    config = json.loads(config_json)
    if role == "transformer":
        from diffusers import LTXVideoTransformer3DModel

        return meta_module(LTXVideoTransformer3DModel, config, dtype)
    if role == "vae":
        return _meta_vae(config_json, dtype, False)
    from transformers import T5Config, T5EncoderModel

    return meta_transformers_model(T5EncoderModel, T5Config, config, dtype)


def _meta_vae(config_json: str, dtype: torch.dtype, tiling: bool) -> torch.nn.Module:
    from diffusers import AutoencoderKLLTXVideo

    return meta_vae(AutoencoderKLLTXVideo, config_json, dtype, tiling)


def _noisy(vae: torch.nn.Module) -> torch.nn.Module:
    """Random noise-injection scales: they start at zero, which would leave the decoder's noise path
    (0.9.1) untested."""
    for name, param in vae.named_parameters():
        if "per_channel_scale" in name:
            torch.nn.init.normal_(param, std=0.1)
    return vae


def build(configs: Mapping[str, Any], seed: int = tiny.BUILD_SEED) -> Any:
    """An LTX-Video image-to-video pipeline with random weights (fixed seed) from component configs:
    ``LTXConditionPipeline`` for the 0.9.5 VAE, ``LTXImageToVideoPipeline`` for the older one."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXConditionPipeline,
        LTXImageToVideoPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    legacy = BLOCK_095 not in configs["vae"]["down_block_types"]
    tokenizer = tiny.build_t5_tokenizer(max_length=_TEXT_TOKENS[LEGACY if legacy else DEV])
    with tiny.seeded(seed):
        text = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
                "eos_token_id": tokenizer.eos_token_id, **configs["text_encoder"]}
        parts = {
            "text_encoder": T5EncoderModel(T5Config(**text)).eval(),
            "vae": _noisy(AutoencoderKLLTXVideo(**configs["vae"])),
            "transformer": LTXVideoTransformer3DModel(**configs["transformer"]),
        }
    pipeline = LTXImageToVideoPipeline if legacy else LTXConditionPipeline
    scheduler = FlowMatchEulerDiscreteScheduler(**configs["scheduler"])
    return pipeline(tokenizer=tokenizer, scheduler=scheduler, **parts)
