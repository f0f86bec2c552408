"""What the engine hands a family and gets back: one pipeline call's job, its results, the oracle's
run, and memory traces to evaluate on the meta device."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from i2v_nodes.lazy import torch


@dataclass(frozen=True)
class Trace:
    """A call to trace on the meta device: ``fn(*args, **kwargs)``. The ``repeat`` calls,
    ``(owner, method name)`` such as a per-frame sub-module's forward, are traced once per call
    signature and replayed (see :mod:`i2v_nodes.runtime.memory.trace`, which evaluates it)."""

    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    repeat: tuple[tuple[Any, str], ...] = ()

    def peak_bytes(self, kernels: str = "cpu") -> int:
        """``kernels``: the device ("cpu" or "cuda") whose fused kernels the run would use."""
        from i2v_nodes.runtime.memory.trace import peak_bytes

        return peak_bytes(self.fn, *self.args, repeat=self.repeat, kernels=kernels, **self.kwargs)


@dataclass(frozen=True)
class Keyframe:
    """An image the video must show at a frame other than the first (I2VSample's ``end_image`` is one at
    the last frame), prepared as the family prepares its start image."""

    image: Any  # PIL image
    frame: int  # 0-based output frame


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
    keyframes: tuple[Keyframe, ...] = ()  # images at later frames (the spec's ``keyframes`` says which)


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
    keyframes: tuple[Keyframe, ...] = ()


class StepCancelled(Exception):
    """Raised from a step callback to stop a pipeline that has no interrupt flag; carries the latents
    of the last finished step."""

    def __init__(self, latents: torch.Tensor) -> None:
        super().__init__("cancelled")
        self.latents = latents
