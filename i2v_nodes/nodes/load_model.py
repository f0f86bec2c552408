"""LoadI2VModel: pick a model and how to run it; returns a light handle, not weights."""

from __future__ import annotations

from .. import host
from ..runtime import models
from ..runtime.precision import PRECISION_CHOICES, VAE_PRECISION_CHOICES
from ._common import CATEGORY, MODEL_TYPE, node_errors

TIPS = {
    "model": "tiny-i2vgen-xl: built-in test model (noise, no download). Folders with model_index.json under "
             "models/i2v or models/diffusers appear by folder name. ali-vilab/i2vgen-xl: the real model from "
             "the Hugging Face hub (about 5 GB to download in fp16; see allow_download).",
    "precision": "Weights dtype. auto = fp16 on CUDA (half the memory, faster) and fp32 on CPU (fp16 on CPU "
                 "is 3-30x slower). bf16 avoids fp16 overflow on Ampere and newer GPUs and is fast on recent "
                 "CPUs.",
    "vae_precision": "VAE dtype, separate from the rest. auto = fp32: the I2VGen-XL VAE can overflow in fp16 "
                     "and give black frames (the pack then retries that decode in fp32 once). It is small, "
                     "so fp32 costs little.",
    "device": "auto = ComfyUI's device (the GPU when there is one). cpu works everywhere, but a real model "
              "takes minutes per step there.",
    "offload": "Keep weights in system RAM and move them to the GPU when needed (CUDA only). model: one "
               "component at a time, little slowdown, saves 2-4 GB. group: one block at a time. sequential: "
               "one layer at a time, lowest memory, very slow. VRAMGuard's 'adapt' policy can pick this.",
    "allow_download": "Let a hub id download its weights (safetensors only) when it is not on this machine. "
                      "Off: a missing model is an error that says what to download and where to put it.",
}


class LoadI2VModel:
    DESCRIPTION = (
        "Chooses an image-to-video model (I2VGen-XL) and how to run it. Outputs a light handle: the "
        "weights load once per process, on first use, after VRAMGuard has checked that the run fits. "
        "tiny-i2vgen-xl is a built-in random-weight model for testing (its output is noise)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The model handle: connect it to VRAMGuard (or straight to I2VSample).",)

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 - ComfyUI's name
        return {
            "required": {
                "model": (models.list_model_names(host.model_dirs()), {"tooltip": TIPS["model"]}),
                "precision": (PRECISION_CHOICES, {"default": "auto", "tooltip": TIPS["precision"]}),
                "vae_precision": (VAE_PRECISION_CHOICES, {"default": "auto",
                                                          "tooltip": TIPS["vae_precision"]}),
                "device": (models.DEVICE_CHOICES, {"default": "auto", "tooltip": TIPS["device"]}),
                "offload": (models.OFFLOAD_CHOICES, {"default": "none", "tooltip": TIPS["offload"]}),
                "allow_download": ("BOOLEAN", {"default": False, "tooltip": TIPS["allow_download"]}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def load(self, model, precision, vae_precision, device, offload, allow_download, unique_id=None):
        with node_errors("LoadI2VModel", unique_id):
            options = models.LoadOptions(precision, vae_precision, device, offload, bool(allow_download))
            handle = models.open_model(model, options, host.model_dirs(), host.default_device())
        return (handle,)
