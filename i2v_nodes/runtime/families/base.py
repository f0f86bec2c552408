"""The contract every model family fulfils: its rules, its components, how it loads and samples,
and how its memory is traced.

A family is one module in this package holding one :class:`Family` subclass. Everything that is
specific to a model lives there: the size and frame rules, which component plays which role, how
the stock diffusers pipeline is called (by keyword), its published configurations, its tiny test
models and its memory traces. The rest of the engine (sampling, placement, the memory estimate,
the step hook, the nodes) asks the family and names no model or component itself.

A family module registers its instance in :mod:`families` and then has to pass the contract test
suite (``tests/test_family_contract.py``), which runs over every registered family.
"""

from __future__ import annotations

import abc
import functools
import importlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from i2v_nodes.errors import InputError

# --- what a family declares ------------------------------------------------------------------


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
class Trace:
    """A call to trace on the meta device: ``fn(*args, **kwargs)``. The ``repeat`` calls,
    ``(owner, method name)`` such as a per-frame sub-module's forward, are traced once per call
    signature and replayed (see :mod:`..memtrace`)."""

    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    repeat: tuple[tuple[Any, str], ...] = ()

    def peak_bytes(self) -> int:
        from i2v_nodes.runtime.memory.trace import peak_bytes

        return peak_bytes(self.fn, *self.args, repeat=self.repeat, **self.kwargs)


@dataclass(frozen=True)
class DenoiseJob:
    """Everything one stock pipeline call needs, for one input image and its clips."""

    image: Any  # PIL image, already at the output size where the family wants it so
    prompt_embeds: Any  # the family's encode_prompt result, one prompt for every clip; None: no prompt
    negative_embeds: Any  # likewise; None when guidance is off
    latents: torch.Tensor  # [clips, C, latent frames, h, w]
    width: int
    height: int
    num_frames: int
    steps: int
    guidance_scale: float
    target_fps: int
    options: Any = None  # the family's own settings (its options node), or None
    step_end: Callable[[], bool] | None = None  # after each step; True stops the run (cancel)
    seeds: tuple[int, ...] = ()  # one per clip: for pipelines that draw more noise than the initial latents
    variant: str = ""  # the model's variant (its rules and defaults)
    cfg_steps: int = 0  # guidance only in the first this many steps (CFG truncation); 0 = in all


@dataclass(frozen=True)
class PromptEncoding:
    """Embeddings with their attention mask, for pipelines that take both (T5 or Gemma padded prompts)."""

    embeds: torch.Tensor  # [1, tokens, dim]
    mask: torch.Tensor  # [1, tokens]


@dataclass(frozen=True)
class Denoised:
    """What the denoising loop leaves for decoding; every tensor has one row per clip."""

    video: torch.Tensor  # latents [clips, C, f, h, w]
    audio: torch.Tensor | None = None  # the family's sound latents, for families that make sound
    extras: Mapping[str, torch.Tensor] = field(default_factory=dict)  # per-clip decode inputs of the family

    @property
    def clips(self) -> int:
        return self.video.shape[0]

    def clip(self, index: int) -> Denoised:
        """The rows of one clip (each tensor keeps its leading dimension of 1)."""
        audio = self.audio[index:index + 1] if self.audio is not None else None
        return Denoised(self.video[index:index + 1], audio,
                        {name: value[index:index + 1] for name, value in self.extras.items()})


@dataclass(frozen=True)
class StockOutput:
    """A plain stock pipeline call's result: frames [F, H, W, 3] and, for a family with sound, its
    ComfyUI AUDIO value (``None`` otherwise)."""

    frames: torch.Tensor
    audio: dict[str, Any] | None = None


@dataclass(frozen=True)
class StockRun:
    """A plain stock pipeline call with the prompt texts: the oracle the pack's frames must equal."""

    image: Any  # PIL image, prepared as the family prepares it
    prompt: str
    negative_prompt: str
    latents: torch.Tensor  # [1, C, latent frames, h, w]: the noise the pack would draw
    width: int
    height: int
    num_frames: int
    steps: int
    guidance_scale: float
    target_fps: int
    decode_chunk: int = 1
    options: Any = None  # the family's settings
    seed: int = 0  # what the pack's clip seed is: for pipelines that draw more noise than the latents
    variant: str = ""


