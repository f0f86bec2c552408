"""LoadI2VModelFiles: the single files ComfyUI users already have (ComfyUI's UNETLoader, CLIPLoader,
VAELoader and CLIPVisionLoader in one node); returns the same light handle as LoadI2VModel."""

from __future__ import annotations

from .. import host
from ..runtime import models
from ..runtime.errors import InputError
from ..runtime.families.base import FILE_FOLDERS
from ._common import CATEGORY, MODEL_TYPE, node_errors
from .load_model import TIPS as LOAD_TIPS
from .load_model import how_to_run_inputs

NONE = "none"

OPTIONAL_SLOTS = ("diffusion_model_2", "clip_vision")  # "none" is a choice, and the default

TIPS = {
    "diffusion_model": "The video model file, from ComfyUI's models/diffusion_models (UNETLoader's list). "
    "Wan 2.2 A14B: the high-noise expert here. Wan 2.1 I2V 480p/720p, Wan 2.2 I2V A14B "
    "and TI2V-5B are recognised from the file itself, in bf16, fp16, fp8_e4m3fn or "
    "ComfyUI's fp8_scaled. fp8 files stay fp8 in memory (weights is then fp8 whatever is "
    "set).",
    "diffusion_model_2": "Wan 2.2 A14B only: the low-noise expert (..._low_noise_...). none for every "
    "single-transformer model. Swapped experts are recognised and refused.",
    "text_encoder": "The text encoder file, from models/text_encoders: umt5_xxl (fp8_e4m3fn_scaled, bf16 or "
    "fp16) for Wan. ComfyUI's files carry their tokenizer; a file without one needs "
    "text_encoders/umt5-xxl/tokenizer.json, or allow_download.",
    "vae": "The VAE file, from models/vae: wan_2.1_vae for Wan 2.1 and Wan 2.2 A14B, wan2.2_vae for TI2V-5B. "
    "A VAE that does not fit the model is refused before anything loads.",
    "clip_vision": "Wan 2.1 I2V only: the CLIP vision file from models/clip_vision (clip_vision_h). none for "
    "Wan 2.2, which uses none.",
    **{name: LOAD_TIPS[name] for name in ("precision", "vae_precision", "device", "offload", "weights")},
    "allow_download": "Only used when the text encoder file carries no tokenizer: let the UMT5 tokenizer (a "
    "few MB) download from the hub. The weights always come from the files.",
}


class LoadI2VModelFiles:
    DESCRIPTION = (
        "Loads an image-to-video model from ComfyUI's own single files (the ones ComfyUI's Wan templates "
        "download), in ComfyUI's model folders. What each file is, and whether the files fit together, is "
        "read from their headers before anything loads. Outputs the same light handle as Load "
        "Image-to-Video Model: the weights load once per process, on first use, after VRAMGuard."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The model handle: connect it to VRAMGuard (or straight to I2VSample).",)

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 - ComfyUI's name
        # each folder scanned once (both experts list diffusion_models)
        listed = {folder: host.model_files(folder) for folder in set(FILE_FOLDERS.values())}
        files = {slot: (listed[folder], {"tooltip": TIPS[slot]}) for slot, folder in FILE_FOLDERS.items()}
        for slot in OPTIONAL_SLOTS:
            files[slot] = ([NONE, *files[slot][0]], {**files[slot][1], "default": NONE})
        required, optional = how_to_run_inputs(TIPS)
        return {"required": {**files, **required}, "optional": optional, "hidden": {"unique_id": "UNIQUE_ID"}}

    def load(
        self,
        diffusion_model,
        diffusion_model_2,
        text_encoder,
        vae,
        clip_vision,
        precision,
        vae_precision,
        device,
        offload,
        allow_download,
        weights="default",
        unique_id=None,
    ):
        chosen = {
            "diffusion_model": diffusion_model,
            "diffusion_model_2": diffusion_model_2,
            "text_encoder": text_encoder,
            "vae": vae,
            "clip_vision": clip_vision,
        }
        with node_errors("LoadI2VModelFiles", unique_id):
            paths = {slot: resolve(slot, name) for slot, name in chosen.items() if name != NONE}
            options = models.LoadOptions(
                precision, vae_precision, device, offload, bool(allow_download), weights
            )
            handle = models.open_files(paths, options, host.default_device(), host.tokenizer_roots())
        return (handle,)


def resolve(slot: str, name: str):
    folder = FILE_FOLDERS[slot]
    path = host.model_file_path(folder, name)
    if path is None:
        raise InputError(slot, f"no file {name!r} in ComfyUI's {folder} folder(s)")
    return path
