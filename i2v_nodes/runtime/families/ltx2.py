"""LTX-2 image-to-video, with sound, through diffusers' stock ``LTX2ImageToVideoPipeline``.

One variant, ``ltx2``: LTX-2 19B dev (``Lightricks/LTX-2``), one transformer with a video and an
audio stream, Gemma 3 12B as text encoder, text connectors between the two, a video VAE, an audio
VAE and a vocoder. Its repo is saved as ``LTX2Pipeline``; the image-to-video class loads the same
folder (same components).

The pipeline draws noise from its ``generator`` several times: the video noise, then the audio
noise (both in ``prepare_*latents``), then, after the loop and only when the VAE is
timestep-conditioned, the decode noise. Image conditioning takes the VAE's mode and draws nothing.
With one generator per clip those draws would follow each other in one stream, and with a list of
generators the pipeline cannot take one image for several clips; so :meth:`LTX2Family.denoise` calls the
pipeline once per clip, with that clip's generator, and draws the decode noise from the same
generator right after the call: exactly what a single stock call with ``seed + i`` does.

Decoding happens outside the pipeline (``output_type="latent"``). The pipeline returns the video
latents un-normalised, but the decode-noise mix is done on normalised ones; the step callback keeps
the final normalised latents so the decode repeats stock's arithmetic bit for bit.

ComfyUI's own files (the LTX-2 checkpoint with every part but the text encoder, and Gemma 3 12B)
load through :mod:`.ltx2_files` (what a file is, from its header), :mod:`.ltx2_load` and
:mod:`.ltx2_write` (the tiny model as such files), into the same stock pipeline.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
from collections.abc import Mapping
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
    keep_fp32,
    meta_module,
    meta_vae,
)
from i2v_nodes.runtime.families.i2vgen_xl import video_to_frames
from i2v_nodes.runtime.families.ltx2_configs import (
    AUDIO_GUIDANCE,
    GUIDANCE_RESCALE,
    IMAGE_CRF,
    NEGATIVE,
    OPTION_SPECS,
    PUBLISHED,
    STG_BLOCK,
    TINY,
    VARIANT_OF_HUB,
    LTX2Settings,
)

log = logging.getLogger(__name__)

LTX2 = "ltx2"
TEXT_TOKENS = 1024  # max_sequence_length: prompts are padded to it (left, as Gemma's chat prompts)
RULES = {
    LTX2: Rules(size_multiple=32, vae_spatial=32, vae_temporal=8, latent_channels=128, frame_step=8,
                min_frames=9, max_frames=257, trained_frames=121, default_width=768, default_height=512,
                default_frames=121, default_fps=24, default_steps=40, default_guidance=3.0,
                default_precision="bf16", default_negative=NEGATIVE, chunked_decode=False),
}
# The connectors turn Gemma's hidden states into the transformer's text input before the first step;
# the audio VAE and the vocoder turn the sound latents into a waveform after the last.
ROLES = {
    LTX2: Roles(denoisers=("transformer",), encoders=("text_encoder", "connectors"),
                decoders=("audio_vae", "vocoder")),
}
TRACE_BLOCKS = 2  # as Wan: each block frees its intermediates, so two of real width set the peak


class LTX2Family(Family):
    name = "ltx2"
    title = "LTX-2"
    pipeline_classes = ("LTX2ImageToVideoPipeline", "LTX2Pipeline")
    hub_variants = VARIANT_OF_HUB
    published = PUBLISHED
    tiny = TINY
    options_node = "LTX2Options"
    cfg_in_one_call = True  # the pipeline batches the negative and positive halves
    # no step cache: diffusers' cache hooks do not know its audio-video blocks (0.42)
    compile_blocks = True
    attention_backends = True
    makes_sound = True

    # -- identity -----------------------------------------------------------------------------

    def variant_of(self, index: Mapping[str, Any], configs: Mapping[str, Any],
                   source: str = "") -> str | None:
        if index.get("_class_name") not in self.pipeline_classes:
            return None
        transformer = configs.get("transformer", {})
        # LTX-2.3 and later: gated attention, cross-attention modulation, a bandwidth-extending
        # vocoder, a Gemma 4 encoder or a duration head; their recipes differ (not supported yet)
        later = (
            transformer.get("gated_attn")
            or transformer.get("cross_attn_mod")
            or configs.get("vocoder", {}).get("_class_name", "LTX2Vocoder") != "LTX2Vocoder"
            or configs.get("text_encoder", {}).get("model_type", "gemma3") != "gemma3"
            or _named(index, "duration_head")
        )
        return None if later else LTX2

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

    single_files = ("ComfyUI's LTX-2 files: checkpoints (transformer, text connectors, video and audio "
                    "VAEs, vocoder), Gemma 3 12B text encoders")
    file_modules = "ltx2"

    # -- loading and sampling -----------------------------------------------------------------

    def prepare(self, pipe: Any) -> None:
        bridge_vae_encoder(pipe, "transformer")  # an fp32 VAE beside a bf16 model (the default)

    def pipeline_class(self, variant: str = "") -> type:
        from diffusers import LTX2ImageToVideoPipeline

        return LTX2ImageToVideoPipeline

    def encode_prompt(self, pipe: Any, text: str, device: torch.device) -> PromptEncoding:
        embeds, mask, _, _ = pipe.encode_prompt(
            prompt=text,
            do_classifier_free_guidance=False,
            num_videos_per_prompt=1,
            max_sequence_length=TEXT_TOKENS,
            device=device,
        )
        return PromptEncoding(embeds, mask)  # the pipeline needs the attention mask with the embeddings

    def uses_cfg(self, guidance_scale: float, options: Any = None) -> bool:
        # the pipeline's own test: either stream guided means a negative pass for both
        return guidance_scale > 1 or _audio_guidance(options) > 1

    def initial_latents(self, pipe, variant, seeds, frames, height, width, device) -> torch.Tensor:
        """The video noise the pipeline's first draw from each clip's generator gives (it draws it
        itself, from ``Generator("cpu").manual_seed(seed)``; this is what that draw is)."""
        rules = RULES[variant]
        shape = (1, rules.latent_channels, rules.latent_frames(frames), height // rules.vae_spatial,
                 width // rules.vae_spatial)
        noise = [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s)) for s in seeds]
        return torch.cat(noise).to(device)

    def pipeline_calls(self, clips: int) -> int:
        return clips  # one stock call per clip (see the module docstring)

    def denoise(self, pipe: Any, job: DenoiseJob, device: torch.device) -> Denoised:
        _check_for_model(pipe, job.options)
        clips = []
        for seed in job.seeds:
            clip = _denoise_clip(pipe, job, seed)
            if clip is None:  # cancelled: the engine raises, later clips never start
                return Denoised(job.latents[:0])
            clips.append(clip)
        return Denoised(torch.cat([c.video for c in clips]), torch.cat([c.audio for c in clips]),
                        {name: torch.cat([c.extras[name] for c in clips]) for name in clips[0].extras})

    def decode(self, pipe: Any, clip: Denoised, chunk: int, vae_dtype: torch.dtype) -> torch.Tensor:
        # The stock pipeline's decode, step for step: decode-noise mix on the normalised latents,
        # un-normalise, decode (at the decode timestep when the VAE takes one).
        vae, latents = pipe.vae, clip.video
        timestep = None
        if "decode_timestep" in clip.extras:
            scale = clip.extras["decode_noise_scale"][:, None, None, None, None]
            latents = (1 - scale) * latents + scale * clip.extras["decode_noise"]
            timestep = clip.extras["decode_timestep"]
        latents = pipe._denormalize_latents(latents, vae.latents_mean, vae.latents_std,
                                            vae.config.scaling_factor)
        video = vae.decode(latents.to(vae_dtype), timestep, return_dict=False)[0]
        return video_to_frames(video)

    def decode_audio(self, pipe: Any, clip: Denoised) -> dict[str, Any] | None:
        mel = pipe.audio_vae.decode(clip.audio.to(pipe.audio_vae.dtype), return_dict=False)[0]
        waveform = pipe.vocoder(mel)
        return {"waveform": waveform.float().cpu(), "sample_rate": pipe.vocoder.config.output_sampling_rate}

    def stock_output(self, pipe: Any, run: StockRun) -> StockOutput:
        _check_for_model(pipe, run.options)
        video, sound = pipe(
            prompt=run.prompt,
            negative_prompt=run.negative_prompt,
            generator=torch.Generator("cpu").manual_seed(run.seed),
            output_type="pt",
            return_dict=False,
            **_call_kwargs(run),
            **_decode_kwargs(run.options),
        )
        audio = {"waveform": sound[:1].float().cpu(), "sample_rate": pipe.vocoder.config.output_sampling_rate}
        return StockOutput(video[0].permute(0, 2, 3, 1).float(), audio)

    # -- options --------------------------------------------------------------------------------

    def option_inputs(self) -> dict[str, tuple[str, dict[str, Any]]]:
        return {
            name: (kind, {"default": 0 if kind == "INT" else 0.0, "min": low, "max": high, "step": step,
                          "tooltip": tip})
            for name, (kind, low, high, step, tip) in OPTION_SPECS.items()
        }

    def make_options(self, values: Mapping[str, Any]) -> LTX2Settings:
        settings = {}
        for name, (kind, low, high, _step, _tip) in OPTION_SPECS.items():
            value = values.get(name, 0)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or (kind == "INT" and value != int(value)) or not low <= value <= high:
                whole = "a whole number" if kind == "INT" else "a number"
                raise InputError(name, f"expected {whole} from {low} to {high}, got {value!r}")
            settings[name] = int(value) if kind == "INT" else float(value)
        return LTX2Settings(**settings)

    def check_options(self, variant: str, options: Any) -> None:
        if options is None:
            return
        if not isinstance(options, LTX2Settings):
            raise InputError("options", f"expected LTX-2 settings, got {type(options).__name__}")
        if options.image_crf > 0 and not _have_pyav():
            raise InputError("options", f"image_crf {options.image_crf} re-compresses the image with PyAV, "
                                        "which is not installed: `pip install av`, or set image_crf to -1")

    # -- memory traces ------------------------------------------------------------------------

    def denoiser_trace(self, variant, configs, dtype, rows, frames, height, width, full_depth=False) -> Trace:
        all_configs = json.loads(configs)
        config = dict(all_configs["transformer"])
        if not full_depth:
            config["num_layers"] = min(TRACE_BLOCKS, config.get("num_layers", 48))
        model = _meta_component("transformer", json.dumps(config, sort_keys=True), dtype)
        cfg, rules = model.config, RULES[variant]
        lf, lh, lw = rules.latent_frames(frames), height // rules.vae_spatial, width // rules.vae_spatial
        tokens = lf * lh * lw // (cfg.patch_size**2 * cfg.patch_size_t)
        sound = _audio_frames(frames, rules.default_fps, cfg)
        with torch.device("meta"):
            kwargs = {
                "hidden_states": torch.empty(rows, tokens, cfg.in_channels, dtype=dtype),
                "audio_hidden_states": torch.empty(rows, sound, cfg.audio_in_channels, dtype=dtype),
                "encoder_hidden_states": torch.empty(rows, TEXT_TOKENS, cfg.caption_channels, dtype=dtype),
                "audio_encoder_hidden_states": torch.empty(rows, TEXT_TOKENS, cfg.caption_channels,
                                                           dtype=dtype),
                "timestep": torch.empty(rows, tokens),  # per token: the image's frame is clean
                "audio_timestep": torch.empty(rows),
                "sigma": torch.empty(rows),
                "encoder_attention_mask": torch.empty(rows, TEXT_TOKENS, dtype=torch.long),
                "audio_encoder_attention_mask": torch.empty(rows, TEXT_TOKENS, dtype=torch.long),
                "num_frames": lf, "height": lh, "width": lw, "fps": float(rules.default_fps),
                "audio_num_frames": sound,
                "return_dict": False,
            }
        return Trace(model, (), kwargs)

    def vae_trace(self, variant, configs, dtype, direction, frames, height, width, tiling) -> Trace:
        all_configs = json.loads(configs)
        rules = RULES[variant]
        vae = meta_vae(_vae_class(), json.dumps(all_configs["vae"], sort_keys=True), dtype, tiling)
        repeat = ((vae.decoder if direction == "decode" else vae.encoder, "forward"),
                  (vae, "blend_v"), (vae, "blend_h"), (vae, "blend_t"))
        if direction == "encode":  # the pipeline encodes the image alone, as one frame
            with torch.device("meta"):
                image = torch.empty(1, 3, 1, height, width, dtype=dtype)
            return Trace(vae.encode, (image,), {"return_dict": False}, repeat=repeat)
        sound = {role: _meta_component(role, json.dumps(all_configs[role], sort_keys=True), dtype)
                 for role in ("audio_vae", "vocoder")}
        # The decoder's reflection padding needs two latent pixels a side (64 px): the planner's
        # search probes down to 32 px, which is sized as 64.
        side = [max(2, n // rules.vae_spatial) for n in (height, width)]
        with torch.device("meta"):
            latents = torch.empty(1, rules.latent_channels, rules.latent_frames(frames), *side, dtype=dtype)
            timestep = torch.empty(1, dtype=dtype) if vae.config.timestep_conditioning else None
        return Trace(_decode_clip, (vae, sound["audio_vae"], sound["vocoder"], latents, timestep, frames,
                                    rules.default_fps, dtype), repeat=repeat)

    def encoder_traces(self, variant, configs, dtype) -> list[Trace]:
        all_configs = json.loads(configs)
        text = _meta_component("text_encoder", json.dumps(all_configs["text_encoder"], sort_keys=True), dtype)
        connectors = _meta_component("connectors", json.dumps(all_configs["connectors"], sort_keys=True),
                                     dtype)
        width = connectors.config.caption_channels * connectors.config.text_proj_in_factor
        with torch.device("meta"):
            ids = torch.empty(1, TEXT_TOKENS, dtype=torch.long)
            # both CFG halves go through the connectors together, with their masks
            embeds = torch.empty(2, TEXT_TOKENS, width, dtype=dtype)
            mask = torch.empty(2, TEXT_TOKENS, dtype=torch.long)
        return [Trace(_encode_text, (text, ids)), Trace(connectors, (embeds, mask))]


FAMILY = LTX2Family()


# --- helpers -------------------------------------------------------------------------------------


def _named(index: Mapping[str, Any], component: str) -> bool:
    entry = index.get(component)
    return isinstance(entry, list) and len(entry) == 2 and entry[0] is not None


def _settings(options: LTX2Settings | None) -> LTX2Settings:
    return options if options is not None else LTX2Settings()


def _audio_guidance(options: LTX2Settings | None) -> float:
    return _settings(options).audio_guidance_scale or AUDIO_GUIDANCE


def _have_pyav() -> bool:
    return importlib.util.find_spec("av") is not None


@functools.lru_cache(maxsize=1)
def _warn_no_pyav() -> None:
    log.warning("PyAV is not installed: LTX-2's input image is used as it is, without the H.264 "
                "re-compression (CRF %d) the model was trained with; `pip install av` to get it", IMAGE_CRF)


def _image_crf(options: LTX2Settings | None) -> int:
    asked = _settings(options).image_crf
    if asked:
        return max(asked, 0)
    if _have_pyav():
        return IMAGE_CRF
    _warn_no_pyav()
    return 0


def _call_kwargs(run: DenoiseJob | StockRun) -> dict[str, Any]:
    """The stock call's settings besides prompts and noise: the same for the pack and the oracle."""
    options = run.options
    s = _settings(options)
    rescale = GUIDANCE_RESCALE if s.guidance_rescale == 0 else max(s.guidance_rescale, 0.0)
    modality = s.modality_scale or 1.0  # the pipeline's "off" is 1
    return {
        "image": run.image,
        "height": run.height,
        "width": run.width,
        "num_frames": run.num_frames,
        "frame_rate": float(run.target_fps),  # the node's target_fps: motion and sound timing
        "num_inference_steps": run.steps,
        "guidance_scale": run.guidance_scale,
        "audio_guidance_scale": _audio_guidance(options),
        "guidance_rescale": rescale,
        "audio_guidance_rescale": rescale,
        "stg_scale": s.stg_scale,
        "audio_stg_scale": s.stg_scale,
        "modality_scale": modality,
        "audio_modality_scale": modality,
        "spatio_temporal_guidance_blocks": [s.stg_block or STG_BLOCK],
        "use_cross_timestep": False,  # LTX-2.0's cross-attention timing (the call's default is LTX-2.3's)
        "image_crf": _image_crf(options),
        "max_sequence_length": TEXT_TOKENS,
    }