# A CLIP ViT-H/14 vision tower (the image encoder of I2VGen-XL and Wan 2.1), as a transformers config.
CLIP_VISION_H14 = {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
                   "num_attention_heads": 16, "patch_size": 14, "image_size": 224, "projection_dim": 1024,
                   "hidden_act": "gelu"}


# The inputs of the single-file loader, named after ComfyUI's model folders they list.
# LoadI2VModelFiles' inputs, in order, and the ComfyUI model folder each one lists
FILE_FOLDERS = {
    "diffusion_model": "diffusion_models",
    "diffusion_model_2": "diffusion_models",
    "text_encoder": "text_encoders",
    "vae": "vae",
    "clip_vision": "clip_vision",
}
FILE_SLOTS = tuple(FILE_FOLDERS)
# Folders an input lists too, after its own: checkpoints (a denoiser with its VAE, in one file) are
# kept in ComfyUI's checkpoints folder, and the second denoiser file may be a motion module, which
# ComfyUI users keep in AnimateDiff-Evolved's animatediff_models folder. A name resolves in the first
# folder that has it.
FILE_ALSO_FOLDERS = {"diffusion_model": ("checkpoints",), "diffusion_model_2": ("animatediff_models",)}


def file_folders(slot: str) -> tuple[str, ...]:
    """The ComfyUI model folders a loader input lists, in the order a name is looked up."""
    return (FILE_FOLDERS[slot], *FILE_ALSO_FOLDERS.get(slot, ()))


FILE_FORMATS = ("fp32", "bf16", "fp16", "fp8_e4m3fn", "fp8_scaled")  # how single files store weights


@dataclass(frozen=True)
class FilePart:
    """One single file (ComfyUI's layout) as a family reads it from its safetensors header."""

    path: Path
    kind: str  # "denoiser", "text_encoder", "vae" or "image_encoder"
    variant: str  # what it is, e.g. "wan2.2-i2v-a14b" or "wan-vae-2.2"
    format: str  # "bf16", "fp16", "fp32", "fp8_e4m3fn" or "fp8_scaled"
    config: dict[str, Any]  # the component's diffusers / transformers config, read off the shapes
    params: int  # weights only (no fp8 scales, no embedded tokenizer)
    hint: str = ""  # what the file name adds (e.g. "high" / "low" noise for Wan 2.2 experts)
    tokenizer: bool = False  # the file carries its own tokenizer (ComfyUI's text encoders do)
    float8_params: int = 0  # weights that stay float8 once loaded (the rest load in the compute dtype)
    bundled: tuple[FilePart, ...] = ()  # other components the same file carries (a checkpoint's VAE)

    @property
    def fp8(self) -> bool:
        return self.format.startswith("fp8")


@dataclass(frozen=True)
class FileSet:
    """Single files assembled into one model: what each pipeline component is loaded from."""

    variant: str
    parts: dict[str, FilePart]  # pipeline component (role) -> file
    configs: dict[str, Any]  # every component's config, plus "pipeline" and "scheduler" settings


@dataclass(frozen=True)
class LoadSpec:
    """How to load: dtypes, fp8 weight storage, where to."""

    dtype: torch.dtype
    vae_dtype: torch.dtype
    weights: str = "default"  # "fp8": the denoisers keep float8_e4m3fn weights, compute in dtype


def config_json(config: Mapping[str, Any]) -> str:
    """A config as a hashable, canonical string (the key of every per-config cache)."""
    return json.dumps(dict(config), sort_keys=True)


