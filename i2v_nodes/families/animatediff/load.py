"""PIA's stock pipeline built from ComfyUI's single files: an SD 1.5 checkpoint and PIA's motion module.

Key names go through diffusers' own single-file converters (``convert_ldm_unet_checkpoint``,
``convert_ldm_vae_checkpoint``, ``convert_ldm_clip_checkpoint`` and
``convert_animatediff_checkpoint_to_diffusers``), as ``from_single_file`` would read these files. The
UNet that runs is built once, merged: the base's layers and the adapter's motion modules are assigned
straight into a ``UNetMotionModel`` (its config is the family's merge of the two configs), and its
``conv_in`` is the base's four input channels followed by PIA's five, exactly what
``UNetMotionModel.from_unet2d`` makes. The pipeline's own merge would build the base UNet, the adapter
and a randomly initialised merged UNet first: three models' worth of memory and time for one.

The tokenizer: SD 1.5 checkpoints carry none. It is looked for in a ``clip-vit-large-patch14`` folder in
ComfyUI's ``text_encoders``, then in ComfyUI's own ``sd1_tokenizer`` (shipped in its ``comfy`` package),
then downloaded from ``openai/clip-vit-large-patch14`` if downloads are allowed; else the loader refuses
before anything loads. The tiny files embed theirs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from i2v_nodes.families.animatediff.files import BUFFERS, MOTION, TEXT, TOKENIZER, UNET, VAE
from i2v_nodes.families.animatediff.pairs import runnable_unet_config
from i2v_nodes.families.animatediff.spec import ADAPTER
from i2v_nodes.families.contract.files import FilePart, FileSet, LoadSpec
from i2v_nodes.families.toolkit.file_headers import own_config
from i2v_nodes.families.toolkit.file_tensors import aligned, assign, empty_weights, read_tensors
from i2v_nodes.families.toolkit.meta import config_json, keep_fp32
from i2v_nodes.families.toolkit.safetensors_header import read_header
from i2v_nodes.families.toolkit.tokenizers import refuse_missing_tokenizer, tokenizer_in
from i2v_nodes.lazy import torch

TOKENIZER_HUB_ID = "openai/clip-vit-large-patch14"
# looked for under each tokenizer root: the hub repo's name, then ComfyUI's own copy of it
TOKENIZER_FOLDERS = ("clip-vit-large-patch14", "sd1_tokenizer")




def _cast(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    for name, tensor in state.items():  # in place: the file's copy goes as soon as its cast is made
        state[name] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    return state


def _with_buffers(model: torch.nn.Module, state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict:
    """The model's own computed buffers (sinusoidal tables, position ids) where the file has none or
    diffusers' converter dropped them, cast as from_pretrained casts buffers."""
    saved = set(model.state_dict())  # persistent buffers only: load_state_dict takes no others
    for name, buffer in model.named_buffers():
        if name in saved and name not in state:
            state[name] = buffer.to(dtype) if buffer.is_floating_point() else buffer
    return state


# --- components ---------------------------------------------------------------------------------------


def load_unet(base: FilePart, module: FilePart, configs: dict[str, Any],
              dtype: torch.dtype) -> torch.nn.Module:
    """The merged UNet (``UNetMotionModel``) from the checkpoint's UNet and the motion module."""
    from diffusers import UNetMotionModel
    from diffusers.loaders.single_file_utils import (
        convert_animatediff_checkpoint_to_diffusers,
        convert_ldm_unet_checkpoint,
    )

    state = convert_ldm_unet_checkpoint(read_tensors(base.path, lambda n: n.startswith(UNET)), base.config)
    motion = convert_animatediff_checkpoint_to_diffusers(
        read_tensors(module.path, lambda n: bool(MOTION.match(n)) or n.startswith("conv_in.")))
    pia_in = motion.pop("conv_in.weight")
    motion.pop("conv_in.bias", None)  # the merge keeps the base's bias
    # the base's latent channels, then PIA's mask and image channels (UNetMotionModel.from_unet2d's merge)
    state["conv_in.weight"] = torch.cat([state["conv_in.weight"], pia_in[:, state["conv_in.weight"].shape[1]:]
                                         .to(state["conv_in.weight"].dtype)], dim=1)
    state.update(motion)
    with empty_weights():
        model = UNetMotionModel.from_config(json.loads(runnable_unet_config(config_json(configs))))
    state = _with_buffers(model, _cast(state, dtype), dtype)
    return keep_fp32(assign(model, aligned(state), module.path))


def load_vae(part: FilePart, dtype: torch.dtype) -> torch.nn.Module:
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    # a checkpoint's VAE (or a VAE file saved with its prefix), else a VAE file's every tensor
    prefixed = any(name.startswith(VAE) for name in read_header(part.path).tensors)
    state = convert_ldm_vae_checkpoint(read_tensors(part.path, lambda n: not prefixed or n.startswith(VAE)),
                                       part.config)
    with empty_weights():
        model = AutoencoderKL.from_config(part.config)
    return keep_fp32(assign(model, aligned(_cast(state, dtype)), part.path))


