"""Which of ComfyUI's LTX-2 files make one model: the checkpoint (with the parts it bundles), a VAE
file in its place if given, and Gemma 3; each checked against the others before anything loads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from i2v_nodes.errors import InputError
from i2v_nodes.families.contract.files import FilePart, FileSet
from i2v_nodes.families.ltx2.configs import PUBLISHED
from i2v_nodes.families.ltx2.files import DISTILLED_SCHEDULER, HUB, LTX2

_SLOT_KIND = {"diffusion_model": "denoiser", "text_encoder": "text_encoder", "vae": "vae"}
_KIND_WORDS = {
    "denoiser": "an LTX-2 checkpoint (checkpoints folder)",
    "text_encoder": "a text encoder (text_encoders folder)",
    "vae": "a VAE (vae folder)",
}
_BUNDLED_ROLES = ("connectors", "vae", "audio_vae", "vocoder")


def assemble(parts: Mapping[str, FilePart]) -> FileSet:
    """The model the files make, or an error naming the slot, the file and what was expected."""
    for slot in ("diffusion_model_2", "clip_vision"):
        if slot in parts:
            raise InputError(slot, f"LTX-2 uses no {slot.replace('_', ' ')}: set {slot} to none")
    for slot, part in parts.items():
        if part.kind != _SLOT_KIND[slot]:
            what = _KIND_WORDS.get(part.kind, "an LTX-2 " + part.kind)
            raise InputError(slot, f"{part.path.name} is {what}, not {_KIND_WORDS[_SLOT_KIND[slot]]}")
    checkpoint = parts["diffusion_model"]
    roles: dict[str, FilePart] = {"transformer": checkpoint}
    roles.update({part.kind: part for part in checkpoint.bundled})
    _pick_vae(checkpoint, parts.get("vae"), roles)
    for role in _BUNDLED_ROLES:
        if role not in roles:
            missing = role.replace("_", " ")
            raise InputError("diffusion_model", f"{checkpoint.path.name} holds no {missing}: load the full "
                                                "LTX-2 checkpoint (ltx-2-19b-dev.safetensors or "
                                                "ltx-2-19b-distilled.safetensors, or an fp8 form) from "
                                                "checkpoints")
    roles["text_encoder"] = _check_text(roles, parts.get("text_encoder"))
    order = ("transformer", "text_encoder", "connectors", "vae", "audio_vae", "vocoder")  # names read so
    roles = {role: roles[role] for role in order}
    configs: dict[str, Any] = {role: dict(part.config) for role, part in roles.items()}
    distilled = checkpoint.hint == "distilled"
    configs["scheduler"] = dict(DISTILLED_SCHEDULER if distilled else PUBLISHED[HUB]["scheduler"])
    configs["pipeline"] = {}
    return FileSet(LTX2, roles, configs)


def _pick_vae(checkpoint: FilePart, given: FilePart | None, roles: dict[str, FilePart]) -> None:
    """LTX-2's video VAE comes with its checkpoint. A VAE file of its own has the shapes of LTX-Video
    0.9.5's and cannot be told from one by its header, so the vae input stays none."""
    if given is not None:
        raise InputError("vae", f"{checkpoint.path.name} carries its own video VAE: set vae to none")
    if "vae" not in roles:
        raise InputError("diffusion_model", f"{checkpoint.path.name} carries no video VAE: load the full "
                                            "LTX-2 checkpoint from checkpoints")


def _check_text(roles: Mapping[str, FilePart], text: FilePart | None) -> FilePart:
    if text is None:
        raise InputError("text_encoder", "an LTX-2 model needs the Gemma 3 12B text encoder here "
                                         "(gemma_3_12B_it.safetensors, or an fp8 form, in text_encoders)")
    connectors = roles["connectors"].config
    hidden = text.config["text_config"]["hidden_size"]
    stacked = text.config["text_config"]["num_hidden_layers"] + 1  # every layer's output and the embeddings
    wanted = (connectors["caption_channels"], connectors["text_proj_in_factor"])
    if (hidden, stacked) != wanted:
        raise InputError("text_encoder", f"{text.path.name} gives {stacked} hidden states {hidden} wide; "
                                         f"{roles['transformer'].path.name} takes {wanted[1]} of {wanted[0]} "
                                         "(Gemma 3 12B: 49 of 3840)")
    return text