def _decode_kwargs(options: LTX2Settings | None) -> dict[str, Any]:
    s = _settings(options)
    return {"decode_timestep": s.decode_timestep, "decode_noise_scale": s.decode_noise_scale or None}


def _check_for_model(pipe: Any, options: LTX2Settings | None) -> None:
    """Refuse settings this model's components cannot use (before any step runs)."""
    s = _settings(options)
    if (s.decode_timestep or s.decode_noise_scale) and not pipe.vae.config.timestep_conditioning:
        raise InputError("options", "decode_timestep and decode_noise_scale need a timestep-conditioned "
                                    "video VAE, and this model's VAE has none: set both to 0")
    blocks = pipe.transformer.config.num_layers
    if s.stg_scale and (s.stg_block or STG_BLOCK) >= blocks:
        raise InputError("options", f"stg_block {s.stg_block or STG_BLOCK} does not exist: this model's "
                                    f"transformer has blocks 0 to {blocks - 1}")


def _denoise_clip(pipe: Any, job: DenoiseJob, seed: int) -> Denoised | None:
    """One stock call for one clip, with its own generator; None if it was cancelled."""
    positive, positive_mask = job.prompt_embeds.embeds, job.prompt_embeds.mask
    negative = job.negative_embeds.embeds if job.negative_embeds is not None else None
    negative_mask = job.negative_embeds.mask if job.negative_embeds is not None else None
    generator = torch.Generator("cpu").manual_seed(seed)
    final: dict[str, Any] = {}
    _, sound = pipe(
        prompt_embeds=positive,
        prompt_attention_mask=positive_mask,
        negative_prompt_embeds=negative,
        negative_prompt_attention_mask=negative_mask,
        generator=generator,
        output_type="latent",
        return_dict=False,
        callback_on_step_end=_step_callback(pipe, job, final),
        **_call_kwargs(job),
    )
    if "stopped" in final:
        return None
    latents = _unpack_video(pipe, final["latents"], job).to(positive.dtype)
    return Denoised(latents, sound, _decode_inputs(pipe, latents, generator, job.options))


