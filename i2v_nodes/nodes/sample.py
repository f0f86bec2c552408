"""I2VSample: image + prompt to video frames, as ComfyUI IMAGE."""

from __future__ import annotations

from i2v_nodes import host
from i2v_nodes.nodes._common import (
    CATEGORY,
    FRAMES_OPTIONS,
    MODEL_TYPE,
    OPTIONS_TYPE,
    SIZE_OPTIONS,
    node_errors,
)
from i2v_nodes.runtime import sampling

TIPS = {
    "model": "From VRAMGuard (recommended) or LoadI2VModel.",
    "image": "The first frame to animate. It is resized and centre-cropped to width x height, keeping its "
             "aspect. Several images give one clip per image and seed.",
    "prompt": "What should happen: describe the motion and the scene, e.g. 'waves rolling onto the beach, "
              "camera slowly panning'. SVD takes no prompt and ignores it (the report says so).",
    "negative_prompt": "What to avoid: a negative prompt against static or blurry output helps. Wan was "
                       "tuned with its own long (Chinese) default negative prompt; the Wan workflows use it.",
    "width": "Output width, a multiple of the model's step: 8 for I2VGen-XL, 16 for Wan, 32 for Wan 2.2 5B "
             "and LTX "
             "(anything else is refused with the nearest valid values). Link VRAMGuard's width here.",
    "height": "Output height, a multiple of the model's step, like width. Link VRAMGuard's height here.",
    "num_frames": "Frames per clip, within the model's rule: I2VGen-XL any count (trained on 16); Wan 4k+1, "
                  "e.g. 33, 49, 81 (trained on 81; 121 for Wan 2.2 5B); LTX 8k+1, e.g. 97, 121; SVD any "
                  "count (trained on 14; 25 for XT).",
    "steps": "Denoising steps. I2VGen-XL: 30 is a fast preview, 40-50 standard. Wan: 40 (A14B, 2.1), 50 "
             "(5B); with a step-distill LoRA 4-8. LTX: 40; the distilled LTX-Video 8. Past 60 quality barely "
             "improves.",
    "guidance_scale": "How strongly to follow the prompt. I2VGen-XL 7-11; Wan 3.5-5; LTX 3 (distilled: 1); "
                      "SVD 2.5-3 (the last frame's guidance). "
                      "Higher distorts. 1 or "
                      "less turns guidance off (twice as fast, follows the prompt less).",
    "seed": "Noise seed: the same seed and settings give the same frames.",
    "batch_size": "Clips per image, seeds seed, seed+1, ...; clip i is the same as a single run with seed+i.",
    "target_fps": "Frames per second the model is conditioned on (motion speed; LTX's frame rate), also "
                  "passed on as the video's fps and setting the sound's length. Keep it at 8 or more, or "
                  "motion stutters.",
    "decode_chunk_size": "Frames decoded per VAE call (I2VGen-XL). 0 = as VRAMGuard planned (the largest "
                         "chunk that costs no extra peak memory). Lower saves memory, higher is a little "
                         "faster. Wan's 3-D VAE decodes frame by frame already and ignores it; VAE tiling "
                         "saves its memory.",
    "options": "Optional settings only some model families have, from an option node such as "
               "WanOptions (guidance for Wan 2.2's second expert, boundary ratio, flow shift), "
               "LTXVideoOptions or LTX2Options, and speed settings from I2VSpeedOptions (CFG truncation). "
               "Options for another family than the model's are refused.",
}
DEFAULT_NEGATIVE = "Distorted, discontinuous, ugly, blurry, low resolution, motionless, static"


class I2VSample:
    DESCRIPTION = (
        "Turns an image and a prompt into video frames with the model's stock diffusers pipeline "
        "(I2VGen-XL, Wan 2.1 / 2.2, LTX-Video, LTX-2 with sound), with per-step progress and cancel. Same "
        "seed, same frames. Outputs ComfyUI IMAGE frames (every clip of the batch, one after another), so "
        "savers and upscalers work on them; EncodeVideo makes the video file."
    )
    CATEGORY = CATEGORY
    FUNCTION = "sample"
    RETURN_TYPES = ("IMAGE", "FLOAT", "INT", "AUDIO")
    RETURN_NAMES = ("frames", "fps", "frames_per_clip", "audio")
    OUTPUT_TOOLTIPS = (
        "All frames of all clips, [clips x frames, height, width, 3], values 0..1.",
        "The target fps, for EncodeVideo.",
        "Frames in one clip, so EncodeVideo can write one file per clip.",
        "The clips' sound (ComfyUI AUDIO, one entry per clip), for EncodeVideo or SaveAudio. Models "
        "without sound (I2VGen-XL, Wan) give silence of each clip's length.",
    )

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 - ComfyUI's name
        return {
            "required": {
                "model": (MODEL_TYPE, {"tooltip": TIPS["model"]}),
                "image": ("IMAGE", {"tooltip": TIPS["image"]}),
                "prompt": ("STRING", {"multiline": True, "default": "", "tooltip": TIPS["prompt"]}),
                "negative_prompt": ("STRING", {"multiline": True, "default": DEFAULT_NEGATIVE,
                                               "tooltip": TIPS["negative_prompt"]}),
                "width": ("INT", {**SIZE_OPTIONS, "tooltip": TIPS["width"]}),
                "height": ("INT", {**SIZE_OPTIONS, "tooltip": TIPS["height"]}),
                "num_frames": ("INT", {**FRAMES_OPTIONS, "tooltip": TIPS["num_frames"]}),
                "steps": ("INT", {"default": 40, "min": 1, "max": 200, "tooltip": TIPS["steps"]}),
                "guidance_scale": ("FLOAT", {"default": 9.0, "min": 0.0, "max": 100.0, "step": 0.1,
                                             "tooltip": TIPS["guidance_scale"]}),
                "seed": ("INT", {"default": 0, "min": 0, "max": sampling.MAX_SEED,
                                 "control_after_generate": True, "tooltip": TIPS["seed"]}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": sampling.MAX_BATCH,
                                       "tooltip": TIPS["batch_size"]}),
                "target_fps": ("INT", {"default": 8, "min": 1, "max": 240, "tooltip": TIPS["target_fps"]}),
                "decode_chunk_size": ("INT", {"default": 0, "min": 0, "max": sampling.MAX_FRAMES,
                                              "tooltip": TIPS["decode_chunk_size"]}),
            },
            "optional": {
                "options": (OPTIONS_TYPE, {"tooltip": TIPS["options"]}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def sample(self, model, image, prompt, negative_prompt, width, height, num_frames, steps, guidance_scale,
               seed, batch_size, target_fps, decode_chunk_size, options=None, unique_id=None):
        with node_errors("I2VSample", unique_id):
            settings = sampling.SampleSettings(prompt, negative_prompt, width, height, num_frames, steps,
                                               float(guidance_scale), seed, batch_size, target_fps,
                                               decode_chunk_size, options)
            result = sampling.sample(model, image, settings, host.services())
        return (result.frames, result.fps, result.frames_per_clip, result.audio)
