"""The whole i2v graph on the tiny Wan 2.1 model, in API format: what the stub, serve, batch and
benchmark tests queue (LoadImage -> LoadI2VModel -> VRAMGuard -> I2VSample -> EncodeVideo)."""

from __future__ import annotations

from typing import Any


def tiny_wan_graph(image: str, prefix: str, *, steps: int = 2, seed: int = 3, target_fps: int = 16,
                   save_metadata: bool = True) -> dict[str, Any]:
    model = {"model": "tiny-wan2.1-i2v", "precision": "fp32", "vae_precision": "auto", "device": "auto",
             "offload": "none", "allow_download": False, "weights": "default"}
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "LoadI2VModel", "inputs": model},
        "3": {"class_type": "VRAMGuard", "inputs": {"model": ["2", 0], "width": 64, "height": 48,
                                                    "num_frames": 9, "batch_size": 1, "policy": "error",
                                                    "headroom": 0.1}},
        "4": {"class_type": "I2VSample", "inputs": {
            "model": ["3", 0], "image": ["1", 0], "prompt": "waves", "negative_prompt": "blurry",
            "width": ["3", 1], "height": ["3", 2], "num_frames": ["3", 3], "steps": steps,
            "guidance_scale": 5.0, "seed": seed, "batch_size": ["3", 4], "target_fps": target_fps,
            "decode_chunk_size": 0}},
        "5": {"class_type": "EncodeVideo", "inputs": {
            "frames": ["4", 0], "fps": ["4", 1], "frames_per_clip": ["4", 2], "format": "mp4-h264", "crf": 19,
            "filename_prefix": prefix, "loop_count": 0, "pingpong": False, "save_output": True,
            "save_metadata": save_metadata}},
    }
