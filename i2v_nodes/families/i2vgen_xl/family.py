"""I2VGen-XL (ali-vilab/i2vgen-xl) through diffusers' stock ``I2VGenXLPipeline``.

Sampling calls the stock pipeline, so its numerics are upstream's; the pack only adds, from
outside, what the pipeline lacks:

- prompt embeddings computed the way upstream's default ``clip_skip=1`` does (penultimate hidden
  state, then the final layer norm). The stock path crashes on transformers >= 5 (CLIPTextModel
  lost ``.text_model``), and ``clip_skip=None`` would silently change the conditioning;
- initial noise drawn per clip from its own seed, and the image-latent sample (which the
  pipeline draws from the global RNG) drawn under a forked, fixed-seed RNG, so runs reproduce;
- per-step progress and cancel through a UNet hook (the pipeline has no step callback);
- decoding outside the pipeline (``output_type="latent"``) so NaNs from a half-precision VAE can
  be caught and the decode retried in fp32.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from i2v_nodes.families.contract.family import CallSettings, Family
from i2v_nodes.families.contract.files import LoadSpec
from i2v_nodes.families.contract.jobs import Denoised, DenoiseJob, StockOutput, StockRun
from i2v_nodes.families.contract.traces import MemoryTraces
from i2v_nodes.families.i2vgen_xl import components
from i2v_nodes.families.i2vgen_xl.spec import ROLES, SPEC, VARIANT
from i2v_nodes.families.i2vgen_xl.tiers import TIERS
from i2v_nodes.families.toolkit.calls import common_arguments
from i2v_nodes.families.toolkit.frames import bridge_vae_dtype, video_to_frames
from i2v_nodes.lazy import torch

# Fixed seed for the one global-RNG draw the stock pipeline makes (the VAE's latent sample of
# the input image). Fixed rather than derived from the clip seed, so that clip i of a batch is
# the same as a single run with seed + i (the pipeline encodes the image once per batch).
IMAGE_LATENT_SEED = 0


class I2VGenXLFamily(Family):
    spec = SPEC
    traces_file = Path(__file__).with_name("traces.py")
    tiers = TIERS

    @functools.cached_property
    def traces(self) -> MemoryTraces:
        from i2v_nodes.families.i2vgen_xl.traces import (
            I2VGenXLTraces,  # builds models on the meta device: torch
        )

        return I2VGenXLTraces()

    def variant_of(self, index, configs, source="") -> str | None:
        return VARIANT if index.get("_class_name") in self.spec.pipeline_classes else None

    def pipeline_class(self, variant: str = "") -> type:
        return components.pipeline_class()

    def random_pipeline(self, configs) -> Any:
        return components.build(configs)

    def load_kwargs(self, source: str, local: bool, spec: LoadSpec) -> dict[str, Any]:
        if spec.dtype != torch.float16:
            return {}
        if not local:  # a download: the published repo ships fp16 files, half the bytes
            return {"variant": "fp16"} if source in self.hub_ids else {}
        return {"variant": "fp16"} if _has_fp16_files(Path(source)) else {}

    def prepare(self, pipe: Any) -> None:
        bridge_vae_dtype(pipe, "unet")

    def encode_prompt(self, pipe: Any, text: str, device: torch.device) -> torch.Tensor:
        """Prompt embeddings as upstream's default ``clip_skip=1`` computes them.

        Penultimate hidden state of the CLIP text tower, then its final layer norm. Padded to the
        tokenizer's max length and truncated like the stock ``encode_prompt``.
        """
        tokens = pipe.tokenizer(
            [text],
            padding="max_length",
            max_length=pipe.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        encoder = pipe.text_encoder
        mask = (
            tokens.attention_mask.to(device) if getattr(encoder.config, "use_attention_mask", False) else None
        )
        hidden = encoder(tokens.input_ids.to(device), attention_mask=mask, output_hidden_states=True)
        tower = getattr(encoder, "text_model", encoder)  # transformers < 5 nests the tower
        embeds = tower.final_layer_norm(hidden.hidden_states[-2])
        return embeds.to(dtype=encoder.dtype, device=device)

    def initial_latents(self, pipe, variant, seeds, frames, height, width, device) -> torch.Tensor:
        shape = (
            1,
            pipe.unet.config.in_channels,
            frames,
            height // pipe.vae_scale_factor,
            width // pipe.vae_scale_factor,
        )
        noise = [
            torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s), dtype=torch.float32)
            for s in seeds
        ]
        return torch.cat(noise).to(device=device, dtype=pipe.text_encoder.dtype)

    def call_arguments(self, pipe: Any, call: CallSettings) -> dict[str, Any]:
        return {**common_arguments(call), "target_fps": call.target_fps}

    def denoise(self, pipe: Any, job: DenoiseJob, device: torch.device) -> Denoised:
        with _fixed_global_rng(device):
            out = pipe(
                **self.call_arguments(pipe, job),
                prompt_embeds=job.prompt_embeds,
                negative_prompt_embeds=job.negative_embeds,
                num_videos_per_prompt=job.latents.shape[0],
                output_type="latent",
                return_dict=False,
            )
        return Denoised(out[0])

    def decode(self, pipe: Any, clip: Denoised, chunk: int, vae_dtype: torch.dtype) -> torch.Tensor:
        latents = clip.video
        video = pipe.decode_latents(latents.to(vae_dtype), decode_chunk_size=chunk)  # [1, 3, F, H, W]
        return video_to_frames(video)

    def stock_output(self, pipe: Any, run: StockRun) -> StockOutput:
        # transformers 5 dropped CLIPTextModel.text_model; let the stock clip_skip=1 path find it
        if not hasattr(pipe.text_encoder, "text_model"):
            object.__setattr__(pipe.text_encoder, "text_model", pipe.text_encoder)
        with _fixed_global_rng(run.latents.device):
            video = pipe(
                **self.call_arguments(pipe, run),
                prompt=run.prompt,
                negative_prompt=run.negative_prompt,
                decode_chunk_size=run.decode_chunk,
                output_type="pt",
                clip_skip=1,
            ).frames
        return StockOutput(video[0].permute(0, 2, 3, 1))


FAMILY = I2VGenXLFamily()


# --- helpers -------------------------------------------------------------------------------------


@contextmanager
def _fixed_global_rng(device: torch.device) -> Iterator[None]:
    """Fork the global RNG and seed it, around the pipeline's one draw from it."""
    devices = [device] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(IMAGE_LATENT_SEED)
        yield


def _has_fp16_files(root: Path) -> bool:
    """Use the ``fp16`` weight files when every weighted component ships them (half the read)."""
    components = [d for d in ROLES.weighted if (root / d).is_dir()]
    return bool(components) and all(any((root / d).glob("*.fp16.safetensors")) for d in components)
