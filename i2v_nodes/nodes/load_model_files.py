"""LoadI2VModelFiles: the single files ComfyUI users already have (ComfyUI's UNETLoader, CLIPLoader,
VAELoader and CLIPVisionLoader in one node, and CheckpointLoaderSimple's files for models that come
as a checkpoint); returns the same light handle as LoadI2VModel."""

from __future__ import annotations

from i2v_nodes import host
from i2v_nodes.errors import InputError
from i2v_nodes.families import registry
from i2v_nodes.families.contract.files import FILE_FOLDERS, file_folders
from i2v_nodes.nodes._common import CATEGORY, MODEL_TYPE, node_errors
from i2v_nodes.nodes.load_model import TIPS as LOAD_TIPS
from i2v_nodes.nodes.load_model import family_tips as load_family_tips
from i2v_nodes.nodes.load_model import how_to_run_inputs
from i2v_nodes.runtime.loading import models

NONE = "none"

OPTIONAL_SLOTS = ("diffusion_model_2", "clip_vision")  # "none" is a choice, and the default
# "none" is a choice after the files (the first file stays the default): a checkpoint carries its VAE,
# and some carry their text encoder too
FILE_OR_NONE_SLOTS = ("vae", "text_encoder")

TIPS = {
    "diffusion_model": "The video model file, from ComfyUI's models/diffusion_models (UNETLoader's list) or "
    "models/checkpoints (CheckpointLoaderSimple's). Wan 2.2 A14B: the high-noise expert here. Wan 2.1 I2V "
    "480p/720p, Wan 2.2 I2V A14B and TI2V-5B, and LTX-Video 0.9.x checkpoints (ltx-video-2b-v0.9.5, "
    "ltxv-13b-0.9.7-dev or -distilled, ...) are recognised from the file itself, in bf16, fp16, fp8_e4m3fn "
    "or ComfyUI's fp8_scaled. fp8 files stay fp8 in memory (weights is then fp8 whatever is set). Wan and "
    "LTX-Video transformers as ComfyUI-GGUF's .gguf files (models/unet or diffusion_models; Q8_0, Q6_K, "
    "Q5_K_M, Q4_K_M, Q3_K_M, ...) stay quantised in memory, each layer dequantised as it runs (weights is "
    "then ignored). "
    "AnimateDiff (PIA): a Stable Diffusion 1.5 checkpoint (v1-5-pruned-emaonly or a fine-tune; fp32, fp16 "
    "or bf16), with PIA's motion module in diffusion_model_2; SD 2.x and SDXL checkpoints are refused. "
    "LTX-2: its checkpoint from models/checkpoints (ltx-2-19b-dev or -distilled, bf16 or fp8), which carries "
    "the transformer, the text connectors, both VAEs and the vocoder.",
    "diffusion_model_2": "Wan 2.2 A14B: the low-noise expert (..._low_noise_..., or ...-LowNoise-....gguf). "
    "AnimateDiff: PIA's motion "
    "module, from models/animatediff_models (AnimateDiff-Evolved's folder) as a safetensors file; PIA's "
    "released pia.ckpt is a pickle, which is never loaded: convert it to .safetensors first. Plain "
    "AnimateDiff motion modules (mm_sd_v15_v2, v3, ...) have no image input and are refused. none for every "
    "single-transformer model. Swapped experts are recognised and refused.",
    "text_encoder": "The text encoder file, from models/text_encoders: gemma_3_12B_it for LTX-2 (it carries "
    "its tokenizer); umt5_xxl (fp8_e4m3fn_scaled, bf16 or fp16) for Wan, carrying its tokenizer (a file "
    "without one needs text_encoders/umt5-xxl/tokenizer.json, or allow_download); t5xxl_fp16 (or an fp8 "
    "form) for LTX-Video, whose tokenizer goes in text_encoders/t5-v1_1-xxl/ (or allow_download). none "
    "for an SD 1.5 checkpoint, which carries its CLIP text encoder but no tokenizer: the CLIP tokenizer "
    "files go in text_encoders/clip-vit-large-patch14/ (inside ComfyUI its own bundled SD 1.5 tokenizer is "
    "used), or allow_download.",
    "vae": "The VAE file, from models/vae: wan_2.1_vae for Wan 2.1 and Wan 2.2 A14B, wan2.2_vae for TI2V-5B; "
    "none for an LTX-Video or SD 1.5 checkpoint, which carries its own (or an SD 1.5 VAE such as "
    "vae-ft-mse-840000 to replace it). A VAE that does not fit the model is refused before anything loads.",
    "clip_vision": "Wan 2.1 I2V only: the CLIP vision file from models/clip_vision (clip_vision_h). none for "
    "Wan 2.2, which uses none.",
    **{name: LOAD_TIPS[name] for name in ("vae_precision", "device", "offload", "weights")},
    "allow_download": "Only used when the text encoder file (or checkpoint) carries no tokenizer and none is "
    "in its folder: let the tokenizer (UMT5's, T5's or CLIP's, a few MB) download from the hub. The weights "
    "always come from the files.",
}


