"""VRAMGuard: check that a run fits in device memory before any heavy work, or adapt the plan."""

from __future__ import annotations

from i2v_nodes import host
from i2v_nodes.nodes import family_prose
from i2v_nodes.nodes._common import CATEGORY, FRAMES_OPTIONS, MODEL_TYPE, SIZE_OPTIONS, node_errors
from i2v_nodes.runtime import memory, sampling
from i2v_nodes.runtime.memory import guard

TIPS = {
    "model": "The model handle from LoadI2VModel; nothing is loaded until I2VSample runs.",
    "height": "Output height in pixels, a multiple of the model's step, like width.",
    "batch_size": "Clips per input image (seeds seed, seed+1, ...).",
    "policy": "error: stop before work if it does not fit, with advice. adapt: change memory options until "
              "it fits (reported). off: estimate and report only.",
    "headroom": "Fraction of the device's total memory (and of system RAM) kept free for other programs and "
                "estimate error. 0.10 = 10%.",
}


def family_tips() -> dict[str, str]:
    """The tooltips that list the families' rules, made from the registry when the node is described
    (a family registered later shows up too). I2VSample's width and num_frames say the same rules."""
    return {
        "width": "Output width in pixels, a multiple of the model's step "
                 f"({family_prose.grouped(lambda r: r.size_multiple)}). Memory grows with width x height.",
        "num_frames": f"Frames per clip, within the model's rule: {family_prose.frame_rules()}. More costs "
                      "memory about linearly; motion may drift past the trained length.",
    }


class VRAMGuard:
    DESCRIPTION = (
        "Estimates the peak device memory and system RAM of the run (from the model's real parameter sizes "
        "and its architecture traced at your resolution and frame count, with CFG) and compares them with "
        "what is free, before anything loads. error: stop with the largest settings that would fit. adapt: "
        "turn on memory options (decode chunking, VAE tiling, offload, sub-batches) until it fits; never "
        "changes resolution, frames or weight storage. off: just report. Link its INT outputs into "
        "I2VSample."
    )
    CATEGORY = CATEGORY
    FUNCTION = "guard"
    RETURN_TYPES = (MODEL_TYPE, "INT", "INT", "INT", "INT", "STRING")
    RETURN_NAMES = ("model", "width", "height", "num_frames", "batch_size", "report")
    OUTPUT_TOOLTIPS = (
        "The model with the memory plan attached; I2VSample runs with the planned options.",
        "Width, passed through: link it into I2VSample's width.",
        "Height, passed through: link it into I2VSample's height.",
        "Frame count, passed through: link it into I2VSample's num_frames.",
        "Clips per image, passed through: link it into I2VSample's batch_size.",
        "What the guard estimated, what it changed and why.",
    )

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 - ComfyUI's name
        tip = {**TIPS, **family_tips()}
        return {
            "required": {
                "model": (MODEL_TYPE, {"tooltip": tip["model"]}),
                "width": ("INT", {**SIZE_OPTIONS, "tooltip": tip["width"]}),
                "height": ("INT", {**SIZE_OPTIONS, "tooltip": tip["height"]}),
                "num_frames": ("INT", {**FRAMES_OPTIONS, "tooltip": tip["num_frames"]}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": sampling.MAX_BATCH,
                                       "tooltip": tip["batch_size"]}),
                "policy": (guard.POLICIES, {"default": "error", "tooltip": tip["policy"]}),
                "headroom": ("FLOAT", {"default": 0.10, "min": 0.0, "max": 0.9, "step": 0.01,
                                       "tooltip": tip["headroom"]}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def guard(self, model, width, height, num_frames, batch_size, policy, headroom, unique_id=None):
        with node_errors("VRAMGuard", unique_id):
            sampling.validate_shape(model, width, height, num_frames, batch_size)
            shape = memory.RunShape(width, height, num_frames, batch_size, cfg=True)
            services = host.services()
            held = sampling.default_cache().held_bytes(model.cache_key)
            budget = sampling.budget_for(model, services, float(headroom), held)
            plan = guard.plan_run(model, shape, policy, budget)
        return (model.with_plan(plan), width, height, num_frames, batch_size, plan.report)
