"""What a family is, as frozen data: its name and pipelines, the rules each variant's sizes and
frames follow, which pipeline component plays which role, its published and tiny models, its options
node's widgets, and the flags the engine branches on (never on a family's name)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The samplers a family may allow besides "default" (its model's own scheduler). The engine builds each
# as a diffusers scheduler from the model's own scheduler config (runtime.sampling.schedulers), so a
# family only says which ones its stock pipeline can run: some pipelines pass the scheduler custom
# sigmas, timesteps or per-token timesteps that not every scheduler takes.
SAMPLERS = ("euler", "unipc", "dpmpp_2m", "lcm")


@dataclass(frozen=True)
class Rules:
    """Sizes, frame counts and defaults a model takes (one variant of a family)."""

    size_multiple: int  # width and height must be multiples of this
    vae_spatial: int  # pixels per latent pixel
    vae_temporal: int  # frames per latent frame after the first (1: no temporal compression)
    latent_channels: int
    frame_step: int  # frame counts are frame_step * k + 1 (1: any count)
    min_frames: int
    max_frames: int
    trained_frames: int  # what the model was trained on; more may drift
    default_width: int
    default_height: int
    default_frames: int
    default_fps: int
    default_steps: int
    default_guidance: float
    default_precision: str  # on CUDA; a CPU defaults to bf16 where it computes bf16 natively, else fp32
    default_negative: str = ""
    chunked_decode: bool = True  # decode_chunk_size sets frames per VAE call (2-D VAEs)

    def frames_valid(self, frames: int) -> bool:
        return self.min_frames <= frames <= self.max_frames and (frames - 1) % self.frame_step == 0

    def nearest_frames(self, frames: int) -> tuple[int, ...]:
        """The valid frame counts nearest to ``frames`` (one or two of them)."""
        step = self.frame_step
        low = max(self.min_frames, (frames - 1) // step * step + 1)
        high = min(self.max_frames, low + step if low < frames else low)
        return tuple(sorted({n for n in (low, high) if self.frames_valid(n)}))

    def latent_frames(self, frames: int) -> int:
        return (frames - 1) // self.vae_temporal + 1 if self.vae_temporal > 1 else frames


@dataclass(frozen=True)
class Roles:
    """Which pipeline component plays which part."""

    denoisers: tuple[str, ...]  # run during the steps; with two, one at a time
    vae: str = "vae"
    encoders: tuple[str, ...] = ()  # text and image encoders, run before the steps
    decoders: tuple[str, ...] = ()  # besides the VAE, run after the steps (e.g. a sound decoder)

    @property
    def weighted(self) -> tuple[str, ...]:
        return (*self.encoders, *self.denoisers, self.vae, *self.decoders)


@dataclass(frozen=True)
class Keyframes:
    """How a variant conditions on images at frames other than the first (I2VSample's ``end_image``); a
    variant absent from ``FamilySpec.keyframes`` cannot."""

    any_frame: bool = False  # at any frame (LTX's condition pipelines); False: on the last frame only
    # latent frames each such image appends to the denoiser's sequence (LTX: its tokens ride along
    # the video's); 0: it conditions in place (Wan: it is the last frame of the encoded condition video)
    appended_frames: int = 0
    required: bool = False  # the model cannot run without an end image (Wan 2.1 FLF2V)


@dataclass(frozen=True)
class FamilySpec:
    """Everything the engine, the nodes, the planner and the docs read about a family, as data."""

    name: str  # e.g. "wan": the registry's key
    title: str  # how people write it, e.g. "LTX-Video" (node names, messages)
    long_title: str  # what it is in a list of families, e.g. "Wan 2.1 / 2.2" (node descriptions, docs)
    pipeline_classes: tuple[str, ...]  # model_index.json ``_class_name`` values it reads
    rules: Mapping[str, Rules]  # variant -> its sizes, frames and defaults
    roles: Mapping[str, Roles]  # variant -> which component plays which part
    # variant -> how people write it, e.g. "Wan 2.2 TI2V-5B" (tooltips that list the variants' rules)
    variant_titles: Mapping[str, str] = field(default_factory=dict)
    # published model (hub id) -> its variant, and -> its component configs (enough to count its
    # parameters and trace it, no download); built-in tiny model name -> its component configs
    hub_variants: Mapping[str, str] = field(default_factory=dict)
    published: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tiny: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # the node building this family's options (None: it has none), and its widgets (ComfyUI
    # INPUT_TYPES entries, with tooltips)
    options_node: str | None = None
    option_inputs: Mapping[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    # variant -> the samplers (names from SAMPLERS) its stock pipeline runs besides its own scheduler
    samplers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # variant -> how it conditions on an end image (or more keyframes); absent: it cannot
    keyframes: Mapping[str, Keyframes] = field(default_factory=dict)
    # -- flags the engine branches on --
    fit_image: bool = True  # the pipeline resizes without regard to aspect: centre-crop to it first
    uses_step_callback: bool = True  # progress/cancel via callback_on_step_end (else a denoiser hook)
    cfg_in_one_call: bool = False  # both CFG halves in one denoiser call (rows half-major)
    makes_sound: bool = False  # decode_audio gives the model's own sound (not silence)
    cfg_truncation: bool = False  # denoise honours DenoiseJob.cfg_steps (guidance for the first steps only)
    takes_prompt: bool = True  # False: no text conditioning; no prompt is encoded, the report says so
    vae_tiling: bool = True  # its VAE decodes in tiles when asked (False: memory planning never asks)
    # speed settings its denoiser supports: diffusers' cache hooks (step_cache.METHODS names), regional
    # compile of the repeated blocks, and attention backends chosen per processor
    step_caches: tuple[str, ...] = ()
    compile_blocks: bool = False
    attention_backends: bool = False
