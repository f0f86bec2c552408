"""I2VSample: image + prompt to video frames, as ComfyUI IMAGE."""

from __future__ import annotations

from i2v_nodes import host
from i2v_nodes.families import registry
from i2v_nodes.families.contract.family import Family
from i2v_nodes.nodes import family_prose
from i2v_nodes.nodes._common import (
    CATEGORY,
    FRAMES_OPTIONS,
    MODEL_TYPE,
    OPTIONS_TYPE,
    SIZE_OPTIONS,
    node_errors,
)
from i2v_nodes.runtime import sampling


def _chunked(family: Family) -> bool:
    """Whether the family's VAE decodes a chunk of frames per call (2-D VAEs)."""
    return any(rules.chunked_decode for rules in family.spec.rules.values())


TIPS = {
    "model": "From VRAMGuard (recommended) or LoadI2VModel.",
    "image": "The first frame to animate. It is resized and centre-cropped to width x height, keeping its "
             "aspect. Several images give one clip per image and seed.",
    "negative_prompt": "What to avoid: a negative prompt against static or blurry output helps. Wan was "
                       "tuned with its own long (Chinese) default negative prompt; the Wan workflows use it.",
    "height": "Output height, a multiple of the model's step, like width. Link VRAMGuard's height here.",
    "seed": "Noise seed: the same seed and settings give the same frames.",
    "batch_size": "Clips per image, seeds seed, seed+1, ...; clip i is the same as a single run with seed+i.",
    "target_fps": "Frames per second the model is conditioned on (motion speed; LTX's frame rate), also "
                  "passed on as the video's fps and setting the sound's length. Keep it at 8 or more, or "
                  "motion stutters.",
}


def family_tips() -> dict[str, str]:
    """The tooltips that list the families or their rules, made from the registry when the node is
    described (a family registered later shows up too)."""
    option_nodes = family_prose.joined(family.spec.options_node for family in registry.REGISTERED
                                       if family.spec.options_node)
    return {
        "prompt": "What should happen: describe the motion and the scene, e.g. 'waves rolling onto the "
                  "beach, camera slowly panning'. "
                  f"{family_prose.titles(lambda f: not f.spec.takes_prompt)} takes no prompt and ignores it "
                  "(the report says so).",
        "width": "Output width, a multiple of the model's step: "
                 f"{family_prose.grouped(lambda r: r.size_multiple)} (anything else is refused with the "
                 "nearest valid values). Link VRAMGuard's width here.",
        "num_frames": f"Frames per clip, within the model's rule: {family_prose.frame_rules()}.",
        "steps": f"Denoising steps. Each model's own: {family_prose.defaults(lambda r: r.default_steps)}. "
                 "With a step-distill LoRA 4-8; fewer is a fast preview. Past 60 quality barely improves.",
        "guidance_scale": "How strongly to follow the prompt. Each model's own: "
                          f"{family_prose.defaults(lambda r: r.default_guidance)}. Higher distorts. 1 or "
                          "less turns guidance off (twice as fast, follows the prompt less).",
        "decode_chunk_size": f"Frames decoded per VAE call ({family_prose.titles(_chunked)}). 0 = as "
                             "VRAMGuard planned (the largest chunk that costs no extra peak memory). Lower "
                             "saves memory, higher is a little faster. The 3-D VAEs "
                             f"({family_prose.titles(lambda family: not _chunked(family))}) decode frame by "
                             "frame already and ignore it; VAE tiling saves their memory.",
        "options": "Optional settings only some model families have, from their option node "
                   f"({option_nodes}), speed settings from I2VSpeedOptions (CFG truncation, step "
                   "caches, compile, attention) and the sampler from I2VSamplerOptions. Options for another "
                   "family than the model's are refused.",
        "end_image": "Optional: the last frame the video should reach (first-last-frame). Resized and "
                     "centre-cropped to width x height exactly as image is, so its size may differ. Several "
                     "end images pair with the images in order (or one serves them all). Models that take "
                     f"one: {sampling.capable_models()}; the others refuse it.",
    }


DEFAULT_NEGATIVE = "Distorted, discontinuous, ugly, blurry, low resolution, motionless, static"

# the widgets I2VSample and I2VExtend share, declared once (each node gives its own tooltips)
SHARED_WIDGETS = {
    "prompt": ("STRING", {"multiline": True, "default": ""}),
    "negative_prompt": ("STRING", {"multiline": True, "default": DEFAULT_NEGATIVE}),
    "steps": ("INT", {"default": 40, "min": 1, "max": 200}),
    "guidance_scale": ("FLOAT", {"default": 9.0, "min": 0.0, "max": 100.0, "step": 0.1}),
    "seed": ("INT", {"default": 0, "min": 0, "max": sampling.MAX_SEED, "control_after_generate": True}),
    "target_fps": ("INT", {"default": 8, "min": 1, "max": 240}),
}


def shared_widgets(tip: dict[str, str], *names: str) -> dict[str, tuple[str, dict]]:
    """``names`` of :data:`SHARED_WIDGETS`, in that order, each with its tooltip from ``tip``."""
    found = {}
    for name in names:
        kind, options = SHARED_WIDGETS[name]
        found[name] = (kind, {**options, "tooltip": tip[name]})
    return found


class I2VSample:
    DESCRIPTION = (
        "Turns an image and a prompt into video frames with the model's stock diffusers pipeline "
        f"({family_prose.families()}), with per-step progress and cancel. Same "
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
        f"without sound ({family_prose.titles(lambda f: not f.spec.makes_sound)}) give silence of each "
        "clip's length.",
    )

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 - ComfyUI's name
        tip = {**TIPS, **family_tips()}
        return {
            "required": {
                "model": (MODEL_TYPE, {"tooltip": tip["model"]}),
                "image": ("IMAGE", {"tooltip": tip["image"]}),
                **shared_widgets(tip, "prompt", "negative_prompt"),
                "width": ("INT", {**SIZE_OPTIONS, "tooltip": tip["width"]}),
                "height": ("INT", {**SIZE_OPTIONS, "tooltip": tip["height"]}),
                "num_frames": ("INT", {**FRAMES_OPTIONS, "tooltip": tip["num_frames"]}),
                **shared_widgets(tip, "steps", "guidance_scale", "seed"),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": sampling.MAX_BATCH,
                                       "tooltip": tip["batch_size"]}),
                **shared_widgets(tip, "target_fps"),
                "decode_chunk_size": ("INT", {"default": 0, "min": 0, "max": sampling.MAX_FRAMES,
                                              "tooltip": tip["decode_chunk_size"]}),
            },
            "optional": {
                "options": (OPTIONS_TYPE, {"tooltip": tip["options"]}),
                "end_image": ("IMAGE", {"tooltip": tip["end_image"]}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def sample(self, model, image, prompt, negative_prompt, width, height, num_frames, steps, guidance_scale,
               seed, batch_size, target_fps, decode_chunk_size, options=None, end_image=None, unique_id=None):
        with node_errors("I2VSample", unique_id):
            settings = sampling.SampleSettings(prompt, negative_prompt, width, height, num_frames, steps,
                                               float(guidance_scale), seed, batch_size, target_fps,
                                               decode_chunk_size, options)
            result = sampling.sample(model, image, settings, host.services(), end_images=end_image)
        return (result.frames, result.fps, result.frames_per_clip, result.audio)
