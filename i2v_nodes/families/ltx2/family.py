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
load through :mod:`.files` (what a file is, from its header), :mod:`.load` and
:mod:`.write` (the tiny model as such files), into the same stock pipeline.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from i2v_nodes.errors import InputError
from i2v_nodes.families.contract.family import CallSettings, Family
from i2v_nodes.families.contract.files import SingleFiles
from i2v_nodes.families.contract.jobs import Denoised, DenoiseJob, PromptEncoding, StockOutput, StockRun
from i2v_nodes.families.contract.traces import MemoryTraces
from i2v_nodes.families.ltx2 import assemble, components, conditions, files, load, write
from i2v_nodes.families.ltx2.configs import (
    AUDIO_GUIDANCE,
    GUIDANCE_RESCALE,
    IMAGE_CRF,
    OPTION_SPECS,
    STG_BLOCK,
    LTX2Settings,
)
from i2v_nodes.families.ltx2.continuation import CONTINUATION
from i2v_nodes.families.ltx2.spec import LTX2, RULES, SPEC, TEXT_TOKENS
from i2v_nodes.families.ltx2.tiers import TIERS
from i2v_nodes.families.toolkit.frames import bridge_vae_encoder, video_to_frames
from i2v_nodes.lazy import torch

log = logging.getLogger(__name__)

FILES = SingleFiles(
    description=("ComfyUI's LTX-2 files: checkpoints (transformer, text connectors, video and audio "
                 "VAEs, vocoder), Gemma 3 12B text encoders"),
    identify=files.identify,
    assemble=assemble.assemble,
    load=load.load_pipeline,
    tokenizer_check=load.check_tokenizer,
    write=write.write_files,
)


class LTX2Family(Family):
    spec = SPEC
    traces_file = Path(__file__).with_name("traces.py")
    tiers = TIERS
    files = FILES
    continuation = CONTINUATION

    @functools.cached_property
    def traces(self) -> MemoryTraces:
        from i2v_nodes.families.ltx2.traces import LTX2Traces  # builds models on the meta device: torch

        return LTX2Traces()

    def variant_of(self, index: Mapping[str, Any], configs: Mapping[str, Any],
                   source: str = "") -> str | None:
        if index.get("_class_name") not in self.spec.pipeline_classes:
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
            clip = _denoise_clip(pipe, job, seed, self.call_arguments(pipe, job))
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
        video, sound = conditions.pipeline_for(pipe, run)(
            prompt=run.prompt,
            negative_prompt=run.negative_prompt,
            generator=torch.Generator("cpu").manual_seed(run.seed),
            output_type="pt",
            return_dict=False,
            **self.call_arguments(pipe, run),
            **_decode_kwargs(run.options),
        )
        audio = {"waveform": sound[:1].float().cpu(), "sample_rate": pipe.vocoder.config.output_sampling_rate}
        return StockOutput(video[0].permute(0, 2, 3, 1).float(), audio)

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

    def random_pipeline(self, configs) -> Any:
        return components.build(configs)

    def call_arguments(self, pipe: Any, call: CallSettings) -> dict[str, Any]:
        options = call.options
        s = _settings(options)
        rescale = GUIDANCE_RESCALE if s.guidance_rescale == 0 else max(s.guidance_rescale, 0.0)
        modality = s.modality_scale or 1.0  # the pipeline's "off" is 1
        return {
            **conditions.image_arguments(call, _image_crf(options)),
            "height": call.height,
            "width": call.width,
            "num_frames": call.num_frames,
            "frame_rate": float(call.target_fps),  # the node's target_fps: motion and sound timing
            "num_inference_steps": call.steps,
            "guidance_scale": call.guidance_scale,
            "audio_guidance_scale": _audio_guidance(options),
            "guidance_rescale": rescale,
            "audio_guidance_rescale": rescale,
            "stg_scale": s.stg_scale,
            "audio_stg_scale": s.stg_scale,
            "modality_scale": modality,
            "audio_modality_scale": modality,
            "spatio_temporal_guidance_blocks": [s.stg_block or STG_BLOCK],
            "use_cross_timestep": False,  # LTX-2.0's cross-attention timing (the call's default is LTX-2.3's)
            "max_sequence_length": TEXT_TOKENS,
        }


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


def _denoise_clip(pipe: Any, job: DenoiseJob, seed: int, arguments: dict[str, Any]) -> Denoised | None:
    """One stock call for one clip, with its own generator; None if it was cancelled."""
    positive, positive_mask = job.prompt_embeds.embeds, job.prompt_embeds.mask
    negative = job.negative_embeds.embeds if job.negative_embeds is not None else None
    negative_mask = job.negative_embeds.mask if job.negative_embeds is not None else None
    generator = torch.Generator("cpu").manual_seed(seed)
    final: dict[str, Any] = {}
    pipe = conditions.pipeline_for(pipe, job)  # with keyframes: the condition pipeline, same components
    _, sound = pipe(
        prompt_embeds=positive,
        prompt_attention_mask=positive_mask,
        negative_prompt_embeds=negative,
        negative_prompt_attention_mask=negative_mask,
        generator=generator,
        output_type="latent",
        return_dict=False,
        callback_on_step_end=_step_callback(pipe, job, final),
        **arguments,
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
    spatial = pipe.vae_spatial_compression_ratio
    height, width = job.height // spatial, job.width // spatial
    packed = conditions.video_tokens(pipe, packed, frames, height, width)
    return pipe._unpack_latents(packed, frames, height, width, pipe.transformer_spatial_patch_size,
                                pipe.transformer_temporal_patch_size)


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
