"""Wan 2.1 / 2.2 image-to-video through diffusers' stock ``WanImageToVideoPipeline``.

Three published shapes, one pipeline class:

- ``wan2.1-i2v``: Wan 2.1 I2V 14B (480P and 720P): one transformer, a CLIP image encoder;
- ``wan2.2-i2v-a14b``: Wan 2.2 I2V A14B: two experts, ``transformer`` for high noise and
  ``transformer_2`` for low noise, switched at ``boundary_ratio`` (one active at a time);
- ``wan2.2-ti2v-5b``: Wan 2.2 TI2V-5B: the 48-channel VAE with 16x spatial compression and
  per-token timesteps (``expand_timesteps``). Its repo is saved as ``WanPipeline``; the I2V
  class loads it.

The pipeline calls the transformer once per CFG half and step, and has ``callback_on_step_end``
and an ``interrupt`` flag: progress and cancel go through those. Decoding happens outside the
pipeline (``output_type="latent"``), as in the stock code, so NaNs can be caught and retried.
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
    Roles,
    Rules,
    StockOutput,
    StockRun,
    Trace,
    keep_fp32,
    meta_module,
    meta_transformers_model,
    meta_vae,
)
from i2v_nodes.runtime.families.i2vgen_xl import video_to_frames
from i2v_nodes.runtime.families.wan_configs import PUBLISHED, TINY, VARIANT_OF_HUB

WAN21, A14B, TI2V = "wan2.1-i2v", "wan2.2-i2v-a14b", "wan2.2-ti2v-5b"

# The Wan team's default negative prompt (wan/configs/shared_config.py), which the models were tuned with.
NEGATIVE = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，丑陋的，"
    "残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，"
    "背景人很多，倒着走"
)
TEXT_TOKENS = 512  # max_sequence_length: prompts are padded to it

_COMMON = {
    "vae_temporal": 4,
    "frame_step": 4,
    "min_frames": 5,
    "max_frames": 241,
    "default_precision": "bf16",
    "default_negative": NEGATIVE,
    "chunked_decode": False,
}
_WAN21_RULES = Rules(
    size_multiple=16,
    vae_spatial=8,
    latent_channels=16,
    trained_frames=81,
    default_width=832,
    default_height=480,
    default_frames=81,
    default_fps=16,
    default_steps=40,
    default_guidance=5.0,
    **_COMMON,
)
RULES = {
    WAN21: _WAN21_RULES,
    A14B: dataclasses.replace(_WAN21_RULES, default_guidance=3.5),  # the Wan team's 3.5 for both experts
    TI2V: Rules(
        size_multiple=32,
        vae_spatial=16,
        latent_channels=48,
        trained_frames=121,
        default_width=1280,
        default_height=704,
        default_frames=121,
        default_fps=24,
        default_steps=50,
        default_guidance=5.0,
        **_COMMON,
    ),
}
ROLES = {
    WAN21: Roles(denoisers=("transformer",), encoders=("text_encoder", "image_encoder")),
    A14B: Roles(denoisers=("transformer", "transformer_2"), encoders=("text_encoder",)),
    TI2V: Roles(denoisers=("transformer",), encoders=("text_encoder",)),
}
# Depth does not change one denoiser call's activation peak (each block frees its intermediates
# before the next starts), so the memory trace runs this many blocks of the real width.
TRACE_BLOCKS = 2


@dataclass(frozen=True)
class WanSettings:
    """What the WanOptions node sets; 0 means "the model's own value"."""

    guidance_scale_2: float = 0.0  # the low-noise expert's guidance (A14B); 0 = same as guidance_scale
    boundary_ratio: float = 0.0  # where A14B switches experts, as a fraction of the 1000 train steps
    flow_shift: float = 0.0  # the scheduler's flow shift (higher: more steps at high noise)


class Wan(Family):
    name = "wan"
    title = "Wan"
    pipeline_classes = ("WanImageToVideoPipeline", "WanPipeline")
    hub_variants = VARIANT_OF_HUB
    published = PUBLISHED
    tiny = TINY
    options_node = "WanOptions"
    cfg_truncation = True
    # diffusers' FasterCache fails on Wan's transformer (0.42): its CFG calls come one at a time
    step_caches = ("first_block", "taylorseer", "magcache")
    compile_blocks = True
    attention_backends = True

    # -- identity -----------------------------------------------------------------------------

    def variant_of(self, index: Mapping[str, Any], configs: Mapping[str, Any],
                   source: str = "") -> str | None:
        if index.get("_class_name") not in self.pipeline_classes:
            return None
        if index.get("expand_timesteps"):
            return TI2V
        if _named(index, "transformer_2"):
            return A14B
        in_channels = configs.get("transformer", {}).get("in_channels")
        if index.get("_class_name") == "WanImageToVideoPipeline" and in_channels in (None, 36):
            return WAN21
        return None  # text-to-video (16 input channels): not an image-to-video model

    def rules(self, variant: str) -> Rules:
        return RULES[variant]

    def roles(self, variant: str) -> Roles:
        return ROLES[variant]

    # -- configurations and tiny models -------------------------------------------------------

    def meta_component(self, role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
        return _meta_component(role, config_json, dtype)

    def random_pipeline(self, configs) -> Any:
        return build(configs)

    # -- single files (ComfyUI's model folders) --------------------------------------------------

    single_files = "ComfyUI's Wan files: diffusion models, UMT5 text encoders, Wan VAEs, CLIP vision"
    file_modules = "wan"

    # -- loading and sampling -----------------------------------------------------------------

    def pipeline_class(self, variant: str = "") -> type:
        from diffusers import WanImageToVideoPipeline

        return WanImageToVideoPipeline

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
                image=job.image,
                prompt_embeds=job.prompt_embeds.expand(clips, -1, -1),
                negative_prompt_embeds=negative,
                latents=job.latents,
                height=job.height,
                width=job.width,
                num_frames=job.num_frames,
                num_inference_steps=job.steps,
                guidance_scale=job.guidance_scale,
                **_guidance_2(pipe, job.options),
                output_type="latent",
                return_dict=False,
                callback_on_step_end=step_end,
                max_sequence_length=TEXT_TOKENS,
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
                image=run.image,
                prompt=run.prompt,
                negative_prompt=run.negative_prompt,
                latents=run.latents,
                height=run.height,
                width=run.width,
                num_frames=run.num_frames,
                num_inference_steps=run.steps,
                guidance_scale=run.guidance_scale,
                **_guidance_2(pipe, run.options),
                output_type="pt",
                max_sequence_length=TEXT_TOKENS,
            ).frames
        return StockOutput(video[0].permute(0, 2, 3, 1))

    def option_inputs(self) -> dict[str, tuple[str, dict[str, Any]]]:
        return {
            "guidance_scale_2": (
                "FLOAT",
                {
                    "default": 0.0,
                    "min": 0.0,
                    "max": 100.0,
                    "step": 0.1,
                    "tooltip": (
                        "Wan 2.2 A14B: guidance of the low-noise expert (the later, detail steps). 0 = the "
                        "same as I2VSample's guidance_scale (the Wan team uses 3.5 for both). Only A14B has "
                        "two experts."
                    ),
                },
            ),
            "boundary_ratio": (
                "FLOAT",
                {
                    "default": 0.0,
                    "min": 0.0,
                    "max": 1.0,
                    "step": 0.005,
                    "tooltip": (
                        "Wan 2.2 A14B: where the high-noise expert hands over to the low-noise one, as a "
                        "fraction of the 1000 training timesteps (the model's own is 0.9). Higher gives the "
                        "low-noise expert more steps. 0 = the model's own."
                    ),
                },
            ),
            "flow_shift": (
                "FLOAT",
                {
                    "default": 0.0,
                    "min": 0.0,
                    "max": 30.0,
                    "step": 0.1,
                    "tooltip": (
                        "The scheduler's flow shift: higher spends more of the steps at high noise (more "
                        "motion and structure, fewer fine details). The Wan team uses 3.0 for 480p and 5.0 "
                        "for 720p; 0 = the model's own."
                    ),
                },
            ),
        }

    def make_options(self, values: Mapping[str, Any]) -> WanSettings:
        for name, (_kind, spec) in self.option_inputs().items():
            value = values.get(name, spec["default"])
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not spec["min"] <= value <= spec["max"]
            ):
                raise InputError(
                    name, f"expected a number from {spec['min']} to {spec['max']}, got {value!r}"
                )
        return WanSettings(**{name: float(values.get(name, 0.0)) for name in self.option_inputs()})

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

    # -- memory traces ------------------------------------------------------------------------

    def block_state(self, variant, configs, frames, height, width) -> tuple[int, int, int]:
        config, rules = json.loads(configs)["transformer"], RULES[variant]
        _, patch_h, patch_w = config.get("patch_size", (1, 2, 2))
        tokens = (rules.latent_frames(frames) * (height // rules.vae_spatial // patch_h)
                  * (width // rules.vae_spatial // patch_w))
        inner = config.get("num_attention_heads", 40) * config.get("attention_head_dim", 128)
        return tokens, inner, config.get("num_layers", 40)

    def denoiser_trace(self, variant, configs, dtype, rows, frames, height, width, full_depth=False) -> Trace:
        all_configs = json.loads(configs)
        rules = RULES[variant]
        config = dict(all_configs["transformer"])
        if not full_depth:
            config["num_layers"] = min(TRACE_BLOCKS, config.get("num_layers", 40))
        model = _meta_component("transformer", json.dumps(config, sort_keys=True), dtype)
        cfg = model.config
        lf, lh, lw = rules.latent_frames(frames), height // rules.vae_spatial, width // rules.vae_spatial
        tokens = lf * (lh // cfg.patch_size[1]) * (lw // cfg.patch_size[2])
        with torch.device("meta"):
            kwargs = {
                "hidden_states": torch.empty(rows, cfg.in_channels, lf, lh, lw, dtype=dtype),
                # TI2V-5B passes a timestep per token (the first frame's are zero), the others one per row
                "timestep": torch.empty(rows, tokens) if variant == TI2V else torch.empty(rows),
                "encoder_hidden_states": torch.empty(rows, TEXT_TOKENS, cfg.text_dim, dtype=dtype),
                "return_dict": False,
            }
            if cfg.image_dim is not None:
                kwargs["encoder_hidden_states_image"] = torch.empty(
                    rows, _image_tokens(all_configs), cfg.image_dim, dtype=dtype
                )
        return Trace(model, (), kwargs)

    def vae_trace(self, variant, configs, dtype, direction, frames, height, width, tiling) -> Trace:
        all_configs = json.loads(configs)
        rules = RULES[variant]
        vae = _meta_vae(json.dumps(all_configs["vae"], sort_keys=True), dtype, tiling)
        if direction == "decode":
            with torch.device("meta"):
                latents = torch.empty(
                    1,
                    rules.latent_channels,
                    rules.latent_frames(frames),
                    height // rules.vae_spatial,
                    width // rules.vae_spatial,
                    dtype=dtype,
                )
            return Trace(
                vae.decode,
                (latents,),
                {"return_dict": False},
                repeat=((vae.decoder, "forward"), (vae, "blend_v"), (vae, "blend_h")),
            )
        # the pipeline encodes the image followed by empty frames (TI2V-5B: the image alone)
        encoded = 1 if variant == TI2V else frames
        return Trace(
            _encode_condition,
            (vae, encoded, height, width, dtype),
            repeat=((vae.encoder, "forward"), (vae, "blend_v"), (vae, "blend_h")),
        )

    def encoder_traces(self, variant, configs, dtype) -> list[Trace]:
        all_configs = json.loads(configs)
        text = _meta_component("text_encoder", json.dumps(all_configs["text_encoder"], sort_keys=True), dtype)
        with torch.device("meta"):
            ids = torch.empty(1, TEXT_TOKENS, dtype=torch.long)
            traces = [Trace(text, (ids,))]  # no mask: asking a meta mask whether it masks anything fails
            if "image_encoder" in ROLES[variant].encoders:
                vision = _meta_component(
                    "image_encoder", json.dumps(all_configs["image_encoder"], sort_keys=True), dtype
                )
                side = vision.config.image_size
                pixels = torch.empty(1, 3, side, side, dtype=dtype)
                traces.append(Trace(vision, (pixels,), {"output_hidden_states": True}))
        return traces


FAMILY = Wan()


# --- helpers -------------------------------------------------------------------------------------


def _named(index: Mapping[str, Any], component: str) -> bool:
    entry = index.get(component)
    return isinstance(entry, list) and len(entry) == 2 and entry[0] is not None


def _image_tokens(configs: Mapping[str, Any]) -> int:
    vision = configs.get("image_encoder", {})
    side, patch = vision.get("image_size", 224), vision.get("patch_size", 14)
    return (side // patch) ** 2 + 1  # patches plus the class token


def _encode_condition(vae: torch.nn.Module, frames: int, height: int, width: int, dtype: torch.dtype) -> Any:
    """What the pipeline encodes: the image, then empty frames, as one video (traced on meta)."""
    with torch.device("meta"):
        image = torch.empty(1, 3, 1, height, width, dtype=dtype)
        video = (
            torch.cat([image, image.new_zeros(1, 3, frames - 1, height, width)], dim=2)
            if frames > 1
            else image
        )
    return vae.encode(video, return_dict=False)


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


@functools.lru_cache(maxsize=32)
def _meta_component(role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
    config = json.loads(config_json)
    if role in ("transformer", "transformer_2"):
        from diffusers import WanTransformer3DModel

        return keep_fp32(meta_module(WanTransformer3DModel, config, dtype))
    if role == "vae":
        return _meta_vae(config_json, dtype, False)
    if role == "text_encoder":
        from transformers import UMT5Config, UMT5EncoderModel

        return meta_transformers_model(UMT5EncoderModel, UMT5Config, config, dtype)
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    return meta_transformers_model(CLIPVisionModelWithProjection, CLIPVisionConfig, config, dtype)


def _meta_vae(config_json: str, dtype: torch.dtype, tiling: bool) -> torch.nn.Module:
    from diffusers import AutoencoderKLWan

    return meta_vae(AutoencoderKLWan, config_json, dtype, tiling)


def build(configs: Mapping[str, Any], seed: int = tiny.BUILD_SEED) -> Any:
    """A Wan image-to-video pipeline with random weights (fixed seed) from component configs."""
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanImageToVideoPipeline,
        WanTransformer3DModel,
    )
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModel,
        UMT5Config,
        UMT5EncoderModel,
    )

    tokenizer = tiny.build_t5_tokenizer(max_length=TEXT_TOKENS)
    with tiny.seeded(seed):
        text = {
            "vocab_size": len(tokenizer),
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            **configs["text_encoder"],
        }
        parts: dict[str, Any] = {
            "text_encoder": UMT5EncoderModel(UMT5Config(**text)).eval(),
            "vae": AutoencoderKLWan(**configs["vae"]),
            "transformer": WanTransformer3DModel(**configs["transformer"]),
        }
        if configs.get("transformer_2"):
            parts["transformer_2"] = WanTransformer3DModel(**configs["transformer_2"])
        if configs.get("image_encoder"):
            parts["image_encoder"] = CLIPVisionModel(CLIPVisionConfig(**configs["image_encoder"]))
            parts["image_processor"] = CLIPImageProcessor(**configs["image_processor"])
    return WanImageToVideoPipeline(
        tokenizer=tokenizer,
        scheduler=UniPCMultistepScheduler(**configs["scheduler"]),
        **configs.get("pipeline", {}),
        **parts,
    )
