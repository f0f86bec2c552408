"""Stand-in for ComfyUI's ``folder_paths`` module, driven by the host's folders.

The module-level names (``models_dir``, ``folder_names_and_paths`` and the input, output and temp
directories) are what packs read; :mod:`host_stub.shim` points them at the running host's folders
while it is active. The functions follow ComfyUI 0.3.64's behaviour.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import stat
import time
from collections.abc import Collection, Iterable

from host_stub import safe_paths

log = logging.getLogger(__name__)

supported_pt_extensions: set[str] = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}

# Model folders ComfyUI registers by default: name -> (subfolders of models_dir, extensions).
_DEFAULT_FOLDERS: dict[str, tuple[tuple[str, ...], set[str] | None]] = {
    "checkpoints": (("checkpoints",), None),
    "configs": (("configs",), {".yaml"}),
    "loras": (("loras",), None),
    "vae": (("vae",), None),
    "text_encoders": (("text_encoders", "clip"), None),
    "diffusion_models": (("unet", "diffusion_models"), None),
    "clip_vision": (("clip_vision",), None),
    "style_models": (("style_models",), None),
    "embeddings": (("embeddings",), None),
    "diffusers": (("diffusers",), {"folder"}),
    "vae_approx": (("vae_approx",), None),
    "controlnet": (("controlnet", "t2i_adapter"), None),
    "gligen": (("gligen",), None),
    "upscale_models": (("upscale_models",), None),
    "hypernetworks": (("hypernetworks",), None),
    "photomaker": (("photomaker",), None),
    "classifiers": (("classifiers",), {""}),
    "model_patches": (("model_patches",), None),
    "audio_encoders": (("audio_encoders",), None),
}

_LEGACY_NAMES = {"unet": "diffusion_models", "clip": "text_encoders"}

# Set by host_stub.shim while a host is active.
models_dir: str = os.path.abspath("models")
folder_names_and_paths: dict[str, tuple[list[str], set[str]]] = {}
output_directory: str = os.path.abspath("output")
input_directory: str = os.path.abspath("input")
temp_directory: str = os.path.join(output_directory, "temp")
user_directory: str = os.path.abspath("user")

# Packs sometimes clear entries here to force a rescan; the stub always rescans, so it stays empty.
filename_list_cache: dict[str, tuple[list[str], dict[str, float], float]] = {}


def default_folders(models_root: str) -> dict[str, tuple[list[str], set[str]]]:
    """A fresh folder table for a host whose models live under ``models_root``."""
    table: dict[str, tuple[list[str], set[str]]] = {}
    for name, (subdirs, exts) in _DEFAULT_FOLDERS.items():
        paths = [os.path.join(models_root, sub) for sub in subdirs]
        table[name] = (paths, set(supported_pt_extensions if exts is None else exts))
    return table


def map_legacy(folder_name: str) -> str:
    return _LEGACY_NAMES.get(folder_name, folder_name)


# --- directories --------------------------------------------------------------------------------


def get_output_directory() -> str:
    return output_directory


def get_input_directory() -> str:
    return input_directory


def get_temp_directory() -> str:
    return temp_directory


def get_user_directory() -> str:
    return user_directory


def set_output_directory(path: str) -> None:
    global output_directory
    output_directory = path


def set_input_directory(path: str) -> None:
    global input_directory
    input_directory = path


def set_temp_directory(path: str) -> None:
    global temp_directory
    temp_directory = path


def get_directory_by_type(type_name: str) -> str | None:
    return {"output": output_directory, "temp": temp_directory, "input": input_directory}.get(type_name)


# --- annotated names ("file.png [output]") ------------------------------------------------------


def annotated_filepath(name: str) -> tuple[str, str | None]:
    for tag, folder in (
        ("[output]", output_directory),
        ("[input]", input_directory),
        ("[temp]", temp_directory),
    ):
        if name.endswith(tag):
            # ComfyUI strips the tag and the space before it.
            return name[: -len(tag) - 1], folder
    return name, None


def _walled(name: str, default_dir: str | None = None) -> str:
    """The path an annotated name stands for, refused (ValueError) if it leaves its folder.

    Unlike ComfyUI, absolute paths, ``..`` and symlinks out of the folder are refused, and so is an
    existing file that is neither a regular file nor a folder (a FIFO or a device would hang or
    flood the reader). A missing file is not refused: the caller's own open reports it.
    """
    plain, kind = safe_paths.split_annotation(name) if isinstance(name, str) else (name, None)
    if kind is None and default_dir is not None:
        path = safe_paths.resolve_in(default_dir, plain, "given")
    else:
        path = safe_paths.resolve_annotated(name, _annotation_folders())
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return path
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise safe_paths.UnsafePath(f"it is {safe_paths.kind_of(mode)}, not a regular file")
    return path


def _annotation_folders() -> dict[str, str]:
    return {"output": output_directory, "input": input_directory, "temp": temp_directory}


def get_annotated_filepath(name: str, default_dir: str | None = None) -> str:
    try:
        _walled(name, default_dir)
    except safe_paths.UnsafePath as exc:
        log.warning("refused file name %r: %s", name, exc)
        raise safe_paths.UnsafePath(f"{name!r}: {exc}") from None
    # The name as ComfyUI joins it (the folder as configured), now known to stay inside it.
    plain, base_dir = annotated_filepath(name)
    if base_dir is None:
        base_dir = default_dir if default_dir is not None else input_directory
    return os.path.join(base_dir, plain)


def exists_annotated_filepath(name: str) -> bool:
    try:
        return os.path.exists(_walled(name))
    except safe_paths.UnsafePath:
        return False


def filter_files_content_types(files: Iterable[str], content_types: Collection[str]) -> list[str]:
    """Keep files whose MIME major type (guessed from the extension) is one of ``content_types``."""
    kept = []
    for file in files:
        mime, _ = mimetypes.guess_type(file, strict=False)
        if file.lower().endswith(".webp"):
            mime = "image/webp"  # not in every platform's MIME table
        if mime and mime.split("/")[0] in content_types:
            kept.append(file)
    return kept


# --- model folders ------------------------------------------------------------------------------


def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    folder_name = map_legacy(folder_name)
    if folder_name not in folder_names_and_paths:
        folder_names_and_paths[folder_name] = ([full_folder_path], set())
        return
    paths = folder_names_and_paths[folder_name][0]
    if full_folder_path in paths:
        if is_default and paths[0] != full_folder_path:
            paths.remove(full_folder_path)
            paths.insert(0, full_folder_path)
    elif is_default:
        paths.insert(0, full_folder_path)
    else:
        paths.append(full_folder_path)


def get_folder_paths(folder_name: str) -> list[str]:
    return list(folder_names_and_paths[map_legacy(folder_name)][0])


def recursive_search(
    directory: str, excluded_dir_names: list[str] | None = None
) -> tuple[list[str], dict[str, float]]:
    if not os.path.isdir(directory):
        return [], {}
    excluded = set(excluded_dir_names or [])
    found: list[str] = []
    dirs: dict[str, float] = {directory: os.path.getmtime(directory)}
    for dirpath, subdirs, filenames in os.walk(directory, followlinks=True, topdown=True):
        subdirs[:] = [d for d in subdirs if d not in excluded]
        found += [os.path.relpath(os.path.join(dirpath, f), directory) for f in filenames]
        for d in subdirs:
            path = os.path.join(dirpath, d)
            try:
                dirs[path] = os.path.getmtime(path)
            except FileNotFoundError:
                continue
    return found, dirs


def filter_files_extensions(files: Collection[str], extensions: Collection[str]) -> list[str]:
    return sorted(f for f in files if not extensions or os.path.splitext(f)[-1].lower() in extensions)


def get_filename_list(folder_name: str) -> list[str]:
    """Files under every path of a model folder, relative to that path, sorted (no caching here)."""
    paths, extensions = folder_names_and_paths[map_legacy(folder_name)]
    names: set[str] = set()
    for path in paths:
        files, _dirs = recursive_search(path, excluded_dir_names=[".git"])
        names.update(filter_files_extensions(files, extensions))
    return sorted(names)


def get_full_path(folder_name: str, filename: str) -> str | None:
    folder_name = map_legacy(folder_name)
    if folder_name not in folder_names_and_paths:
        return None
    # Normalise like ComfyUI so "../x" cannot climb out of the model folder.
    filename = os.path.relpath(os.path.join("/", filename), "/")
    for path in folder_names_and_paths[folder_name][0]:
        full = os.path.join(path, filename)
        if os.path.isfile(full):
            return full
    return None


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    full = get_full_path(folder_name, filename)
    if full is None:
        raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
    return full


# --- output file names --------------------------------------------------------------------------


def _substitute_vars(prefix: str, width: int, height: int) -> str:
    now = time.localtime()
    values = {
        "%width%": str(width),
        "%height%": str(height),
        "%year%": str(now.tm_year),
        "%month%": f"{now.tm_mon:02}",
        "%day%": f"{now.tm_mday:02}",
        "%hour%": f"{now.tm_hour:02}",
        "%minute%": f"{now.tm_min:02}",
        "%second%": f"{now.tm_sec:02}",
    }
    for key, value in values.items():
        prefix = prefix.replace(key, value)
    return prefix


def _existing_counter(name: str, filename: str) -> int:
    """The counter in ``name`` if it is ``<filename>_<digits>_...``, else 0."""
    if not name.startswith(filename) or name[len(filename) : len(filename) + 1] != "_":
        return 0
    # ComfyUI compares case-insensitively on case-insensitive systems only.
    digits = name[len(filename) + 1 :].split("_")[0]
    return int(digits) if digits.isdigit() else 0


def get_save_image_path(
    filename_prefix: str, output_dir: str, image_width: int = 0, image_height: int = 0
) -> tuple[str, str, int, str, str]:
    """``(folder, filename, counter, subfolder, prefix)`` for the next ``<filename>_<counter:05>_`` file.

    A prefix that would leave ``output_dir`` is refused, as in ComfyUI.
    """
    if "%" in filename_prefix:
        filename_prefix = _substitute_vars(filename_prefix, image_width, image_height)
    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    filename = os.path.basename(os.path.normpath(filename_prefix))
    output_dir = os.path.abspath(output_dir)
    full_output_folder = os.path.abspath(os.path.join(output_dir, subfolder))
    if os.path.commonpath((output_dir, full_output_folder)) != output_dir:
        raise Exception(  # noqa: TRY002 - ComfyUI raises a bare Exception here; packs may rely on it
            "Saving image outside the output folder is not allowed."
            f"\n full_output_folder: {full_output_folder}\n         output_dir: {output_dir}"
        )
    # Stricter than ComfyUI: every existing level must stay inside (a symlink out is refused before
    # anything is made through it); missing levels are made one at a time.
    real_folder = safe_paths.output_folder(output_dir, subfolder)
    counters = [_existing_counter(n, filename) for n in os.listdir(real_folder)]
    counter = max([c for c in counters if c > 0], default=0) + 1
    return full_output_folder, filename, counter, subfolder, filename_prefix
