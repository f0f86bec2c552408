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
  module as a safetensors file from ``animatediff_models`` (:mod:`.animatediff_files`).

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

import dataclasses
import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from i2v_nodes.errors import InputError, ModelError
from i2v_nodes.family_kit import tiny
from i2v_nodes.runtime.families.animatediff_configs import BASE_OF_HUB, PIA, PIA_SCHEDULER, PUBLISHED, TINY
from i2v_nodes.runtime.families.base import (
    Denoised,
    DenoiseJob,
    Family,
    LoadSpec,
    Roles,
    Rules,
    StepCancelled,
    StockOutput,
    StockRun,
    Trace,
    config_json,
    meta_module,
    meta_transformers_model,
    meta_vae,
)
from i2v_nodes.runtime.families.i2vgen_xl import bridge_vae_dtype, video_to_frames

RULES = Rules(
    size_multiple=8,  # the UNet forwards odd upsample sizes and the motion modules are per pixel: 8 is enough
    vae_spatial=8,
    vae_temporal=1,
    latent_channels=4,
    frame_step=1,
    min_frames=2,
    max_frames=32,  # the motion modules' positional encoding (motion_max_seq_length)
    trained_frames=16,
    default_width=512,
    default_height=512,
    default_frames=16,
    default_fps=8,
    default_steps=25,  # PIA's own sampling settings
    default_guidance=7.5,
    default_precision="fp16",
    default_negative="wrong white balance, dark, sketches, worst quality, low quality",
)
ROLES = Roles(denoisers=("unet",), encoders=("text_encoder",))
ADAPTER = "motion_adapter"  # the pipeline component (and folder) of the motion adapter
IMAGE_CHANNELS = 9  # PIA's UNet input: noisy latents 4 + mask 1 + image latents 4
MOTION_PRESETS = 8  # motion_scale 0-2: more motion, 3-5: looping, 6-8: with style transfer


@dataclass(frozen=True)
class AnimateDiffSettings:
    """What the AnimateDiffOptions node sets; -1 means "the model's own value" (see :data:`OWN`)."""

    strength: float = -1.0
    motion_scale: int = -1


OWN = AnimateDiffSettings(strength=1.0, motion_scale=0)  # the stock pipeline's defaults