class LoadI2VModelFiles:
    DESCRIPTION = (
        "Loads an image-to-video model from ComfyUI's own single files, in ComfyUI's model folders ("
        + "; ".join(f"{family.title}: {family.files.description}" for family in registry.file_readers())
        + "). What "
        "each file is, and whether the files fit together, is read from their headers before anything "
        "loads. Outputs the same light handle as Load Image-to-Video Model: the weights load once per "
        "process, on first use, after VRAMGuard."
    )
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The model handle: connect it to VRAMGuard (or straight to I2VSample).",)

    @classmethod
    def IS_CHANGED(cls, **inputs):  # noqa: N802 - ComfyUI's name
        """A file written over or replaced under the same name re-runs the loader (the handle then
        has another cache key, and I2VSample re-reads a file that changes under a cached model)."""
        marks = []
        for slot in FILE_FOLDERS:
            name = inputs.get(slot)
            if not isinstance(name, str) or name == NONE:
                continue
            try:
                stat = resolve(slot, name).stat()
            except (InputError, OSError):
                return f"{slot}={name}: unreadable"  # the load itself names what is wrong
            marks.append(f"{slot}={name}@{stat.st_size}:{stat.st_mtime_ns}")
        return ";".join(marks)

    @classmethod
    def INPUT_TYPES(cls):  # noqa: N802 - ComfyUI's name
        # each folder scanned once (both experts list diffusion_models)
        folders = {folder for slot in FILE_FOLDERS for folder in file_folders(slot)}
        listed = {folder: host.model_files(folder) for folder in folders}
        files = {slot: (_names(listed, slot), {"tooltip": TIPS[slot]}) for slot in FILE_FOLDERS}
        for slot in OPTIONAL_SLOTS:
            files[slot] = ([NONE, *files[slot][0]], {**files[slot][1], "default": NONE})
        for slot in FILE_OR_NONE_SLOTS:
            files[slot] = ([*files[slot][0], NONE], files[slot][1])
        required, optional = how_to_run_inputs({**TIPS, "precision": load_family_tips()["precision"]})
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


def _names(listed: dict[str, list[str]], slot: str) -> list[str]:
    """The files an input lists: its own folder's, then those of the other folders it reads."""
    names: list[str] = []
    for folder in file_folders(slot):
        names += [name for name in listed[folder] if name not in names]
    return names


def resolve(slot: str, name: str):
    """The file a name picks: in the input's own folder first, then in the others it lists."""
    folders = file_folders(slot)
    for folder in folders:
        path = host.model_file_path(folder, name)
        if path is not None:
            return path
    others = "".join(f", nor in its {folder} folder(s)" for folder in folders[1:])
    raise InputError(slot, f"no file {name!r} in ComfyUI's {folders[0]} folder(s){others}")
