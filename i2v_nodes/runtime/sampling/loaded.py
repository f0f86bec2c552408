"""A pipeline in the process cache, with what runs on it remember: prompt embeddings, LoRA adapters,
compiled blocks; and how one is loaded and placed."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import socket
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from i2v_nodes.families.contract.family import Family
from i2v_nodes.families.contract.files import LoadSpec
from i2v_nodes.families.contract.spec import Roles
from i2v_nodes.runtime import speed
from i2v_nodes.runtime.loading import lora, placement, streaming
from i2v_nodes.runtime.loading.cache import ModelCache
from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.loading.precision import dtype_of
from i2v_nodes.runtime.sampling.plan import weight_total
from i2v_nodes.runtime.services import HostServices

log = logging.getLogger(__name__)

PROMPT_MEMORY = 16  # prompt embeddings remembered per loaded pipeline


# ... and at most this many bytes of them (LTX-2's one prompt is ~385 MB: Gemma's 49 layers x 1024
# tokens), always keeping the two newest (a run's prompt and negative prompt)
PROMPT_MEMORY_BYTES = 2**30


@dataclass
class Loaded:
    """A cached pipeline, where it computes, and its registration with the host's memory management."""

    pipeline: Any
    device: torch.device  # the execution device (asking the pipeline walks every module)
    vae_dtype: torch.dtype
    registration: Any = None
    note: str = ""  # what loading chose that the report should say (single files: the tokenizer)
    # text -> embeddings: a new seed with the same prompt (the usual next run) skips the text encoder
    prompts: OrderedDict = field(default_factory=OrderedDict)
    loras: lora.Applied = field(default_factory=lora.Applied)  # the LoRA adapters on the denoisers now
    speed: speed.State = field(default_factory=speed.State)  # compiled blocks, MagCache calibrations
    streaming: streaming.Streaming | None = None  # hooks releasing what a phase does not need
    disk: Path | None = None  # group offload's files (a folder of its own in the temp folder)

    def stream(self, roles: Roles, per_phase: bool) -> None:
        """Stream the encoders and denoisers per phase, or keep everything resident."""
        if per_phase and self.streaming is None:
            self.streaming = streaming.stream(self.pipeline, roles)
        elif not per_phase and self.streaming is not None:
            self.streaming.remove()
            self.streaming = None

    def prompt_embeddings(self, family: Family, text: str) -> torch.Tensor:
        if text in self.prompts:
            self.prompts.move_to_end(text)
            return self.prompts[text]
        embeds = family.encode_prompt(self.pipeline, text, self.device)
        if self.streaming is not None:  # the encoders' phase is over: the VAE encodes the image alone
            self.streaming.release_all()
        self.prompts[text] = embeds
        while len(self.prompts) > 2 and (len(self.prompts) > PROMPT_MEMORY
                                         or sum(map(_nbytes, self.prompts.values())) > PROMPT_MEMORY_BYTES):
            self.prompts.popitem(last=False)
        return embeds

    def close(self) -> None:
        if self.streaming is not None:
            self.streaming.remove()
        if self.registration is not None:
            self.registration.release()
            self.registration = None
        if self.disk is not None:
            _remove_offload_folder(self.disk)
            self.disk = None


def _nbytes(encoding: Any) -> int:
    """Bytes of a prompt encoding: a tensor, or a dataclass of tensors."""
    if isinstance(encoding, torch.Tensor):
        return encoding.nbytes
    fields = dataclasses.fields(encoding) if dataclasses.is_dataclass(encoding) else ()
    return sum(_nbytes(getattr(encoding, f.name)) for f in fields)


def cache_offload(offload: str, disk: bool) -> str:
    """The offload part of a cache key: the same mode with its groups on disk is another entry."""
    return f"{offload}+disk" if disk else offload


def pipeline_loader(handle: ModelHandle, offload: str, services: HostServices, cache: ModelCache,
                    streamed: bool = False, disk: bool = False):
    """Load ``handle``'s pipeline for the cache. ``disk`` (group offload): its groups kept in files in a
    new folder of the host's temp folder, removed with the cache entry (or a failed load)."""

    def load() -> tuple[Loaded, Callable[[], None]]:
        folder = _new_offload_folder(services.temp_dir()) if disk else None
        try:
            pipe, note = _load_placed(handle, offload, streamed or disk, folder)
        except BaseException:
            if folder is not None:
                _remove_offload_folder(folder)
            raise
        device = torch.device(handle.device)
        # with offload hooks the pipeline knows best; without, it is where we put it
        execution = device if offload == "none" else pipe._execution_device
        loaded = Loaded(pipe, execution, getattr(pipe, handle.roles.vae).dtype, note=note, disk=folder)
        if services.register_model is not None:
            key = dataclasses.replace(handle.cache_key, offload=cache_offload(offload, disk))
            modules = {name: getattr(pipe, name) for name in handle.roles.weighted}
            # called from inside the host's unload: no garbage collection there (see host.py)
            loaded.registration = services.register_model(modules, device, weight_total(handle),
                                                          lambda: cache.unload(key, collect=False),
                                                          offload != "none")
        return loaded, loaded.close

    return load


def _load_placed(handle: ModelHandle, offload: str, streamed: bool, disk: Path | None) -> tuple[Any, str]:
    roles, device = handle.roles, torch.device(handle.device)
    spec = LoadSpec(dtype_of(handle.precision), dtype_of(handle.vae_precision), handle.weights)
    if handle.files is None:
        return placement.load_pipeline(handle.family, roles, handle.source, handle.local, spec, device,
                                       offload, handle.variant, streamed, disk), ""
    roots = [Path(root) for root in handle.tokenizer_roots]
    pipe, note = placement.load_files_pipeline(handle.family, roles, handle.files, spec, device, offload,
                                               roots, handle.allow_download, streamed, disk)
    log.info("%s: %s", handle.name, note)
    return pipe, note


OFFLOAD_FOLDER = "i2v-offload"


def _new_offload_folder(temp: Path) -> Path:
    """A folder no other load uses (diffusers reuses any group file it finds), in the temp folder,
    named by this machine and process so that a later process can remove what a crash left."""
    parent = Path(temp) / OFFLOAD_FOLDER
    parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(parent)
    return Path(tempfile.mkdtemp(prefix=f"groups-{socket.gethostname()}-{os.getpid()}-", dir=parent))


def _remove_orphans(parent: Path) -> None:
    """The folders of this machine's processes that are gone (ComfyUI empties its temp folder when it
    starts; elsewhere nothing else would)."""
    mine = f"groups-{socket.gethostname()}-"
    for folder in parent.iterdir():
        pid = folder.name.removeprefix(mine).split("-")[0]
        orphaned = folder.name.startswith(mine) and pid.isdigit() and not _alive(int(pid))
        if orphaned and folder.is_dir() and not folder.is_symlink():
            _remove_offload_folder(folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True


def _remove_offload_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    log.info("removed the offloaded groups in %s", folder)
