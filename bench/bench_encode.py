"""P3 benchmark: ``save_clip`` against the bundled ffmpeg CLI encoding the same frames (P3a: and sound).

512x512, 64 frames (a moving gradient, float32 IMAGE tensor), mp4-h264 at the default crf. The CLI gets
the frames pre-converted to rgb24 in a file and runs the very same encoder arguments
(``build_ffmpeg_command``), so the difference is what our side adds: float->uint8 conversion, the pipe,
the temporary file and the publish step. Runs are interleaved and the median is reported.

With ``audio``, both mux the same stereo 44.1 kHz PCM as AAC: the CLI reads it from a raw f32le file,
ours gets ComfyUI's AUDIO and fits it to the clip first.

Run: ``python bench/bench_encode.py [repeats] [--audio]``; ``run(repeats, audio)`` returns the figures for
a bench runner.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from i2v_nodes.runtime.output import audio as audio_values  # noqa: E402
from i2v_nodes.runtime.output.video import (  # noqa: E402
    FORMATS,
    AudioInput,
    EncodeOptions,
    build_ffmpeg_command,
    clip_seconds,
    save_clip,
)

WIDTH = HEIGHT = 512
FRAME_COUNT = 64
FPS = 8.0
FORMAT = "mp4-h264"
TARGET_RATIO = 0.95


def moving_gradient(frame_count: int = FRAME_COUNT, height: int = HEIGHT, width: int = WIDTH) -> torch.Tensor:
    """[F, H, W, 3] float32 in 0..1: diagonal ramps that shift a little every frame."""
    ys = torch.linspace(0.0, 1.0, height).view(1, height, 1)
    xs = torch.linspace(0.0, 1.0, width).view(1, 1, width)
    ts = torch.linspace(0.0, 1.0, frame_count).view(frame_count, 1, 1)
    red = (xs + ts) % 1.0
    green = (ys + 0.5 * ts) % 1.0
    blue = ((xs + ys) / 2 + 0.25 * ts) % 1.0
    return torch.stack(
        [red.expand(-1, height, -1), green.expand(-1, -1, width), blue.expand(frame_count, height, width)],
        dim=-1,
    ).contiguous()


SAMPLE_RATE = 44100


def stereo_tone(seconds: float) -> dict:
    """ComfyUI AUDIO: two sine tones, a little longer than the clip (so ours cuts it, as in use)."""
    t = torch.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = torch.stack([torch.sin(2 * torch.pi * 220 * t), torch.sin(2 * torch.pi * 330 * t)]) * 0.3
    return {"waveform": wave.unsqueeze(0), "sample_rate": SAMPLE_RATE}


def _time_ours(frames: torch.Tensor, out_dir: Path, options: EncodeOptions, sound: dict | None) -> float:
    start = time.perf_counter()
    clip_audio = None
    if sound is not None:
        (clip_audio,) = audio_values.for_clips(sound, 1, clip_seconds(frames.shape[0], options))
    saved = save_clip(frames, out_dir, "bench/ours", options, clip_audio)
    elapsed = time.perf_counter() - start
    saved.path.unlink()
    return elapsed


def _time_cli(
    raw_file: Path, out_dir: Path, options: EncodeOptions, index: int, pcm: AudioInput | None
) -> float:
    output = out_dir / f"cli_{index:03}.mp4"
    command = build_ffmpeg_command(
        FORMATS[FORMAT], options, WIDTH, HEIGHT, output, input_url=str(raw_file), audio=pcm
    )
    start = time.perf_counter()
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    output.unlink()
    return elapsed


def run(repeats: int = 5, audio: bool = False) -> dict:
    """Median seconds for ours and the CLI, and ratio = our speed / CLI speed (target >= 0.95)."""
    torch.set_num_threads(1)
    frames = moving_gradient()
    options = EncodeOptions(fps=FPS, format=FORMAT)
    seconds = clip_seconds(frames.shape[0], options)
    sound = stereo_tone(seconds + 1.0) if audio else None
    with tempfile.TemporaryDirectory(prefix="i2v-bench-") as tmp:
        out_dir = Path(tmp)
        raw_file = out_dir / "frames.rgb24"
        raw_file.write_bytes(frames.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).numpy().tobytes())
        pcm = None
        if sound is not None:  # the CLI gets the clip's PCM ready-made
            (fitted,) = audio_values.for_clips(sound, 1, seconds)
            fitted.write_pcm(out_dir / "sound.f32le")
            pcm = AudioInput(out_dir / "sound.f32le", SAMPLE_RATE, 2)
        _time_ours(frames, out_dir, options, sound)  # warm-up: page cache, ffmpeg binary, torch kernels
        _time_cli(raw_file, out_dir, options, 0, pcm)
        ours, cli = [], []
        for index in range(repeats):
            # Alternate which goes first so drifting machine load hits both sides alike.
            if index % 2:
                cli.append(_time_cli(raw_file, out_dir, options, index, pcm))
                ours.append(_time_ours(frames, out_dir, options, sound))
            else:
                ours.append(_time_ours(frames, out_dir, options, sound))
                cli.append(_time_cli(raw_file, out_dir, options, index, pcm))
    ours_s, cli_s = statistics.median(ours), statistics.median(cli)
    return {
        "name": "encode_mp4_h264_512x512x64" + ("_aac_stereo" if audio else ""),
        "repeats": repeats,
        "ours_s": ours_s,
        "ffmpeg_cli_s": cli_s,
        "ratio": cli_s / ours_s,  # speeds are inverse times
        "target_ratio": TARGET_RATIO,
        "ours_all_s": ours,
        "ffmpeg_cli_all_s": cli,
    }


def main() -> None:
    numbers = [arg for arg in sys.argv[1:] if arg.isdigit()]
    result = run(int(numbers[0]) if numbers else 5, audio="--audio" in sys.argv)

    def runs(key: str) -> str:
        return ", ".join(f"{seconds:.3f}" for seconds in result[key])

    print(f"save_clip     median {result['ours_s']:.3f} s  (runs: {runs('ours_all_s')})")
    print(f"ffmpeg CLI    median {result['ffmpeg_cli_s']:.3f} s  (runs: {runs('ffmpeg_cli_all_s')})")
    verdict = "meets" if result["ratio"] >= TARGET_RATIO else "misses"
    print(
        f"ratio ours-speed / ffmpeg-CLI-speed = {result['ratio']:.3f} ({verdict} the {TARGET_RATIO} target)"
    )


if __name__ == "__main__":
    main()