def load_text_encoder(part: FilePart, dtype: torch.dtype) -> torch.nn.Module:
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint
    from transformers import CLIPTextConfig, CLIPTextModel

    state = convert_ldm_clip_checkpoint(read_tensors(part.path, lambda n: n.startswith(TEXT)))
    with empty_weights():
        model = CLIPTextModel(CLIPTextConfig(**part.config))
    known = set(model.state_dict())
    # transformers 5 names the tower's tensors without the checkpoints' "text_model."
    if not any(name.startswith("text_model.") for name in known):
        state = {name.removeprefix("text_model."): t for name, t in state.items()}
    # checkpoints keep the position ids; transformers computes them (a buffer it does not save)
    state = {name: t for name, t in state.items() if name in known or not name.endswith(BUFFERS)}
    state = _with_buffers(model, _cast(state, dtype), dtype)
    return keep_fp32(assign(model, aligned(state), part.path))


# --- the tokenizer ---------------------------------------------------------------------------------------


def tokenizer_folder(roots: Iterable[Path]) -> Path | None:
    """The first ``<root>/clip-vit-large-patch14`` (or ComfyUI's ``sd1_tokenizer``) holding a tokenizer."""
    return tokenizer_in(roots, TOKENIZER_FOLDERS, (("tokenizer.json",), ("vocab.json", "merges.txt")))


def check_tokenizer(embedded: bool, roots: Iterable[Path], allow_download: bool) -> None:
    """Refuse, before any weight loads, a checkpoint whose tokenizer is nowhere to be had."""
    roots = list(roots)
    if not (embedded or allow_download or tokenizer_folder(roots) is not None):
        refuse_missing_tokenizer(
            roots, TOKENIZER_FOLDERS[0], "SD 1.5 checkpoints carry no tokenizer",
            f"the tokenizer files of {TOKENIZER_HUB_ID} (vocab.json, merges.txt, tokenizer_config.json and "
            "special_tokens_map.json; or a tokenizer.json)")


def _embedded(part: FilePart, length: int) -> Any | None:
    from transformers import CLIPTokenizer

    data = own_config(read_header(part.path), TOKENIZER)
    if not data:
        return None
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in data["merges"]]
    specials = {name: data[name] for name in ("bos_token", "eos_token", "pad_token", "unk_token")}
    return CLIPTokenizer(vocab=data["vocab"], merges=merges, model_max_length=length, **specials)


def find_tokenizer(part: FilePart, roots: Iterable[Path], allow_download: bool) -> tuple[Any, str]:
    """The tokenizer and where it came from. Its length is the text tower's (77): ComfyUI's own
    ``sd1_tokenizer`` says 8192, as ComfyUI splits long prompts itself, and PIA pads to the length."""
    from transformers import CLIPTokenizer

    length = part.config["max_position_embeddings"]
    tokenizer = _embedded(part, length)
    if tokenizer is not None:
        return tokenizer, "the tokenizer embedded in the checkpoint"
    roots = list(roots)
    folder = tokenizer_folder(roots)
    if folder is not None:
        return (CLIPTokenizer.from_pretrained(str(folder), local_files_only=True, model_max_length=length),
                f"the tokenizer in {folder}")
    check_tokenizer(False, roots, allow_download)  # refuses unless downloads are allowed
    return (CLIPTokenizer.from_pretrained(TOKENIZER_HUB_ID, model_max_length=length),
            f"{TOKENIZER_HUB_ID}'s tokenizer (downloaded)")


# --- the pipeline ---------------------------------------------------------------------------------------


def load_pipeline(files: FileSet, spec: LoadSpec, tokenizer_roots: Iterable[Path], allow_download: bool,
                  settle: Callable[[torch.nn.Module], None]) -> tuple[Any, str]:
    """The stock PIAPipeline from single files, and a note for the report."""
    from diffusers import DDIMScheduler, PIAPipeline

    parts = files.parts
    tokenizer, note = find_tokenizer(parts["text_encoder"], tokenizer_roots, allow_download)
    unet = load_unet(parts["unet"], parts[ADAPTER], files.configs, spec.dtype)
    settle(unet)  # the merged UNet: fp8 storage, when asked, applies to what runs
    pipe = PIAPipeline(vae=load_vae(parts["vae"], spec.vae_dtype),
                       text_encoder=load_text_encoder(parts["text_encoder"], spec.dtype),
                       tokenizer=tokenizer, unet=unet,
                       scheduler=DDIMScheduler.from_config(files.configs["scheduler"]))
    return pipe, f"tokenizer: {note}"
