"""ComfyUI's AUDIO values: checked, fitted to a clip's exact duration, and written as raw PCM for ffmpeg.

An AUDIO value is ComfyUI's own type, ``{"waveform": tensor [batch, channels, samples], "sample_rate":
int}``, so audio from any node (LoadAudio, a family that makes sound) works. A batch of one goes with
every clip; otherwise the batch has one entry per clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from i2v_nodes.errors import InputError

SILENCE_RATE = 48000  # the sample rate of the silent track families without sound give


@dataclass(frozen=True)
class ClipAudio:
    """One clip's sound: [channels, samples] float32 on the CPU, fitted to the clip's duration."""

    waveform: torch.Tensor
    sample_rate: int
    note: str = ""  # what fitting did: "" when the length was already exact

    @property
    def channels(self) -> int:
        return self.waveform.shape[0]

    def write_pcm(self, path: Path) -> None:
        """Interleaved 32-bit float little-endian samples, ffmpeg's ``f32le``."""
        path.write_bytes(self.waveform.t().contiguous().numpy().astype("<f4").tobytes())


def check_audio(audio: Any, input_name: str = "audio") -> tuple[torch.Tensor, int]:
    """The waveform [batch, channels, samples] (float32, CPU) and sample rate, or an InputError."""
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise InputError(input_name, "expected ComfyUI's AUDIO ({'waveform': tensor, 'sample_rate': int}), "
                                     f"got {type(audio).__name__}")
    waveform, rate = audio["waveform"], audio["sample_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        raise InputError(input_name, f"the sample rate must be a positive number, got {rate!r}")
    if not isinstance(waveform, torch.Tensor) or waveform.dim() not in (2, 3):
        shape = list(waveform.shape) if isinstance(waveform, torch.Tensor) else type(waveform).__name__
        raise InputError(input_name, f"expected a waveform [batch, channels, samples], got {shape}")
    if waveform.dim() == 2:
        waveform = waveform.unsqueeze(0)
    if min(waveform.shape) == 0:
        raise InputError(input_name, f"the audio is empty: waveform {list(waveform.shape)}")
    waveform = waveform.detach().to("cpu", torch.float32)
    if not torch.isfinite(waveform).all():
        raise InputError(input_name, "the audio holds NaN or infinite samples")
    return waveform, int(round(rate))


def for_clips(audio: Any, clips: int, seconds: float, input_name: str = "audio") -> list[ClipAudio]:
    """Each clip's sound, cut or padded with silence to ``seconds`` exactly."""
    waveform, rate = check_audio(audio, input_name)
    if waveform.shape[0] not in (1, clips):
        raise InputError(input_name, f"the audio batch has {waveform.shape[0]} entries for {clips} clips: "
                                     "give one for all clips, or one per clip")
    target = max(1, round(seconds * rate))
    return [_fit(waveform[min(i, waveform.shape[0] - 1)], rate, target) for i in range(clips)]


def _fit(waveform: torch.Tensor, rate: int, target: int) -> ClipAudio:
    samples = waveform.shape[-1]
    if samples > target:
        return ClipAudio(waveform[:, :target], rate, f"cut {(samples - target) / rate:.2f} s of audio")
    if samples < target:
        padded = torch.nn.functional.pad(waveform, (0, target - samples))
        return ClipAudio(padded, rate, f"padded the audio with {(target - samples) / rate:.2f} s of silence")
    return ClipAudio(waveform, rate)


def silence(clips: int, seconds: float, sample_rate: int = SILENCE_RATE) -> dict[str, Any]:
    """A silent AUDIO value, one mono track of ``seconds`` per clip (what a family without sound gives)."""
    samples = max(1, round(seconds * sample_rate))
    return {"waveform": torch.zeros(clips, 1, samples), "sample_rate": sample_rate}


def join_clips(sounds: list[dict[str, Any] | None], seconds: float) -> dict[str, Any]:
    """One AUDIO value for a run's clips: each family-made sound fitted to the clip's ``seconds``, or
    silence for a family without sound (``None`` entries). Clips with sound share one sample rate and
    channel count (one model made them)."""
    if all(sound is None for sound in sounds):
        return silence(len(sounds), seconds)
    fitted = [for_clips(sound, 1, seconds, "audio")[0] for sound in sounds if sound is not None]
    if len(fitted) != len(sounds) or len({(a.sample_rate, a.channels) for a in fitted}) != 1:
        raise ValueError("a run's clips must all have sound, at one sample rate and channel count")
    return {"waveform": torch.stack([a.waveform for a in fitted]), "sample_rate": fitted[0].sample_rate}
