"""I2VExtend: a clip continued for more segments, one IMAGE batch (and one AUDIO) of the whole video."""

from __future__ import annotations

from i2v_nodes import host
from i2v_nodes.nodes import family_prose
from i2v_nodes.nodes._common import CATEGORY, FRAMES_OPTIONS, MODEL_TYPE, OPTIONS_TYPE, node_errors
from i2v_nodes.nodes.sample import TIPS, family_tips, shared_widgets
from i2v_nodes.runtime import sampling
from i2v_nodes.runtime.sampling.extend import ExtendSettings, extend
from i2v_nodes.runtime.sampling.extend_checks import MAX_SEGMENTS, video_conditioned


def _video_conditioned() -> str:
    return family_prose.joined(video_conditioned()) or "none"


def extend_tips() -> dict[str, str]:
    sample = {**TIPS, **family_tips()}
    return {
        "model": sample["model"] + " Plan one segment (num_frames) with VRAMGuard.",
        "frames": "The clip to continue (I2VSample's frames: the whole batch is taken as one clip). The "
                  "segments are made at its size, and it opens the output.",
        "prompt": sample["prompt"] + " The same prompt steers every segment.",
        "negative_prompt": sample["negative_prompt"],
        "num_frames": "Frames per segment, overlap included, within the model's rule: "
                      f"{family_prose.frame_rules()}. Each segment adds num_frames - overlap frames.",
        "steps": sample["steps"],
        "guidance_scale": sample["guidance_scale"],
        "seed": "Noise seed: segment i draws from a seed derived from this one, so the same seed and "
                "settings give the same video, and no segment repeats the noise of the clip it continues.",
        "segments": f"How many segments to add (1 to {MAX_SEGMENTS}). Time grows with each; RAM with the "
                    "frames kept (checked before any work).",
        "overlap": "Frames of the video so far each segment continues from; they are not repeated in the "
                   f"output. Models with video conditioning ({_video_conditioned()}) take 8k+1 frames "
                   "(1, 9, 17, ...): more frames carry the motion on. The others continue from the last "
                   "frame as their image: 1. 0 = the model's own (9 with video conditioning, else 1).",
        "target_fps": sample["target_fps"],
        "color_match": "Match each segment's colours to the clip given (each channel's histogram, with "
                       "scikit-image) before the next continues from it, against the colour and contrast "
                       "drift that grows from segment to segment.",
        "options": sample["options"],
        "audio": "The sound of the clip given (I2VSample's audio), put before the segments' sound. Without "
                 "it the clip given is silent in the output.",
    }


class I2VExtend:
    DESCRIPTION = (
        "Continues a clip for more segments with the model's stock pipeline: each segment continues from "
        f"the last frames of the video so far (through the video conditioning of {_video_conditioned()}; "
        "from the last frame on the other models), with per-step progress over all segments and cancel. "
        "Outputs the whole video as one IMAGE batch, and its sound."
    )
    CATEGORY = CATEGORY
    FUNCTION = "extend"
    RETURN_TYPES = ("IMAGE", "FLOAT", "INT", "AUDIO")
    RETURN_NAMES = ("frames", "fps", "frames_per_clip", "audio")
    OUTPUT_TOOLTIPS = (
        "The whole video: the clip given, then each segment without its overlap, [frames, height, width, "
        "3], values 0..1.",
        "The target fps, for EncodeVideo.",
        "Frames in the whole video (one clip), for EncodeVideo.",
        "The whole video's sound (ComfyUI AUDIO): the clip's audio (or silence), then each segment's "
        "sound less the overlap, silence for models without sound.",
    )

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 - ComfyUI's name
        tip = extend_tips()
        return {
            "required": {
                "model": (MODEL_TYPE, {"tooltip": tip["model"]}),
                "frames": ("IMAGE", {"tooltip": tip["frames"]}),
                **shared_widgets(tip, "prompt", "negative_prompt"),
                "num_frames": ("INT", {**FRAMES_OPTIONS, "tooltip": tip["num_frames"]}),
                **shared_widgets(tip, "steps", "guidance_scale", "seed"),
                "segments": ("INT", {"default": 1, "min": 1, "max": MAX_SEGMENTS,
                                     "tooltip": tip["segments"]}),
                "overlap": ("INT", {"default": 0, "min": 0, "max": sampling.MAX_FRAMES,
                                    "tooltip": tip["overlap"]}),
                **shared_widgets(tip, "target_fps"),
                "color_match": ("BOOLEAN", {"default": True, "tooltip": tip["color_match"]}),
            },
            "optional": {
                "options": (OPTIONS_TYPE, {"tooltip": tip["options"]}),
                "audio": ("AUDIO", {"tooltip": tip["audio"]}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def extend(self, model, frames, prompt, negative_prompt, num_frames, steps, guidance_scale, seed,
               segments, overlap, target_fps, color_match, options=None, audio=None, unique_id=None):
        with node_errors("I2VExtend", unique_id):
            settings = sampling.SampleSettings(prompt, negative_prompt, num_frames=num_frames, steps=steps,
                                               guidance_scale=float(guidance_scale), seed=seed,
                                               target_fps=target_fps, options=options)
            more = ExtendSettings(segments=segments, overlap=overlap, color_match=bool(color_match))
            result = extend(model, frames, settings, more, host.services(), given_audio=audio)
        return (result.frames, result.fps, result.frames_per_clip, result.audio)
