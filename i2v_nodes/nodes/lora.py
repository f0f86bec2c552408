"""I2VLoRA: add a LoRA to a model handle (chainable); the weights apply on the cached model at run time."""

from __future__ import annotations

from i2v_nodes import host
from i2v_nodes.errors import InputError
from i2v_nodes.nodes._common import CATEGORY, MODEL_TYPE, node_errors
from i2v_nodes.runtime.loading import lora

LORA_FOLDER = "loras"  # ComfyUI's own LoRA folder

TIPS = {
    "model": "The model handle from LoadI2VModel (or from another I2VLoRA: chain nodes for several LoRAs). "
             "Nothing loads here.",
    "lora_name": "A LoRA file (.safetensors only) from ComfyUI's loras folder, for this model's family: the "
                 "diffusers format or the ComfyUI/kohya-style keys diffusers converts (e.g. lightx2v's Wan "
                 "step-distill LoRAs). A file for another model is refused naming its keys.",
    "strength": "How much of the LoRA to add, -4 to 4. 0 = off (exactly the model without it); 1 = as "
                "trained; negative values push away from it. Changing it never reloads the base model.",
    "target": "Which denoiser of a two-expert model (Wan 2.2 A14B) gets the LoRA: both, high_noise (the "
              "first expert, early steps) or low_noise (the second, late steps). One-denoiser models take "
              "'both' only.",
}


class I2VLoRA:
    DESCRIPTION = (
        "Adds a LoRA to the model, at a strength, on one or both experts. Chain several for several LoRAs. "
        "The base weights stay loaded: adding, removing or re-weighting LoRAs only changes small adapters on "
        "the cached model before the next run, and removing them gives back the base model's exact output."
    )
    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The model with this LoRA added: connect it to VRAMGuard, I2VSample or another "
                       "I2VLoRA.",)

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 - ComfyUI's name
        return {
            "required": {
                "model": (MODEL_TYPE, {"tooltip": TIPS["model"]}),
                "lora_name": (host.model_files(LORA_FOLDER), {"tooltip": TIPS["lora_name"]}),
                "strength": ("FLOAT", {"default": 1.0, "min": -lora.MAX_STRENGTH, "max": lora.MAX_STRENGTH,
                                       "step": 0.05, "tooltip": TIPS["strength"]}),
                "target": (lora.TARGETS, {"default": "both", "tooltip": TIPS["target"]}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, lora_name=None, **_inputs):  # noqa: N802 - ComfyUI's name
        """A file replaced under the same name re-runs the node (its identity is in the handle)."""
        path = host.model_file_path(LORA_FOLDER, lora_name) if isinstance(lora_name, str) else None
        if path is None:
            return ""
        stat = path.stat()
        return f"{path}@{stat.st_size}:{stat.st_mtime_ns}"

    def apply(self, model, lora_name, strength, target, unique_id=None):
        with node_errors("I2VLoRA", unique_id):
            lora.check_request(model.roles.denoisers, strength, target)
            path = host.model_file_path(LORA_FOLDER, lora_name)
            if path is None:
                raise InputError("lora_name", f"no LoRA named {lora_name!r} in the {LORA_FOLDER} folder")
            header = lora.check_file(path)
            spec = lora.LoraSpec(str(path), float(strength), target, header.identity)
        return (model.with_lora(spec),)
