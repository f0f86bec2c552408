"""ComfyUI's single files as the contract sees them: the loader's slots and the folders they list,
what one file is to a family (FilePart), the files that make one model (FileSet), how to load."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i2v_nodes.families.toolkit.gguf_header import GGUFWeights
from i2v_nodes.families.toolkit.safetensors_header import Header
from i2v_nodes.lazy import torch

# LoadI2VModelFiles' inputs, in order, and the ComfyUI model folder each one lists
FILE_FOLDERS = {
    "diffusion_model": "diffusion_models",
    "diffusion_model_2": "diffusion_models",
    "text_encoder": "text_encoders",
    "vae": "vae",
    "clip_vision": "clip_vision",
}


FILE_SLOTS = tuple(FILE_FOLDERS)


# Folders an input lists too, after its own: checkpoints (a denoiser with its VAE, in one file) are
# kept in ComfyUI's checkpoints folder, the second denoiser file may be a motion module, which
# ComfyUI users keep in AnimateDiff-Evolved's animatediff_models folder, and GGUF denoisers are kept
# in ComfyUI-GGUF's unet folder (inside ComfyUI: its .gguf list, see host.py). A name resolves in the
# first folder that has it.
GGUF_FOLDER = "unet"
FILE_ALSO_FOLDERS = {"diffusion_model": ("checkpoints", GGUF_FOLDER),
                     "diffusion_model_2": ("animatediff_models", GGUF_FOLDER)}


def file_folders(slot: str) -> tuple[str, ...]:
    """The ComfyUI model folders a loader input lists, in the order a name is looked up."""
    return (FILE_FOLDERS[slot], *FILE_ALSO_FOLDERS.get(slot, ()))


FILE_FORMATS = ("fp32", "bf16", "fp16", "fp8_e4m3fn", "fp8_scaled")  # how single files store weights
GGUF = "gguf-"  # the format of a GGUF file: "gguf-" and its quantisation ("gguf-Q4_K_M")


@dataclass(frozen=True)
class FilePart:
    """One single file (ComfyUI's layout) as a family reads it from its header (safetensors or GGUF)."""

    path: Path
    kind: str  # "denoiser", "text_encoder", "vae" or "image_encoder"
    variant: str  # what it is, e.g. "wan2.2-i2v-a14b" or "wan-vae-2.2"
    format: str  # "bf16", "fp16", "fp32", "fp8_e4m3fn", "fp8_scaled", or GGUF's "gguf-Q4_K_M", ...
    config: dict[str, Any]  # the component's diffusers / transformers config, read off the shapes
    params: int  # weights only (no fp8 scales, no embedded tokenizer)
    hint: str = ""  # what the file name adds (e.g. "high" / "low" noise for Wan 2.2 experts)
    tokenizer: bool = False  # the file carries its own tokenizer (ComfyUI's text encoders do)
    float8_params: int = 0  # weights that stay float8 once loaded (the rest load in the compute dtype)
    half_params: int = 0  # weights that stay in their stored bf16/fp16: tables, and an encoder's matrices
    bundled: tuple[FilePart, ...] = ()  # other components the same file carries (a checkpoint's VAE)
    gguf: GGUFWeights | None = None  # a GGUF file: what stays quantised once loaded (toolkit.gguf_header)

    @property
    def fp8(self) -> bool:
        return self.format.startswith("fp8")

    def loaded_bytes(self, bytes_per_element: int) -> int:
        """Bytes of its weights once loaded in a compute dtype of ``bytes_per_element``: a GGUF file's
        quantised matrices as stored, a float8 file's float8 matrices at one byte, the rest cast."""
        if self.gguf is not None:
            return self.gguf.loaded_bytes(self.params, bytes_per_element)
        float8 = self.float8_params if self.fp8 else 0
        rest = self.params - float8 - self.half_params
        return float8 + self.half_params * min(2, bytes_per_element) + rest * bytes_per_element


@dataclass(frozen=True)
class FileSet:
    """Single files assembled into one model: what each pipeline component is loaded from."""

    variant: str
    parts: dict[str, FilePart]  # pipeline component (role) -> file
    configs: dict[str, Any]  # every component's config, plus "pipeline" and "scheduler" settings


@dataclass(frozen=True)
class LoadSpec:
    """How to load: dtypes, fp8 weight storage, where to."""

    dtype: torch.dtype
    vae_dtype: torch.dtype
    weights: str = "default"  # "fp8": the denoisers keep float8_e4m3fn weights, compute in dtype


@dataclass(frozen=True)
class SingleFiles:
    """How a family reads ComfyUI's single files: functions of its own package, named here so the
    engine can call them (and a reader can find them) without importing the family."""

    description: str  # which of ComfyUI's files it reads, for messages
    # what a file is to this family, from its header alone (safetensors; and GGUF where ``gguf`` says
    # which it reads); None if not its file
    identify: Callable[[Header], FilePart | None]
    # check that the files (by loader slot, see FILE_SLOTS) make one model and say which is which;
    # raises InputError naming the slot, the file and what was expected
    assemble: Callable[[Mapping[str, FilePart]], FileSet]
    # (files, spec, tokenizer roots, allow_download, settle) -> (the stock pipeline, not yet placed, and a
    # note for the report); ``settle`` gets each denoiser as soon as it is loaded
    load: Callable[[FileSet, LoadSpec, Iterable[Path], bool, Callable[[torch.nn.Module], None]],
                   tuple[Any, str]]
    # (whether the text encoder file carries its tokenizer, tokenizer roots, allow_download): raises
    # InputError, before anything loads, when the tokenizer cannot be had
    tokenizer_check: Callable[[bool, Iterable[Path], bool], None]
    # (pipeline, models dir, file stem, format) -> loader slot -> file: the tiny models as single files
    write: Callable[[Any, Path, str, str], dict[str, Path]]
    formats: tuple[str, ...] = FILE_FORMATS  # how its files may store weights (what ``write`` takes)
    gguf: str = ""  # which GGUF files ``identify`` reads too, for messages; "" = none (never asked)

    def check_tokenizer(self, files: FileSet, roots: Iterable[Path], allow_download: bool) -> None:
        """Refuse, before anything loads, a text encoder whose tokenizer cannot be had."""
        self.tokenizer_check(files.parts["text_encoder"].tokenizer, roots, allow_download)