class AnimateDiffI2V(Family):
    name = "animatediff"
    title = "AnimateDiff"
    pipeline_classes = ("PIAPipeline",)
    hub_variants = {hub_id: PIA for hub_id in PUBLISHED}
    published = PUBLISHED
    tiny = TINY
    options_node = "AnimateDiffOptions"
    cfg_in_one_call = True  # one UNet call per step holds both CFG halves, unconditional rows first
    # fit_image stays on: the pipeline encodes the image at its own size and stretches the latents

    # -- identity -----------------------------------------------------------------------------

    def variant_of(self, index: Mapping[str, Any], configs: Mapping[str, Any],
                   source: str = "") -> str | None:
        if index.get("_class_name") not in self.pipeline_classes:
            return None
        unet = configs.get("unet", {})
        if _is_base_unet(unet):
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

    def rules(self, variant: str) -> Rules:
        return RULES

    def roles(self, variant: str) -> Roles:
        return ROLES

    # -- configurations and tiny models -------------------------------------------------------

    def published_configs(self, hub_id: str) -> dict[str, dict[str, Any]]:
        configs = super().published_configs(hub_id)
        # the UNet that runs: the base's with the adapter merged in (what the parameters count)
        configs["unet"] = json.loads(runnable_unet_config(config_json(configs)))
        return configs

    def meta_component(self, role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
        return _meta_component(role, config_json, dtype)

    def random_pipeline(self, configs: Mapping[str, Any]) -> Any:
        return build(configs)

    # -- single files (ComfyUI's model folders) --------------------------------------------------
    # An SD 1.5 checkpoint (UNet, VAE, CLIP text) in diffusion_model and PIA's motion module in
    # diffusion_model_2: see animatediff_files (what a file is), animatediff_load, animatediff_write.

    single_files = ("ComfyUI's Stable Diffusion 1.5 checkpoints with PIA's motion module (safetensors, "
                    "animatediff_models) and SD VAEs")
    file_modules = "animatediff"

    file_formats = ("fp32", "bf16", "fp16")  # no fp8 SD 1.5 checkpoints or motion modules

    # -- loading and sampling -----------------------------------------------------------------

    def pipeline_class(self, variant: str = "") -> type:
        from diffusers import PIAPipeline

        return PIAPipeline

    def weight_folders(self, role: str, configs: Mapping[str, Any]) -> tuple[str, ...]:
        # a base + adapter folder: the adapter's weights join the UNet when the pipeline loads
        if role == "unet" and _is_base_unet(configs.get("unet", {})):
            return (role, ADAPTER)
        return (role,)

    def hub_repos(self, hub_id: str) -> tuple[str, ...]:
        return (BASE_OF_HUB[hub_id], hub_id) if hub_id in BASE_OF_HUB else (hub_id,)

    def load_source(self, source: str, local: bool, spec: LoadSpec) -> tuple[str, dict[str, Any]]:
        pair = source in BASE_OF_HUB if not local else _is_base_unet(_read_config(Path(source) / "unet"))
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
        bridge_vae_dtype(pipe)

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
        return int(steps * _settings(options).strength)  # the pipeline skips the first steps below 1

    def denoise(self, pipe: Any, job: DenoiseJob, device: torch.device) -> Denoised:
        settings = _settings(job.options)
        _check_steps(job.steps, settings.strength)

        def step_end(_pipe, _step, _timestep, tensors) -> dict:
            if job.step_end is not None and job.step_end():
                raise StepCancelled(tensors["latents"])
            return {}

        videos = []
        for seed in job.seeds:
            try:
                latents = pipe(
                    **_call_arguments(job.image, job.width, job.height, job.num_frames, job.steps,
                                      job.guidance_scale, settings),
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
        settings = _settings(run.options)
        arguments = {**_call_arguments(run.image, run.width, run.height, run.num_frames, run.steps,
                                       run.guidance_scale, settings),
                     "prompt": run.prompt, "negative_prompt": run.negative_prompt,
                     "generator": torch.Generator("cpu").manual_seed(run.seed)}
        if run.decode_chunk >= run.num_frames:  # one VAE call for every frame: the plain stock call
            return StockOutput(pipe(**arguments, output_type="pt").frames[0].permute(0, 2, 3, 1))
        # the pipeline has no chunked decode: its own decode_latents, a chunk of frames at a time
        latents = pipe(**arguments, output_type="latent").frames
        video = pipe.video_processor.postprocess_video(_decode_chunks(pipe, latents, run.decode_chunk), "pt")
        return StockOutput(video[0].permute(0, 2, 3, 1))

    # -- options --------------------------------------------------------------------------------

    def option_inputs(self) -> dict[str, tuple[str, dict[str, Any]]]:
        own = " -1 = the model's own ({})."
        return {
            "strength": ("FLOAT", {
                "default": -1.0, "min": -1.0, "max": 1.0, "step": 0.01,
                "tooltip": "How far the video may move from the image: 1 starts from pure noise; lower "
                           "starts from the image's latents with noise added and runs only that share of the "
                           "steps (stiller, closer to the image)." + own.format(OWN.strength)}),
            "motion_scale": ("INT", {
                "default": -1, "min": -1, "max": MOTION_PRESETS,
                "tooltip": "PIA's motion presets: 0-2 more and more motion, 3-5 looping motion (the last "
                           "frame returns to the first), 6-8 motion with style transfer."
                           + own.format(OWN.motion_scale)}),
        }

    def make_options(self, values: Mapping[str, Any]) -> AnimateDiffSettings:
        for name, (kind, spec) in self.option_inputs().items():
            _check_option(name, kind, values.get(name, spec["default"]), spec["max"])
        own = AnimateDiffSettings()
        return AnimateDiffSettings(strength=float(values.get("strength", own.strength)),
                                   motion_scale=int(values.get("motion_scale", own.motion_scale)))

    def check_options(self, variant: str, options: Any) -> None:
        if options is not None and not isinstance(options, AnimateDiffSettings):
            raise InputError("options", f"expected AnimateDiff settings, got {type(options).__name__}")

    # -- memory traces ------------------------------------------------------------------------

    def denoiser_trace(self, variant, configs, dtype, rows, frames, height, width, full_depth=False) -> Trace:
        unet = _meta_component("unet", runnable_unet_config(configs), dtype)
        scale = RULES.vae_spatial
        with torch.device("meta"):
            # noisy latents, mask and image latents, concatenated on the channels
            sample = torch.empty(rows, unet.config.in_channels, frames, height // scale, width // scale,
                                 dtype=dtype)
            timestep = torch.empty((), dtype=torch.long)
            # the pipeline repeats the prompt for every frame
            text = torch.empty(rows * frames, 77, unet.config.cross_attention_dim, dtype=dtype)
        return Trace(unet, (sample, timestep), {"encoder_hidden_states": text, "return_dict": False})

    def vae_trace(self, variant, configs, dtype, direction, frames, height, width, tiling) -> Trace:
        from diffusers import AutoencoderKL

        vae = meta_vae(AutoencoderKL, _config_of(configs, "vae"), dtype, tiling)
        scale = RULES.vae_spatial
        with torch.device("meta"):
            if direction == "decode":  # a chunk of frames decodes as a batch of images
                latents = torch.empty(frames, vae.config.latent_channels, height // scale, width // scale,
                                      dtype=dtype)
                return Trace(vae.decode, (latents,))
            image = torch.empty(1, 3, height, width, dtype=dtype)  # the input image, once per clip
        return Trace(vae.encode, (image,))

    def encoder_traces(self, variant, configs, dtype) -> list[Trace]:
        encoder = _meta_component("text_encoder", _config_of(configs, "text_encoder"), dtype)
        with torch.device("meta"):
            ids = torch.zeros(1, encoder.config.max_position_embeddings, dtype=torch.long)
        return [Trace(encoder, (ids,))]


FAMILY = AnimateDiffI2V()


# --- base and adapter ----------------------------------------------------------------------------


def check_pair(unet: Mapping[str, Any], adapter: Mapping[str, Any], where: str = "") -> None:
    """Raise :class:`ModelError` unless the motion adapter fits the base UNet (configs only, no weights)."""
    problem = _pair_problem(unet, adapter)
    if problem is None:
        try:  # what diffusers itself checks when it merges them, on weightless modules
            _merged_config(config_json(unet), config_json(adapter))
        except (ValueError, RuntimeError, TypeError) as exc:
            problem = str(exc)
    if problem is not None:
        raise ModelError(f"{where}: its motion adapter ({ADAPTER}/) does not match its base (unet/): "
                         f"{problem}")


def _pair_problem(unet: Mapping[str, Any], adapter: Mapping[str, Any]) -> str | None:
    if adapter.get("conv_in_channels") != IMAGE_CHANNELS:
        return ("it has no image input layer (conv_in_channels "
                f"{adapter.get('conv_in_channels')}): it is an AnimateDiff text-to-video motion module, and "
                f"image-to-video needs PIA's image-conditioned adapter (openmmlab/PIA-condition-adapter)")
    if unet.get("in_channels", 4) != RULES.latent_channels:
        return (f"the base's UNet takes {unet.get('in_channels')} input channels, a Stable Diffusion 1.5 "
                f"text-to-image base takes {RULES.latent_channels} (inpainting bases are not bases for PIA)")
    base_widths, motion_widths = list(unet.get("block_out_channels", [])), list(adapter["block_out_channels"])
    if base_widths != motion_widths:
        return (f"the adapter's motion modules are {motion_widths} channels wide, the base's UNet levels "
                f"{base_widths}: the adapter was made for another kind of base (PIA's is Stable Diffusion "
                "1.5)")
    if unet.get("layers_per_block", 2) != adapter.get("motion_layers_per_block", 2):
        return (f"the adapter has {adapter.get('motion_layers_per_block')} motion modules per level, the "
                f"base {unet.get('layers_per_block')} layers")
    if adapter.get("motion_max_seq_length", 32) < RULES.max_frames:
        return (f"the adapter's positional encoding covers {adapter.get('motion_max_seq_length')} frames, "
                f"fewer than the {RULES.max_frames} this pack allows")
    return None


def _read_config(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # the folder was read when the model was described; a problem here shows at load


def _is_base_unet(unet: Mapping[str, Any]) -> bool:
    return unet.get("_class_name") == "UNet2DConditionModel"


def runnable_unet_config(configs: str) -> str:
    """The config of the UNet that runs (JSON), from a model's configs (JSON): the UNet's own when it is
    saved merged, else the base's merged with the adapter's as diffusers merges them."""
    parsed = json.loads(configs)
    if not _is_base_unet(parsed["unet"]):
        return config_json(parsed["unet"])
    return _merged_config(config_json(parsed["unet"]), config_json(parsed[ADAPTER]))


@functools.lru_cache(maxsize=16)
def _merged_config(unet_json: str, adapter_json: str) -> str:
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    base = meta_module(UNet2DConditionModel, json.loads(unet_json))
    adapter = meta_module(MotionAdapter, json.loads(adapter_json))
    with torch.device("meta"):
        merged = UNetMotionModel.from_unet2d(base, adapter, load_weights=False)
    return config_json(merged.config)


# --- helpers -------------------------------------------------------------------------------------


def _settings(options: AnimateDiffSettings | None) -> AnimateDiffSettings:
    """The options with every -1 replaced by the model's own value."""
    if options is None:
        return OWN
    return AnimateDiffSettings(**{f.name: getattr(OWN, f.name) if getattr(options, f.name) == -1
                                  else getattr(options, f.name) for f in dataclasses.fields(options)})


def _check_steps(steps: int, strength: float) -> None:
    # the pipeline runs int(steps * strength) steps; none at all would fail deep inside it
    if int(steps * strength) < 1:
        raise InputError("strength", f"{strength} of {steps} steps runs no step at all: raise strength to at "
                                     f"least {1 / steps:.2f} or raise steps")


def _call_arguments(image: Any, width: int, height: int, frames: int, steps: int, guidance: float,
                    settings: AnimateDiffSettings) -> dict[str, Any]:
    """The keyword arguments the pack's call and the plain stock call share."""
    return {
        "image": image,
        "width": width,
        "height": height,
        "num_frames": frames,
        "num_inference_steps": steps,
        "guidance_scale": guidance,
        "strength": settings.strength,
        "motion_scale": settings.motion_scale,
    }


def _decode_chunks(pipe: Any, latents: torch.Tensor, chunk: int) -> torch.Tensor:
    """``[1, C, F, h, w]`` latents to ``[1, 3, F, H, W]`` video with the pipeline's own ``decode_latents``,
    ``chunk`` frames per VAE call."""
    frames = latents.shape[2]
    step = max(1, min(chunk, frames))
    return torch.cat([pipe.decode_latents(latents[:, :, i:i + step]) for i in range(0, frames, step)], dim=2)


def _check_option(name: str, kind: str, value: object, high: float) -> None:
    """Raise InputError unless ``value`` is -1 (the model's own) or in 0..high (whole for INT)."""
    number = isinstance(value, int) if kind == "INT" else isinstance(value, (int, float))
    if isinstance(value, bool) or not number or not math.isfinite(value) \
            or not (value == -1 or 0 <= value <= high):
        whole = "a whole number" if kind == "INT" else "a number"
        raise InputError(name, f"expected -1 (the model's own) or {whole} from 0 to {high:g}, got {value!r}")


def _config_of(configs: str, role: str) -> str:
    return config_json(json.loads(configs)[role])


@functools.lru_cache(maxsize=32)
def _meta_component(role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
    config = json.loads(config_json)
    if role == "unet":
        from diffusers import UNet2DConditionModel, UNetMotionModel

        # a base + adapter folder's unet/ is the plain base (offload shares only; traces use the merged one)
        cls = UNet2DConditionModel if _is_base_unet(config) else UNetMotionModel
        return torch.nn.Module.to(meta_module(cls, config, dtype), torch.device("meta"))
    if role == "vae":
        from diffusers import AutoencoderKL

        return meta_vae(AutoencoderKL, config_json, dtype, False)
    from transformers import CLIPTextConfig, CLIPTextModel

    return meta_transformers_model(CLIPTextModel, CLIPTextConfig, config, dtype)


def build(configs: Mapping[str, Any], seed: int = tiny.BUILD_SEED) -> Any:
    """A PIA pipeline with random weights (fixed seed) from component configs: the tiny model from
    :data:`~.animatediff_configs.TINY`, a full-size one (benchmarks, no download) from a published
    configuration. The base's UNet and the adapter are built apart and merged by the pipeline, as a
    real base and adapter are."""
    return FAMILY.pipeline_class()(**components(configs, seed))


def components(configs: Mapping[str, Any], seed: int = tiny.BUILD_SEED) -> dict[str, Any]:
    """The pipeline's components with random weights (fixed seed), the base's UNet and the adapter
    apart (before the pipeline merges them) where the configs hold both."""
    from diffusers import AutoencoderKL, DDIMScheduler, MotionAdapter, UNet2DConditionModel, UNetMotionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = tiny.build_clip_tokenizer()
    special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id}
    with tiny.seeded(seed):
        # a full-size config brings CLIP's own vocab size; our offline ids fit inside it
        text_config = CLIPTextConfig(**{"vocab_size": len(tokenizer), **configs["text_encoder"], **special})
        parts = {"vae": AutoencoderKL(**_plain(configs["vae"])),
                 "text_encoder": CLIPTextModel(text_config).eval()}
        if _is_base_unet(configs["unet"]):  # a base and an adapter: the pipeline merges them
            parts["unet"] = UNet2DConditionModel(**_plain(configs["unet"]))
            parts[ADAPTER] = MotionAdapter(**_plain(configs[ADAPTER]))
        else:  # merged already (published_configs' UNet)
            parts["unet"] = UNetMotionModel(**_plain(configs["unet"]))
    return {**parts, "tokenizer": tokenizer, "scheduler": DDIMScheduler.from_config(configs["scheduler"])}


def _plain(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if not k.startswith("_")}
