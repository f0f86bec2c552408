"""Stand-ins for ``comfy_api.input`` / ``input_impl`` / ``util``: the VIDEO type of the core video nodes.

A video is a :class:`VideoInput`: frames (IMAGE, B x H x W x C in 0..1), a frame rate, and
optionally audio (``{"waveform": B x C x T, "sample_rate": int}``). :class:`VideoFromComponents`
holds them in memory and :class:`VideoFromFile` reads them from a file, both through PyAV.
``ImageInput``, ``MaskInput`` and ``LatentInput`` are torch types, imported only when asked for.
"""

from __future__ import annotations

import io
import json
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from typing import Any, TypedDict


class VideoCodec(str, Enum):
    AUTO = "auto"
    H264 = "h264"

    @classmethod
    def as_input(cls) -> list[str]:
        return [member.value for member in cls]


class VideoContainer(str, Enum):
    AUTO = "auto"
    MP4 = "mp4"

    @classmethod
    def as_input(cls) -> list[str]:
        return [member.value for member in cls]

    @classmethod
    def get_extension(cls, value: str | VideoContainer) -> str:
        return "mp4" if cls(value) in (cls.MP4, cls.AUTO) else ""


class AudioInput(TypedDict):
    waveform: Any  # torch.Tensor, B x C x T
    sample_rate: int


@dataclass
class VideoComponents:
    images: Any  # torch.Tensor, B x H x W x C
    frame_rate: Fraction
    audio: AudioInput | None = None
    metadata: dict[str, Any] | None = None


class VideoInput(ABC):
    @abstractmethod
    def get_components(self) -> VideoComponents: ...

    @abstractmethod
    def save_to(
        self,
        path: str,
        format: Any = VideoContainer.AUTO,
        codec: Any = VideoCodec.AUTO,  # noqa: A002
        metadata: dict[str, Any] | None = None,
    ) -> None: ...

    def get_stream_source(self) -> str | io.BytesIO:
        buffer = io.BytesIO()
        self.save_to(buffer)  # type: ignore[arg-type]
        buffer.seek(0)
        return buffer

    def get_dimensions(self) -> tuple[int, int]:
        images = self.get_components().images
        return images.shape[2], images.shape[1]

    def get_duration(self) -> float:
        components = self.get_components()
        return components.images.shape[0] / float(components.frame_rate)

    def get_container_format(self) -> str:
        return "mp4"


class VideoFromComponents(VideoInput):
    def __init__(self, components: VideoComponents):
        self.components = components

    def get_components(self) -> VideoComponents:
        return self.components

    def save_to(
        self,
        path: Any,
        format: Any = VideoContainer.AUTO,
        codec: Any = VideoCodec.AUTO,  # noqa: A002
        metadata: dict[str, Any] | None = None,
    ) -> None:
        import av
        import torch

        if VideoContainer(format) not in (VideoContainer.AUTO, VideoContainer.MP4):
            raise ValueError("only MP4 format is supported for now")
        if VideoCodec(codec) not in (VideoCodec.AUTO, VideoCodec.H264):
            raise ValueError("only H264 codec is supported for now")
        images = self.components.images
        with av.open(path, mode="w", format="mp4", options={"movflags": "use_metadata_tags"}) as output:
            for key, value in (metadata or {}).items():
                output.metadata[key] = json.dumps(value)
            rate = Fraction(round(self.components.frame_rate * 1000), 1000)
            stream = output.add_stream("h264", rate=rate)
            stream.width, stream.height = images.shape[2], images.shape[1]
            stream.pix_fmt = "yuv420p"
            for frame in images:
                pixels = torch.clamp(frame[..., :3] * 255, 0, 255).to(torch.uint8).cpu().numpy()
                output.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
            output.mux(stream.encode(None))
            if self.components.audio is not None:
                _write_audio(output, self.components.audio)


def _write_audio(output: Any, audio: AudioInput) -> None:
    import av

    waveform = audio["waveform"][0].float().cpu()  # C x T
    stream = output.add_stream("aac", rate=audio["sample_rate"])
    frame = av.AudioFrame.from_ndarray(
        waveform.movedim(0, 1).reshape(1, -1).numpy(),
        format="flt",
        layout="mono" if waveform.shape[0] == 1 else "stereo",
    )
    frame.sample_rate = audio["sample_rate"]
    frame.pts = 0
    output.mux(stream.encode(frame))
    output.mux(stream.encode(None))


class VideoFromFile(VideoInput):
    def __init__(self, file: str | io.BytesIO):
        self.file = file

    def get_stream_source(self) -> str | io.BytesIO:
        if isinstance(self.file, io.BytesIO):
            self.file.seek(0)
        return self.file

    def _open(self) -> Any:
        import av

        return av.open(self.get_stream_source(), mode="r")

    def get_dimensions(self) -> tuple[int, int]:
        with self._open() as container:
            stream = container.streams.video[0]
            return stream.width, stream.height

    def get_duration(self) -> float:
        with self._open() as container:
            if container.duration is not None:
                return float(container.duration / 1_000_000)
            stream = container.streams.video[0]
            return float(stream.frames / stream.average_rate) if stream.average_rate else 0.0

    def get_container_format(self) -> str:
        with self._open() as container:
            return container.format.name

    def get_components(self) -> VideoComponents:
        import torch

        with self._open() as container:
            stream = container.streams.video[0]
            frames = [torch.from_numpy(f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
            rate = Fraction(stream.average_rate or 1)
        images = torch.stack(frames).float() / 255.0 if frames else torch.zeros(0, 0, 0, 3)
        return VideoComponents(images=images, frame_rate=rate, metadata=None)

    def save_to(
        self,
        path: Any,
        format: Any = VideoContainer.AUTO,
        codec: Any = VideoCodec.AUTO,  # noqa: A002
        metadata: dict[str, Any] | None = None,
    ) -> None:
        source = self.get_stream_source()
        plain = VideoContainer(format) == VideoContainer.AUTO and VideoCodec(codec) == VideoCodec.AUTO
        if plain and not metadata and isinstance(source, str) and isinstance(path, str):
            shutil.copyfile(source, path)
            return
        VideoFromComponents(self.get_components()).save_to(path, format, codec, metadata)


def __getattr__(name: str) -> Any:
    # The tensor types need torch: imported when a pack asks for them, not with the host.
    if name in ("ImageInput", "MaskInput", "LatentInput"):
        import torch

        return dict if name == "LatentInput" else torch.Tensor
    raise AttributeError(name)