def _step_callback(pipe: Any, job: DenoiseJob, final: dict[str, Any]):
    """The stock step callback for one clip: keeps the step's latents (packed and normalised) in
    ``final``, counts the step and asks for a cancel; a cancel is noted as ``final["stopped"]``."""

    def step_end(_pipe, _step, _timestep, tensors: dict) -> dict:
        final["latents"] = tensors["latents"]
        if job.step_end is not None and job.step_end():
            final["stopped"] = True
            pipe._interrupt = True  # the stock loop skips the remaining steps
        return {}

    return step_end


def _unpack_video(pipe: Any, packed: torch.Tensor, job: DenoiseJob) -> torch.Tensor:
    frames = (job.num_frames - 1) // pipe.vae_temporal_compression_ratio + 1
    return pipe._unpack_latents(packed, frames, job.height // pipe.vae_spatial_compression_ratio,
                                job.width // pipe.vae_spatial_compression_ratio,
                                pipe.transformer_spatial_patch_size, pipe.transformer_temporal_patch_size)


def _decode_inputs(pipe: Any, latents: torch.Tensor, generator: torch.Generator,
                   options: LTX2Settings | None) -> dict[str, torch.Tensor]:
    """What a timestep-conditioned VAE decodes with: the noise stock draws next from the clip's
    generator, and the decode timestep and noise scale (each one per clip)."""
    if not pipe.vae.config.timestep_conditioning:
        return {}
    from diffusers.utils.torch_utils import randn_tensor

    s = _settings(options)
    noise = randn_tensor(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    scale = s.decode_noise_scale or s.decode_timestep
    return {
        "decode_noise": noise,
        "decode_timestep": torch.tensor([s.decode_timestep], device=latents.device, dtype=latents.dtype),
        "decode_noise_scale": torch.tensor([scale], device=latents.device, dtype=latents.dtype),
    }


def _audio_frames(frames: int, fps: float, transformer_config: Any) -> int:
    """Sound latents of a clip, as the pipeline counts them (25 a second for LTX-2)."""
    per_second = (transformer_config.audio_sampling_rate / transformer_config.audio_hop_length
                  / transformer_config.audio_scale_factor)
    return round(frames / fps * per_second)


def _decode_clip(vae: torch.nn.Module, audio_vae: torch.nn.Module, vocoder: torch.nn.Module,
                 latents: torch.Tensor, timestep: torch.Tensor | None, frames: int, fps: float,
                 dtype: torch.dtype) -> None:
    """One clip's decode as the engine runs it (traced on meta): the video, whose frames leave the
    device before the sound is decoded, then the audio VAE and the vocoder."""
    vae.decode(latents, timestep, return_dict=False)
    config = audio_vae.config
    per_second = config.sample_rate / config.mel_hop_length / audio_vae.temporal_compression_ratio
    bins = config.mel_bins // audio_vae.mel_compression_ratio
    with torch.device("meta"):
        sound = torch.empty(1, config.latent_channels, round(frames / fps * per_second), bins, dtype=dtype)
    mel = audio_vae.decode(sound, return_dict=False)[0]
    vocoder(mel)


def _encode_text(text_encoder: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """What the pipeline does with Gemma (traced on meta): every hidden state, stacked and flattened,
    while the output (with its logits) is still alive."""
    out = text_encoder(input_ids=ids, output_hidden_states=True)
    return torch.stack(out.hidden_states, dim=-1).flatten(2, 3)


def _vae_class() -> type:
    from diffusers import AutoencoderKLLTX2Video

    return AutoencoderKLLTX2Video


@functools.lru_cache(maxsize=32)
def _meta_component(role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
    config = json.loads(config_json)
    if role == "transformer":
        from diffusers import LTX2VideoTransformer3DModel

        return keep_fp32(meta_module(LTX2VideoTransformer3DModel, config, dtype))
    if role == "vae":
        return meta_vae(_vae_class(), config_json, dtype, False)
    if role == "connectors":
        from diffusers.pipelines.ltx2 import LTX2TextConnectors

        return meta_module(LTX2TextConnectors, config, dtype)
    if role == "audio_vae":
        from diffusers import AutoencoderKLLTX2Audio

        return meta_module(AutoencoderKLLTX2Audio, config, dtype)
    if role == "vocoder":
        from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

        return meta_module(LTX2Vocoder, config, dtype)
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    with torch.device("meta"):
        return Gemma3ForConditionalGeneration(Gemma3Config.from_dict(config)).to(dtype).eval()


def build(configs: Mapping[str, Any], seed: int = tiny.BUILD_SEED) -> Any:
    """An LTX-2 image-to-video pipeline with random weights (fixed seed) from component configs."""
    from diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        FlowMatchEulerDiscreteScheduler,
        LTX2ImageToVideoPipeline,
        LTX2VideoTransformer3DModel,
    )
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    tokenizer = tiny.build_gemma_tokenizer(max_length=TEXT_TOKENS)
    text = dict(configs["text_encoder"])
    text["text_config"] = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
                           "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                           **text["text_config"]}
    with tiny.seeded(seed):
        parts = {
            "text_encoder": Gemma3ForConditionalGeneration(Gemma3Config.from_dict(text)).eval(),
            "connectors": LTX2TextConnectors(**configs["connectors"]),
            "transformer": LTX2VideoTransformer3DModel(**configs["transformer"]),
            "vae": AutoencoderKLLTX2Video(**configs["vae"]),
            "audio_vae": AutoencoderKLLTX2Audio(**configs["audio_vae"]),
            "vocoder": LTX2Vocoder(**configs["vocoder"]),
        }
    return LTX2ImageToVideoPipeline(
        tokenizer=tokenizer, scheduler=FlowMatchEulerDiscreteScheduler(**configs["scheduler"]), **parts
    )
