"""Feeding frames to an ffmpeg process: float 0..1 -> rgb24 one frame at a time, over a widened pipe.

ffmpeg runs in its own process, so while it encodes one frame Python converts the next; the pipe is
widened to hold a whole frame so a write returns at once instead of waiting for ffmpeg to drain it.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Iterable

import numpy as np
import torch

from i2v_nodes.errors import I2VError

logger = logging.getLogger(__name__)

_STDERR_TAIL_BYTES = 4000


class EncoderError(I2VError, RuntimeError):
    """ffmpeg failed; the message ends with the tail of its stderr."""


class _StderrTail:
    """Drains ffmpeg's stderr on a thread (so a chatty ffmpeg never blocks) and keeps the tail."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self._tail = b""
        self._thread = threading.Thread(target=self._drain, name="ffmpeg-stderr", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        for chunk in iter(lambda: self._stream.read(4096), b""):
            self._tail = (self._tail + chunk)[-_STDERR_TAIL_BYTES:]

    def text(self) -> str:
        self._thread.join(timeout=5)
        return self._tail.decode("utf-8", "replace").strip()


def _widen_pipe(stdin, frame_bytes: int) -> None:
    """Let the pipe hold a whole frame, so writing one returns at once and Python converts the next
    frame while ffmpeg reads this one (Linux only; elsewhere the default pipe size is kept)."""
    try:
        import fcntl

        set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
        if set_size is None:
            return
        with open("/proc/sys/fs/pipe-max-size") as limit_file:
            limit = int(limit_file.read())
        fcntl.fcntl(stdin.fileno(), set_size, min(limit, max(frame_bytes, 65536)))
    except (ImportError, OSError, ValueError):
        logger.debug("could not widen the ffmpeg pipe; encoding goes on with the default size")


class _FrameConverter:
    """float 0..1 frame -> rgb24 bytes, reusing two staging buffers (no per-frame allocation).

    This runs while ffmpeg encodes on the other core(s), so every pass counts: about 0.25 ms per
    512x512 frame on one core. The float->uint8 cast is numpy's, which is several times faster here
    than torch's ``copy_``.
    """

    def __init__(self, height: int, width: int) -> None:
        self._scaled = torch.empty((height, width, 3), dtype=torch.float32)
        self._scaled_array = self._scaled.numpy()  # shares memory with the tensor
        self._rgb24 = np.empty((height, width, 3), dtype=np.uint8)
        self._half = torch.tensor(0.5)
        self._view = memoryview(self._rgb24).cast("B")

    def __call__(self, frame: torch.Tensor) -> memoryview:
        # A no-op for CPU float32 frames; GPU or half-precision frames are moved/widened one at a time.
        frame = frame.to(device="cpu", dtype=torch.float32)
        # 0.5 + 255 * frame in one pass; adding 0.5 and then truncating in the cast rounds to nearest.
        torch.add(self._half, frame, alpha=255.0, out=self._scaled)
        # clamp handles out-of-range values and nan_to_num maps NaN to black, so the cast only ever
        # sees values in 0..255.
        self._scaled.clamp_(0.0, 255.0).nan_to_num_(0.0)
        np.copyto(self._rgb24, self._scaled_array, casting="unsafe")
        return self._view


def _write_all(stdin, data: memoryview) -> None:
    while data:
        written = stdin.write(data)
        data = data[written:]


def stream_to_ffmpeg(command: list[str], frames: torch.Tensor, order: Iterable[int]) -> None:
    """Run ``command`` and feed it ``frames[i]`` for i in ``order``; EncoderError if ffmpeg fails."""
    height, width = frames.shape[1], frames.shape[2]
    convert = _FrameConverter(height, width)
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, bufsize=0)
    stderr = _StderrTail(process.stderr)
    pipe_broke = False
    try:
        _widen_pipe(process.stdin, height * width * 3)
        try:
            for index in order:
                _write_all(process.stdin, convert(frames[index]))
            process.stdin.close()
        except BrokenPipeError:
            pipe_broke = True  # ffmpeg exited early; its exit code and stderr say why
        returncode = process.wait()
    finally:
        # Also reached on KeyboardInterrupt or a host's interrupt exception: never leave ffmpeg running.
        if process.poll() is None:
            process.kill()
            process.wait()
        if not process.stdin.closed:
            try:
                process.stdin.close()
            except BrokenPipeError:
                pass
    if returncode != 0 or pipe_broke:
        raise EncoderError(f"ffmpeg failed (exit code {returncode}): {stderr.text() or 'no message'}")
    stderr.text()
