"""The one place that knows whether a ComfyUI-compatible host is present.

Everything else asks this module for progress bars, interrupt checks, folders and memory.
Inside ComfyUI (or a host that offers the same modules, such as ``host_stub``) it uses
``comfy.utils``, ``comfy.model_management`` and ``folder_paths``; elsewhere it falls back to
tqdm, a process-wide interrupt flag and folders taken from environment variables.

The probe runs on every call and only looks at ``sys.modules``: ComfyUI imports these modules
before any node runs, and a host such as ``host_stub`` installs them only while it runs, so a
cached answer would go stale between hosts.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from i2v_nodes.lazy import torch
from i2v_nodes.runtime.loading.models import MODEL_FOLDER  # the pack's model folder in a models dir
from i2v_nodes.runtime.loading.precision import device_type
from i2v_nodes.runtime.memory import devices
from i2v_nodes.runtime.services import HostServices, default_temp_dir

log = logging.getLogger(__name__)

DIFFUSERS_FOLDER = "diffusers"  # ComfyUI's stock folder for diffusers-format models


def _module(name: str) -> ModuleType | None:
    return sys.modules.get(name)


def comfy_present() -> bool:
    """True when a ComfyUI-compatible host has its modules loaded in this process."""
    return _module("comfy.model_management") is not None and _module("folder_paths") is not None


# --- interrupt -------------------------------------------------------------------------------


class Interrupted(Exception):  # noqa: N818 - named after what happened, like ComfyUI's own
    """Raised at the next step after :func:`request_interrupt` when no host is present."""


_local_interrupt = threading.Event()


def request_interrupt() -> None:
    """Ask the running sample to stop at its next step (inside ComfyUI, ComfyUI's own flag)."""
    mm = _module("comfy.model_management")
    if mm is not None:
        mm.interrupt_current_processing(True)
    else:
        _local_interrupt.set()


def clear_interrupt() -> None:
    mm = _module("comfy.model_management")
    if mm is not None:
        mm.interrupt_current_processing(False)
    _local_interrupt.clear()


def check_interrupt() -> None:
    """Raise the host's interrupt exception if a cancel was requested.

    Inside ComfyUI this raises ``comfy.model_management.InterruptProcessingException``: callers
    must let it through (never wrap this in ``except Exception``), since ComfyUI relies on it
    to end the prompt cleanly.
    """
    mm = _module("comfy.model_management")
    if mm is not None:
        mm.throw_exception_if_processing_interrupted()
    if _local_interrupt.is_set():
        _local_interrupt.clear()
        raise Interrupted("interrupted by request")


def interrupt_requested() -> bool:
    """Whether a cancel is pending, without raising or clearing it (see :func:`check_interrupt`)."""
    mm = _module("comfy.model_management")
    return bool(getattr(mm, "processing_interrupted", bool)()) or _local_interrupt.is_set()


def interrupt_exceptions() -> tuple[type[BaseException], ...]:
    """Exception types that mean "cancelled", to re-raise before any broader handler."""
    kinds: list[type[BaseException]] = [Interrupted, KeyboardInterrupt]
    mm = _module("comfy.model_management")
    exc = getattr(mm, "InterruptProcessingException", None) if mm is not None else None
    if isinstance(exc, type):
        kinds.append(exc)
    return tuple(kinds)


# --- progress --------------------------------------------------------------------------------


class Progress:
    """Step progress: ComfyUI's ProgressBar inside the host, tqdm elsewhere."""

    def __init__(self, total: int, description: str = "", node_id: str | None = None):
        self.total = max(int(total), 1)
        self.current = 0
        self._bar: Any = None
        self._tqdm: Any = None
        utils = _module("comfy.utils")
        if utils is not None and hasattr(utils, "ProgressBar"):
            try:
                self._bar = utils.ProgressBar(self.total, node_id=node_id)
            except TypeError:  # older hosts take only the total
                self._bar = utils.ProgressBar(self.total)
        elif log.isEnabledFor(logging.INFO) and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self._tqdm = tqdm(total=self.total, desc=description or None, leave=False)

    def update(self, n: int = 1) -> None:
        self.current = min(self.current + n, self.total)
        if self._bar is not None:
            self._bar.update_absolute(self.current, self.total)
        elif self._tqdm is not None:
            self._tqdm.update(n)

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None


# --- folders ---------------------------------------------------------------------------------


def models_root() -> Path:
    """The models folder outside ComfyUI (``I2V_MODELS_DIR``, default ``./models``)."""
    fp = _module("folder_paths")
    if fp is not None and getattr(fp, "models_dir", None):
        return Path(fp.models_dir)
    return Path(os.environ.get("I2V_MODELS_DIR", "models")).resolve()


def model_dirs() -> list[Path]:
    """Folders searched for diffusers-format models: the ``i2v`` folder(s), then ``diffusers``."""
    fp = _module("folder_paths")
    if fp is not None:
        _register_model_folder(fp)
        found: list[Path] = []
        for name in (MODEL_FOLDER, DIFFUSERS_FOLDER):
            try:
                found += [Path(p) for p in fp.get_folder_paths(name)]
            except (KeyError, AttributeError):
                continue
        return _unique(found)
    root = models_root()
    return [root / MODEL_FOLDER, root / DIFFUSERS_FOLDER]


def tiny_models_dir() -> Path:
    """Where the built-in tiny models are built: the first ``i2v`` model folder."""
    return model_dirs()[0]


def temp_dir() -> Path:
    """The temp folder: ComfyUI's (emptied when it starts), else ``I2V_TEMP_DIR`` (default ``./temp``)."""
    return _host_folder("get_temp_directory") or default_temp_dir()


def output_dir() -> Path:
    """The output folder: ComfyUI's, else ``I2V_OUTPUT_DIR`` (default ``./output``)."""
    return _host_folder("get_output_directory") or Path(os.environ.get("I2V_OUTPUT_DIR", "output")).resolve()


def _host_folder(getter: str) -> Path | None:
    fp = _module("folder_paths")
    return Path(getattr(fp, getter)()) if fp is not None and hasattr(fp, getter) else None


SINGLE_FILE_SUFFIXES = (".safetensors", ".sft", ".gguf")  # never pickles, whatever else a folder holds
# ComfyUI's lists leave .gguf files out; ComfyUI-GGUF lists those in unet and diffusion_models as
# "unet_gguf" (made here where ComfyUI-GGUF has not made it): the pack's folder name -> ComfyUI's
HOST_FOLDERS = {"unet": "unet_gguf"}


def model_files(folder: str) -> list[str]:
    """The safetensors (and GGUF) files in one of ComfyUI's model folders (``diffusion_models``, ``vae``,
    ``unet``, ...), by the names ComfyUI shows: relative to the folder, subfolders included."""
    fp = _module("folder_paths")
    if fp is not None:
        _register_model_folder(fp)
        try:
            names = list(fp.get_filename_list(HOST_FOLDERS.get(folder, folder)))
        except KeyError:  # a host without that folder
            return []
    else:
        root = models_root() / folder
        names = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    return sorted(name for name in names if name.lower().endswith(SINGLE_FILE_SUFFIXES))


def model_file_path(folder: str, name: str) -> Path | None:
    """The file a combo value names, or None; a name can never reach outside the folder."""
    fp = _module("folder_paths")
    if fp is not None:
        _register_model_folder(fp)
        try:
            full = fp.get_full_path(HOST_FOLDERS.get(folder, folder), name)
        except KeyError:
            return None
        return Path(full) if full else None
    root = (models_root() / folder).resolve()
    candidate = (root / name).resolve()
    return candidate if root in candidate.parents and candidate.is_file() else None


# the packages ComfyUI keeps its own tokenizer folders in (t5_tokenizer, ...; sd1_tokenizer in comfy itself)
HOST_TOKENIZERS = ("comfy.text_encoders", "comfy")


def tokenizer_roots() -> list[Path]:
    """Where a tokenizer for a text encoder file is looked for (in a subfolder named after it):
    ComfyUI's ``text_encoders`` folders, then the tokenizer folders ComfyUI ships with its code
    (when it runs: found among its loaded modules, never imported)."""
    fp = _module("folder_paths")
    if fp is None:
        return [models_root() / "text_encoders"]
    try:
        roots = [Path(p) for p in fp.get_folder_paths("text_encoders")]
    except KeyError:
        roots = []
    shipped = [path for package in HOST_TOKENIZERS
               for path in getattr(_module(package), "__path__", None) or []]
    return _unique(roots + [Path(p) for p in shipped])


def _register_model_folder(fp: ModuleType) -> None:
    """Our own folder, and the model folders the file loader lists that this ComfyUI lacks (only
    AnimateDiff-Evolved has ``animatediff_models``, only ComfyUI-GGUF the .gguf list), in its models dir."""
    from i2v_nodes.families.contract.files import FILE_SLOTS, file_folders

    names = getattr(fp, "folder_names_and_paths", None)
    if not isinstance(names, dict) or not hasattr(fp, "add_model_folder_path"):
        return
    wanted = [MODEL_FOLDER, *dict.fromkeys(folder for slot in FILE_SLOTS for folder in file_folders(slot))]
    for folder in wanted:
        if folder in HOST_FOLDERS:  # ComfyUI-GGUF's list: the diffusion_models folders' .gguf files
            if HOST_FOLDERS[folder] not in names and "diffusion_models" in names:
                names[HOST_FOLDERS[folder]] = (names["diffusion_models"][0], {".gguf"})
        elif folder not in names:
            fp.add_model_folder_path(folder, os.path.join(fp.models_dir, folder))


def _unique(paths: list[Path]) -> list[Path]:
    return list(dict.fromkeys(paths))  # each once, in order


# --- devices and memory ----------------------------------------------------------------------


def default_device() -> torch.device:
    mm = _module("comfy.model_management")
    if mm is not None and hasattr(mm, "get_torch_device"):
        return torch.device(mm.get_torch_device())
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def free_memory_bytes(device: torch.device) -> int:
    """Memory free for a new run on ``device``, as the host counts it (CUDA free, or RAM)."""
    return _counted("get_free_memory", devices.free_bytes, device)


def total_memory_bytes(device: torch.device) -> int:
    return _counted("get_total_memory", devices.total_bytes, device)


def _counted(name: str, ours: Any, device: torch.device) -> int:
    """ComfyUI's figure where it runs, RAM never above what this process's memory cgroup leaves
    (ComfyUI counts the whole machine's); ours elsewhere."""
    mm = _module("comfy.model_management")
    if mm is None or not hasattr(mm, name):
        return ours(device)
    counted = int(getattr(mm, name)(device))
    return counted if device_type(device) == "cuda" else min(counted, ours(device))


def free_host_memory(bytes_needed: int, device: torch.device) -> None:
    """Ask the host to unload its own models until ``bytes_needed`` is free (no-op outside)."""
    mm = _module("comfy.model_management")
    if mm is not None and hasattr(mm, "free_memory"):
        mm.free_memory(bytes_needed, device)


# --- registration with ComfyUI's model management ---------------------------------------------


# Patchers ComfyUI has just unloaded. ComfyUI calls our ON_DETACH callback from inside its
# ``free_memory`` loop, which pops entries of ``current_loaded_models`` by index after the loop, and
# every loaded model carries a finalizer that prunes that list when the model dies. So nothing may
# die or be garbage-collected inside the callback: the patcher is parked here and released, with a
# collection, at the pack's next call into the host. ComfyUI has already moved the weights to the
# offload device by then, so GPU memory is free at once; system RAM follows at the next call.
_unloaded: list[Any] = []
_unloaded_lock = threading.Lock()


def _release_unloaded() -> None:
    with _unloaded_lock:
        if not _unloaded:
            return
        _unloaded.clear()
    gc.collect()  # pipelines hold reference cycles; free their RAM now


class HostRegistration:
    """Keeps a set of modules known to ComfyUI's model management.

    Inside ComfyUI the modules are wrapped in a ``ModelPatcher`` and loaded through
    ``load_models_gpu``: ComfyUI then counts them, frees its own models to make room for our
    run, and unloads ours on "Unload models", ``/free`` or its OOM handler. When it does, it
    calls ``on_unload`` so the pack's cache lets go of the pipeline. When the pack evicts the
    model itself, :meth:`release` unloads it through ComfyUI too, so ComfyUI's list never holds a
    model that dies behind its back.
    Outside ComfyUI (or in a host without ``comfy.model_patcher``) this does nothing.
    """

    def __init__(self, modules: dict[str, torch.nn.Module], device: torch.device, size_bytes: int,
                 on_unload: Callable[[], None], manages_placement: bool):
        self._patcher: Any = None
        self._unloaded_by_host = False
        mp = _module("comfy.model_patcher")
        if mp is None or not hasattr(mp, "ModelPatcher"):
            return
        container = torch.nn.ModuleDict(modules)
        # When offload hooks manage placement, tell ComfyUI the weights live on the CPU so it
        # never moves them behind the hooks' back; it can still unload them.
        load_device = torch.device("cpu") if manages_placement else device
        patcher = mp.ModelPatcher(container, load_device=load_device, offload_device=torch.device("cpu"),
                                  size=size_bytes)
        callbacks = getattr(mp, "CallbacksMP", None)
        if callbacks is not None and hasattr(patcher, "add_callback"):
            patcher.add_callback(callbacks.ON_DETACH, self._on_detach(on_unload))
        self._patcher = patcher

    def _on_detach(self, on_unload: Callable[[], None]) -> Callable[..., None]:
        """ComfyUI detaches a patcher in two cases: unloading it (``model_unload``: "Unload models",
        ``/free``, its OOM handler) with ``unpatch_all=True``, and re-loading a model it already
        holds (``load_models_gpu`` finds it to be a clone of itself) with ``unpatch_all=False``.
        Only the first means the weights should go."""

        def callback(patcher: Any, unpatch_all: bool = True) -> None:
            if not unpatch_all:
                return
            self._unloaded_by_host = True
            with _unloaded_lock:
                _unloaded.append(patcher)
            on_unload()

        return callback

    def ensure_loaded(self, memory_required: int) -> None:
        """Tell ComfyUI the model is in use and how much working memory the run needs."""
        mm = _module("comfy.model_management")
        if self._patcher is None or mm is None or not hasattr(mm, "load_models_gpu"):
            return
        self._unloaded_by_host = False
        mm.load_models_gpu([self._patcher], memory_required=memory_required, force_full_load=True)

    def release(self) -> None:
        """The pack is done with the model: take it out of ComfyUI's list the way ComfyUI does."""
        patcher, self._patcher = self._patcher, None
        if patcher is None or self._unloaded_by_host:
            return  # ComfyUI unloaded it itself and has already dropped its entry
        mm = _module("comfy.model_management")
        loaded = getattr(mm, "current_loaded_models", None)
        if not isinstance(loaded, list):
            return
        for entry in list(loaded):
            if getattr(entry, "model", None) is patcher:
                entry.model_unload()  # ComfyUI's own unload: detaches its finalizer on our model
                loaded.remove(entry)


def services() -> HostServices:
    """The host's capabilities in the form the engine takes them (probed now, per call)."""
    _release_unloaded()
    mp = _module("comfy.model_patcher")
    return HostServices(
        progress=lambda total, description: Progress(total, description),
        check_interrupt=check_interrupt,
        free_bytes=free_memory_bytes,
        total_bytes=total_memory_bytes,
        register_model=HostRegistration if mp is not None and hasattr(mp, "ModelPatcher") else None,
        interrupt_requested=interrupt_requested,
        temp_dir=temp_dir,
    )