def meta_module(cls: type, config: Mapping[str, Any], dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A weightless module of ``cls`` with this (diffusers) config, for sizes and memory traces."""
    clean = {k: v for k, v in config.items() if not k.startswith("_")}
    with torch.device("meta"):
        module = cls.from_config(clean).eval()
    # nn.Module.to, not the diffusers override, which warns about fp32-pinned modules on every cast
    return torch.nn.Module.to(module, dtype)


@functools.lru_cache(maxsize=32)
def meta_vae(cls: type, config_json: str, dtype: torch.dtype, tiling: bool) -> torch.nn.Module:
    """One meta VAE per tiling setting, so no trace ever toggles state on a shared module."""
    vae = meta_module(cls, json.loads(config_json), dtype)
    if tiling:
        vae.enable_tiling()
    return vae


def meta_transformers_model(model_cls: type, config_cls: type, config: Mapping[str, Any],
                            dtype: torch.dtype) -> torch.nn.Module:
    """A weightless transformers model (text or image encoder) from its config."""
    with torch.device("meta"):
        return model_cls(config_cls(**config)).to(dtype)


def keep_fp32(module: torch.nn.Module) -> torch.nn.Module:
    """Put the parts its class keeps in fp32 (``_keep_in_fp32_modules``) back in fp32, as
    ``from_pretrained(dtype=...)`` does (a plain cast would not)."""
    patterns = set(getattr(type(module), "_keep_in_fp32_modules", None) or ())
    for name, param in module.named_parameters():
        if patterns & set(name.split(".")):
            param.data = param.data.float()
    return module


def cast_inputs_to(module: torch.nn.Module) -> Callable:
    """A forward pre-hook casting floating inputs to ``module``'s dtype: lets a VAE run in another
    dtype than the denoiser when the stock pipeline hands it tensors in the denoiser's dtype."""
    def hook(_module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        dtype = next(module.parameters()).dtype

        def cast(value: Any) -> Any:
            if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != dtype:
                return value.to(dtype)
            return value

        return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}

    return hook


def bridge_vae_encoder(pipe: Any, denoiser: str) -> bool:
    """Cast what reaches the VAE's encoder to the VAE's dtype when it differs from the denoiser's (the
    image-to-video pipelines hand it the image in the model's dtype; the VAE is kept in fp32).
    Returns whether the dtypes differ."""
    if pipe.vae.dtype == getattr(pipe, denoiser).dtype:
        return False
    pipe.vae.encoder.register_forward_pre_hook(cast_inputs_to(pipe.vae.encoder), with_kwargs=True)
    return True


def tokenizer_in(roots: Iterable[Path], folders: Sequence[str],
                 marks: Sequence[Sequence[str]]) -> Path | None:
    """The first ``<root>/<folder>`` (folders in order of preference) holding a tokenizer: all the
    files of one of ``marks`` (e.g. ``("tokenizer.json",)`` or ``("vocab.json", "merges.txt")``)."""
    roots = list(roots)
    for name in folders:
        for folder in (Path(root) / name for root in roots):
            if any(all((folder / mark).is_file() for mark in files) for files in marks):
                return folder
    return None


def refuse_missing_tokenizer(roots: Iterable[Path], folder: str, problem: str, files: str) -> None:
    """The single-file loaders' refusal, before any weight loads, of a text encoder whose tokenizer
    is nowhere to be had: ``problem`` says why, ``files`` what to put in ``<root>/<folder>``."""
    where = " or ".join(str(Path(root) / folder) for root in roots) or \
        f"a {folder} folder in ComfyUI's text_encoders folder"
    raise InputError("text_encoder",
                     f"{problem}: put {files} in {where}, or turn allow_download on (a few MB)")


class StepCancelled(Exception):
    """Raised from a step callback to stop a pipeline that has no interrupt flag; carries the latents
    of the last finished step."""

    def __init__(self, latents: torch.Tensor) -> None:
        super().__init__("cancelled")
        self.latents = latents


def numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- the contract ----------------------------------------------------------------------------


class Family(abc.ABC):
    """One pipeline family. Subclasses set the class attributes and implement the methods."""

    name: str  # e.g. "wan"
    title: str = ""  # how people write it, e.g. "LTX-Video" (node names, messages); "" = name
    pipeline_classes: tuple[str, ...]  # model_index.json ``_class_name`` values it reads
    # As data: published model (hub id) -> its variant, and -> its component configs (enough to count
    # its parameters and trace it, no download); built-in tiny model name -> its component configs.
    hub_variants: Mapping[str, str] = {}
    published: Mapping[str, Mapping[str, Any]] = {}
    tiny: Mapping[str, Mapping[str, Any]] = {}
    fit_image: bool = True  # the pipeline resizes without regard to aspect: centre-crop to it first
    options_node: str | None = None  # the node building this family's options, if any
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

    # -- identity -----------------------------------------------------------------------------

    @abc.abstractmethod
    def variant_of(self, index: Mapping[str, Any], configs: Mapping[str, Any],
                   source: str = "") -> str | None:
        """The variant a pipeline folder holds (from model_index.json and configs), or None. ``source``
        is the folder's path, for variants whose configs are alike (a distilled checkpoint's name)."""

    @property
    def hub_ids(self) -> tuple[str, ...]:
        """The published models it knows the configs of."""
        return tuple(self.hub_variants)

    def hub_variant(self, hub_id: str) -> str:
        return self.hub_variants[hub_id]

    @abc.abstractmethod
    def rules(self, variant: str) -> Rules: ...

    @abc.abstractmethod
    def roles(self, variant: str) -> Roles: ...

    # -- published configurations and tiny models ---------------------------------------------

    def published_configs(self, hub_id: str) -> dict[str, dict[str, Any]]:
        """Component configs of a published model, enough to count its parameters and trace it."""
        return {role: dict(config) for role, config in self.published[hub_id].items()}

    @abc.abstractmethod
    def meta_component(self, role: str, config_json: str, dtype: torch.dtype) -> torch.nn.Module:
        """A weightless module of one component (``role`` is its pipeline attribute name)."""

    def published_description(self, hub_id: str) -> tuple[dict[str, Any], tuple[tuple[str, int], ...]]:
        """Configs (as the component classes complete them) and parameter counts, no weights."""
        return _published_description(self, hub_id)

    @abc.abstractmethod
    def random_pipeline(self, configs: Mapping[str, Any]) -> Any:
        """A pipeline with random weights (fixed seed) from component configs: the tiny models from
        small configs, full-size models (for benchmarks, no download) from published ones."""

    @property
    def tiny_models(self) -> dict[str, Callable[[], Any]]:
        """Built-in tiny models, ``tiny-<variant>``: name -> builder of a pipeline with random weights."""
        return {name: functools.partial(self.random_pipeline, configs) for name, configs in self.tiny.items()}

    # -- single files (ComfyUI's model folders) --------------------------------------------------

    single_files: str = ""  # which of ComfyUI's files the family reads, for messages ("" if none)
    file_formats: tuple[str, ...] = FILE_FORMATS  # how its single files may store weights (write_files)
    # The stem of the family's three single-file modules in this package ("" if it reads none):
    # ``<stem>_files`` (identify, assemble: headers only), ``<stem>_load`` (load_pipeline,
    # check_tokenizer) and ``<stem>_write`` (write_files). Loading and writing import lazily.
    file_modules: str = ""

    def _file_module(self, part: str) -> Any:
        return importlib.import_module(f"{__package__}.{self.file_modules}_{part}")

    def identify_file(self, header: Any) -> FilePart | None:
        """What a single file is to this family, from its safetensors header alone; None if not ours."""
        return self._file_module("files").identify(header) if self.file_modules else None

    def assemble_files(self, parts: Mapping[str, FilePart]) -> FileSet:
        """Check that the files (by loader slot, see FILE_SLOTS) make one model, and say which is which.

        Raises :class:`InputError` naming the slot, the file and what was expected.
        """
        if not self.file_modules:
            raise InputError("diffusion_model", f"the {self.name} family loads no single files")
        return self._file_module("files").assemble(parts)

    def load_files(self, files: FileSet, spec: LoadSpec, tokenizers: list[Path], allow_download: bool,
                   settle: Callable[[torch.nn.Module], None]) -> tuple[Any, str]:
        """The stock pipeline built from single files (no device placement yet), and a note for the
        report (which tokenizer was used). ``settle`` gets each denoiser as soon as it is loaded."""
        if not self.file_modules:
            raise NotImplementedError(f"the {self.name} family loads no single files")
        return self._file_module("load").load_pipeline(files, spec, tokenizers, allow_download, settle)

    def check_tokenizer(self, files: FileSet, tokenizers: list[Path], allow_download: bool) -> None:
        """Raise InputError, before anything loads, if the text encoder's tokenizer cannot be had."""
        if self.file_modules:
            self._file_module("load").check_tokenizer(files.parts["text_encoder"].tokenizer, tokenizers,
                                                      allow_download)

    def write_files(self, pipe: Any, models_dir: Path, stem: str, fmt: str = "fp32") -> dict[str, Path]:
        """Write a pipeline as single files in ComfyUI's folders under ``models_dir`` (loader slot ->
        file): how the tiny models exist as single files too."""
        if not self.file_modules:
            raise NotImplementedError(f"the {self.name} family writes no single files")
        return self._file_module("write").write_files(pipe, models_dir, stem, fmt)

    # -- loading and sampling -----------------------------------------------------------------

    @abc.abstractmethod
    def pipeline_class(self, variant: str = "") -> type:
        """The stock pipeline class that runs this variant (image-to-video)."""

    def load_kwargs(self, source: str, local: bool, spec: LoadSpec) -> dict[str, Any]:
        """Extra keyword arguments for ``from_pretrained`` (weight variants and the like)."""
        return {}

    # A model may be assembled from parts when it loads (a base and an adapter merged into one denoiser):
    # the three hooks below say where its weights are and where they come from. Defaults: one folder per
    # component, one repository per published model.

    def weight_folders(self, role: str, configs: Mapping[str, Any]) -> tuple[str, ...]:
        """The subfolders of a pipeline folder whose weights make up ``role`` once loaded (``configs``:
        the folder's component configs)."""
        return (role,)

    def hub_repos(self, hub_id: str) -> tuple[str, ...]:
        """The repositories a published model downloads from."""
        return (hub_id,)

    def load_source(self, source: str, local: bool, spec: LoadSpec) -> tuple[str, dict[str, Any]]:
        """Where ``from_pretrained`` reads the pipeline, and components the family loads itself (for a
        published model made of several repositories)."""
        return source, {}

    def prepare(self, pipe: Any) -> None:  # noqa: B027 - an optional hook, empty by default
        """Adjust a freshly loaded pipeline (dtype bridges and the like)."""

    @abc.abstractmethod
    def encode_prompt(self, pipe: Any, text: str, device: torch.device) -> torch.Tensor:
        """Embeddings of one prompt, ``[1, tokens, dim]``, exactly as the stock pipeline makes them."""

    def uses_cfg(self, guidance_scale: float, options: Any = None) -> bool:
        """Whether the pipeline runs classifier-free guidance (a second, unconditional pass)."""
        return guidance_scale > 1  # the diffusers pipelines' own test

    def prepare_image(self, image: Any, width: int, height: int) -> Any:
        """The input image as the pipeline should get it (PIL): fitted to the size (centre crop, then
        resize) where the pipeline would squash it (``fit_image``), else unchanged."""
        if not self.fit_image:
            return image
        from PIL import Image, ImageOps

        return ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS)

    @abc.abstractmethod
    def initial_latents(
        self,
        pipe: Any,
        variant: str,
        seeds: list[int],
        frames: int,
        height: int,
        width: int,
        device: torch.device,
    ) -> torch.Tensor:
        """One noise tensor per clip, each from its own CPU generator (same on every device)."""

    def lora_target(self, role: str) -> tuple[str, dict[str, Any]]:
        """For a LoRA on denoiser ``role``: the prefix of its keys in diffusers' format, and the keyword
        arguments that make ``load_lora_weights`` load it into that denoiser."""
        return role, {}

    def steps_run(self, steps: int, options: Any = None) -> int:
        """How many of the asked steps each step loop really runs (an img2img-like strength runs
        fewer): what progress counts."""
        return steps

    def pipeline_calls(self, clips: int) -> int:
        """Stock pipeline calls (step loops) ``denoise`` makes for one image's clips: 1 when it runs
        them as one batch. Progress expects this many times the steps."""
        return 1

    @abc.abstractmethod
    def denoise(self, pipe: Any, job: DenoiseJob, device: torch.device) -> Denoised:
        """Run the stock pipeline up to the final latents (decoding is the caller's)."""

    @abc.abstractmethod
    def decode(self, pipe: Any, clip: Denoised, chunk: int, vae_dtype: torch.dtype) -> torch.Tensor:
        """One clip's latents (``clip.video`` is ``[1, C, f, h, w]``) to frames ``[F, H, W, 3]`` float32
        in 0..1."""

    def decode_audio(self, pipe: Any, clip: Denoised) -> dict[str, Any] | None:
        """One clip's sound as ComfyUI's AUDIO (waveform ``[1, channels, samples]``), or None for a
        family without sound (the caller then gives silence of the clip's length)."""
        return None

    @abc.abstractmethod
    def stock_output(self, pipe: Any, run: StockRun) -> StockOutput:
        """Frames (and sound) of a plain stock pipeline call with prompt texts: the oracle."""

    def option_inputs(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """The widgets of this family's options node (ComfyUI INPUT_TYPES entries, with tooltips)."""
        return {}

    def make_options(self, values: Mapping[str, Any]) -> Any:
        """The family's settings object from its options node's widget values."""
        raise NotImplementedError(f"the {self.name} family has no options")

    def check_options(self, variant: str, options: Any) -> None:
        """Raise :class:`InputError` for options this variant cannot use."""
        if options is not None:
            raise InputError("options", f"the {self.name} family takes no options")

    # -- memory traces ------------------------------------------------------------------------

    def block_state(self, variant: str, configs: str, frames: int, height: int,
                    width: int) -> tuple[int, int, int]:
        """Tokens per batch row at the denoiser's repeated blocks, their width, and the number of
        blocks: what a step cache's kept hidden states cost. (0, 0, 0) where it has no step cache."""
        return 0, 0, 0

    @abc.abstractmethod
    def denoiser_trace(
        self,
        variant: str,
        configs: str,
        dtype: torch.dtype,
        rows: int,
        frames: int,
        height: int,
        width: int,
        full_depth: bool = False,
    ) -> Trace:
        """One denoiser call with ``rows`` batch rows at this output size (``configs``: JSON). A
        family may trace fewer of its identical blocks when that leaves the peak unchanged;
        ``full_depth`` asks for all of them (to count FLOPs)."""

    @abc.abstractmethod
    def vae_trace(
        self,
        variant: str,
        configs: str,
        dtype: torch.dtype,
        direction: str,
        frames: int,
        height: int,
        width: int,
        tiling: bool,
    ) -> Trace:
        """A VAE ``encode`` or ``decode`` of ``frames`` output frames (one clip) at this size."""

    def encoder_traces(self, variant: str, configs: str, dtype: torch.dtype) -> list[Trace]:
        """Text/image encoder calls made in the encode phase (each traced on its own)."""
        return []


@functools.lru_cache(maxsize=16)
def _published_description(family: Family, hub_id: str) -> tuple[dict[str, Any], tuple[tuple[str, int], ...]]:
    configs = family.published_configs(hub_id)
    completed: dict[str, Any] = {}
    params = []
    variant = family.hub_variant(hub_id)
    for role in family.roles(variant).weighted:
        module = family.meta_component(role, config_json(configs[role]), torch.float32)
        config = getattr(module, "config", None)
        completed[role] = dict(config) if hasattr(config, "keys") else dict(configs[role])
        params.append((role, numel(module)))
    for role, config in configs.items():
        completed.setdefault(role, dict(config))
    return completed, tuple(params)
