"""LoadI2VModel: pick a model and how to run it; returns a light handle, not weights."""

from __future__ import annotations

from i2v_nodes import host
from i2v_nodes.nodes import family_prose
from i2v_nodes.nodes._common import CATEGORY, MODEL_TYPE, node_errors
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.loading.precision import PRECISION_CHOICES, VAE_PRECISION_CHOICES, WEIGHTS_CHOICES

TIPS = {
    "vae_precision": "VAE dtype, separate from the rest. auto = fp32: video VAEs can overflow in fp16 and "
                     "give black frames (the pack then retries that decode in fp32 once). They are small, "
                     "so fp32 costs little.",
    "device": "auto = ComfyUI's device (the GPU when there is one). cpu works everywhere, but a real model "
              "takes minutes per step there.",
    "offload": "Keep weights in system RAM and move them to the GPU when needed (CUDA only). model: one "
               "component at a time, little slowdown, saves 2-4 GB. group: one block at a time. sequential: "
               "one layer at a time, lowest memory, very slow. VRAMGuard's 'adapt' policy can pick this.",
    "allow_download": "Let a hub id download its weights (safetensors only) when it is not on this machine. "
                      "Off: a missing model is an error that says what to download and where to put it.",
    "weights": "How the denoiser's weights are stored. default: in the precision above. fp8: "
               "float8_e4m3fn storage, computed in the precision above one layer at a time (diffusers' "
               "layerwise casting): half the memory of bf16, so a 14B Wan expert (28 GB in bf16) fits a "
               "24 GB card. Costs a little quality (fine detail, slight colour shifts) and some speed. "
               "Needs torch 2.1+ and a CUDA or CPU device (not MPS). VRAMGuard never turns it on by itself.",
}


def family_tips() -> dict[str, str]:
    """The tooltips that list the families or their rules, made from the registry when the node is
    described (a family registered later shows up too)."""
    return {
        "model": "tiny-*: built-in random-weight test models, one per model family (noise, no download). "
                 "Folders with model_index.json under models/i2v or models/diffusers appear by folder name. "
                 "Hub ids (Wan-AI/..., Lightricks/..., ali-vilab/i2vgen-xl) are the published models; see "
                 f"allow_download. The family ({family_prose.families()}) is recognised from the model's "
                 "files.",
        "precision": "Compute dtype. auto = the model's own on CUDA "
                     f"({family_prose.grouped(lambda rules: rules.default_precision)}); on a CPU bf16 where "
                     "the CPU computes it natively (AVX512-BF16 or AMX: about 3x faster than fp32), else "
                     "fp32 (fp16 on CPUs is 3-30x slower). fp32 gives the stock pipeline's fp32 output "
                     "exactly. bf16 avoids fp16 overflow on Ampere and newer GPUs.",
    }


def how_to_run_inputs(tips: dict[str, str]) -> tuple[dict, dict]:
    """The loaders' shared inputs: how to run the model (required ones, then the optional ones)."""
    required = {
        "precision": (PRECISION_CHOICES, {"default": "auto", "tooltip": tips["precision"]}),
        "vae_precision": (VAE_PRECISION_CHOICES, {"default": "auto", "tooltip": tips["vae_precision"]}),
        "device": (models.DEVICE_CHOICES, {"default": "auto", "tooltip": tips["device"]}),
        "offload": (models.OFFLOAD_CHOICES, {"default": "none", "tooltip": tips["offload"]}),
        "allow_download": ("BOOLEAN", {"default": False, "tooltip": tips["allow_download"]}),
    }
    optional = {"weights": (WEIGHTS_CHOICES, {"default": "default", "tooltip": tips["weights"]})}
    return required, optional


class LoadI2VModel:
    DESCRIPTION = (
        f"Chooses an image-to-video model ({family_prose.families()}) and how to run it. "
        "Outputs a light handle: the weights load once per process, on first use, after VRAMGuard has "
        "checked that the run fits. The tiny-* models are built-in random-weight models for testing (their "
        "output is noise)."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The model handle: connect it to VRAMGuard (or straight to I2VSample).",)

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 - ComfyUI's name
        tip = {**TIPS, **family_tips()}
        required, optional = how_to_run_inputs(tip)
        return {
            "required": {
                "model": (models.list_model_names(host.model_dirs()), {"tooltip": tip["model"]}),
                **required,
            },
            "optional": optional,
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def load(self, model, precision, vae_precision, device, offload, allow_download, weights="default",
             unique_id=None):
        with node_errors("LoadI2VModel", unique_id):
            options = models.LoadOptions(precision, vae_precision, device, offload, bool(allow_download),
                                         weights)
            handle = models.open_model(model, options, host.model_dirs(), host.default_device())
        return (handle,)
