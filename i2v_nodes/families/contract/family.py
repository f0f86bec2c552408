"""What every model family does, behind one contract.

A family is a package (:mod:`i2v_nodes.families`) with one :class:`Family` subclass, ``<Name>Family``.
What the family *is* lives in its :class:`~.spec.FamilySpec` (rules, roles, published and tiny
models, options, flags); how its memory is measured in a :class:`~.traces.MemoryTraces`; how it
reads ComfyUI's single files in a :class:`~.files.SingleFiles` (or none); the tier workflows it
ships in a :class:`~.tiers.Tiers`. The class itself says
what the family *does*, in a handful of methods: recognise a pipeline folder, build a pipeline,
and run the stock pipeline (prompt, noise, denoise, decode) and the oracle.

**The pack's run and the oracle.** Both call the same stock pipeline, and they share exactly one
thing: :meth:`Family.call_arguments`, which maps the run's settings (image, noise, size, frames,
steps, guidance, fps, the family's options, the keyframes: an end image) to the pipeline's keyword
arguments. Everything the pack
adds stays on its own path, in :meth:`Family.denoise`: the remembered prompt embeddings, the step
callback (progress, cancel, CFG truncation), the speed levers, ``output_type="latent"`` and the
pack's own decode with its NaN retry. :meth:`Family.stock_output`, the oracle, adds only the prompt
*texts* and the pipeline's own output (``output_type="pt"``): the stock pipeline encodes the prompt,
loops and decodes by itself. So the oracle stays an independent reference of everything the pack
does, and a wrong keyword would show in both: the contract tests also check each setting's effect
(sizes, frames, seeds).

The rest of the engine (sampling, placement, the memory estimate, the step hook, the nodes) asks the
family and names no model or component itself. A family registers in :mod:`..registry` and passes
the contract test suite (``tests/test_family_contract.py``).
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from i2v_nodes.errors import InputError
from i2v_nodes.families.contract.continuation import Continuation
from i2v_nodes.families.contract.files import LoadSpec, SingleFiles
from i2v_nodes.families.contract.jobs import Denoised, DenoiseJob, Keyframe, StockOutput, StockRun
from i2v_nodes.families.contract.spec import FamilySpec, Roles, Rules
from i2v_nodes.families.contract.tiers import Tiers
from i2v_nodes.families.contract.traces import MemoryTraces
from i2v_nodes.families.toolkit.meta import config_json, numel
from i2v_nodes.lazy import torch


class CallSettings(Protocol):
    """What :meth:`Family.call_arguments` reads: the fields a :class:`DenoiseJob` (the pack's run) and
    a :class:`StockRun` (the oracle) have in common."""

    image: Any
    latents: torch.Tensor
    width: int
    height: int
    num_frames: int
    steps: int
    guidance_scale: float
    target_fps: int
    options: Any
    variant: str
    keyframes: tuple[Keyframe, ...]  # images at later frames (an end image), each prepared like ``image``


class Family(abc.ABC):
    """One pipeline family: ``spec`` is what it is, the methods what it does."""

    spec: FamilySpec
    traces: MemoryTraces  # a family may build it on first use (it needs torch; ``plan`` often does not)
    # the source of its traces' class, when declared (so it is hashed without importing it): what keys its
    # figures in the shipped trace table
    traces_file: Path | None = None
    files: SingleFiles | None = None  # how it reads ComfyUI's single files; None: it reads none
    tiers: Tiers | None = None  # the tier workflows it ships; None: none
    # how it continues a clip from its last frames (I2VExtend); None: from the last frame as its image
    continuation: Continuation | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec.name!r}>"

    # -- what it is (read from the spec) -----------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def title(self) -> str:
        return self.spec.title

    def rules(self, variant: str) -> Rules:
        return self.spec.rules[variant]

    def roles(self, variant: str) -> Roles:
        return self.spec.roles[variant]

    @property
    def hub_ids(self) -> tuple[str, ...]:
        """The published models it knows the configs of."""
        return tuple(self.spec.hub_variants)

    def hub_variant(self, hub_id: str) -> str:
        return self.spec.hub_variants[hub_id]

    def published_configs(self, hub_id: str) -> dict[str, dict[str, Any]]:
        """Component configs of a published model, enough to count its parameters and trace it."""
        return {role: dict(config) for role, config in self.spec.published[hub_id].items()}

    def published_description(self, hub_id: str) -> tuple[dict[str, Any], tuple[tuple[str, int], ...]]:
        """Configs (as the component classes complete them) and parameter counts, no weights."""
        return _published_description(self, hub_id)

    @property
    def tiny_models(self) -> dict[str, Callable[[], Any]]:
        """Built-in tiny models, ``tiny-<variant>``: name -> builder of a pipeline with random weights."""
        tiny = self.spec.tiny
        return {name: functools.partial(self.random_pipeline, configs) for name, configs in tiny.items()}

    # -- recognising and building ------------------------------------------------------------------

    @abc.abstractmethod
    def variant_of(self, index: Mapping[str, Any], configs: Mapping[str, Any],
                   source: str = "") -> str | None:
        """The variant a pipeline folder holds (from model_index.json and configs), or None. ``source``
        is the folder's path, for variants whose configs are alike (a distilled checkpoint's name)."""

    @abc.abstractmethod
    def pipeline_class(self, variant: str = "") -> type:
        """The stock pipeline class that runs this variant (image-to-video)."""

    @abc.abstractmethod
    def random_pipeline(self, configs: Mapping[str, Any]) -> Any:
        """A pipeline with random weights (fixed seed) from component configs: the tiny models from
        small configs, full-size models (for benchmarks, no download) from published ones."""

    # -- running the stock pipeline ----------------------------------------------------------------

    @abc.abstractmethod
    def encode_prompt(self, pipe: Any, text: str, device: torch.device) -> torch.Tensor:
        """Embeddings of one prompt, ``[1, tokens, dim]``, exactly as the stock pipeline makes them."""

    @abc.abstractmethod
    def initial_latents(self, pipe: Any, variant: str, seeds: list[int], frames: int, height: int,
                        width: int, device: torch.device) -> torch.Tensor:
        """One noise tensor per clip, each from its own CPU generator (same on every device)."""

    @abc.abstractmethod
    def call_arguments(self, pipe: Any, call: CallSettings) -> dict[str, Any]:
        """The stock pipeline's keyword arguments for these settings: the one part the pack's run and
        the oracle share (see the module's docstring). No prompt, no output type, no callback."""

    @abc.abstractmethod
    def denoise(self, pipe: Any, job: DenoiseJob, device: torch.device) -> Denoised:
        """The pack's run: the stock pipeline up to the final latents (decoding is the caller's)."""

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
        """The oracle: frames (and sound) of a plain stock pipeline call with the prompt texts."""

    def uses_cfg(self, guidance_scale: float, options: Any = None) -> bool:
        """Whether the pipeline runs classifier-free guidance (a second, unconditional pass)."""
        return guidance_scale > 1  # the diffusers pipelines' own test

    def prepare_image(self, image: Any, width: int, height: int) -> Any:
        """The input image as the pipeline should get it (PIL): fitted to the size (centre crop, then
        resize) where the pipeline would squash it (``spec.fit_image``), else unchanged."""
        if not self.spec.fit_image:
            return image
        from PIL import Image, ImageOps

        return ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS)

    def steps_run(self, steps: int, options: Any = None) -> int:
        """How many of the asked steps each step loop really runs (an img2img-like strength runs
        fewer): what progress counts."""
        return steps

    def pipeline_calls(self, clips: int) -> int:
        """Stock pipeline calls (step loops) ``denoise`` makes for one image's clips: 1 when it runs
        them as one batch. Progress expects this many times the steps."""
        return 1

    # -- loading (defaults: one folder per component, one repository per published model) -----------

    def load_kwargs(self, source: str, local: bool, spec: LoadSpec) -> dict[str, Any]:
        """Extra keyword arguments for ``from_pretrained`` (weight variants and the like)."""
        return {}

    def weight_folders(self, role: str, configs: Mapping[str, Any]) -> tuple[str, ...]:
        """The subfolders of a pipeline folder whose weights make up ``role`` once loaded (more than
        one when parts merge at load, a base and an adapter)."""
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

    def lora_target(self, role: str) -> tuple[str, dict[str, Any]]:
        """For a LoRA on denoiser ``role``: the prefix of its keys in diffusers' format, and the keyword
        arguments that make ``load_lora_weights`` load it into that denoiser."""
        return role, {}

    # -- options -----------------------------------------------------------------------------------

    def make_options(self, values: Mapping[str, Any]) -> Any:
        """The family's settings object from its options node's widget values (``spec.option_inputs``)."""
        raise NotImplementedError(f"the {self.name} family has no options")

    def check_options(self, variant: str, options: Any) -> None:
        """Raise :class:`InputError` for options this variant cannot use."""
        if options is not None:
            raise InputError("options", f"the {self.name} family takes no options")

    def samplers(self, variant: str) -> tuple[str, ...]:
        """The samplers this variant runs: "default" (the model's own scheduler), then those its spec
        allows (``spec.samplers``)."""
        return ("default", *self.spec.samplers.get(variant, ()))


@functools.lru_cache(maxsize=16)
def _published_description(family: Family, hub_id: str) -> tuple[dict[str, Any], tuple[tuple[str, int], ...]]:
    configs = family.published_configs(hub_id)
    completed: dict[str, Any] = {}
    params = []
    variant = family.hub_variant(hub_id)
    for role in family.roles(variant).weighted:
        module = family.traces.meta_component(role, config_json(configs[role]), torch.float32)
        config = getattr(module, "config", None)
        completed[role] = dict(config) if hasattr(config, "keys") else dict(configs[role])
        params.append((role, numel(module)))
    for role, config in configs.items():
        completed.setdefault(role, dict(config))
    return completed, tuple(params)
