"""The processes of a sweep, from accelerate: one process plainly, N under torchrun or accelerate launch.

Python objects are gathered over gloo (``accelerate.utils.gather_object``), on GPU machines too:
only small records travel, and gloo notices a peer that died instead of waiting on it. Each
process uses the GPU of its local rank, which the nodes see as the current CUDA device.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import timedelta
from typing import Any

DEFAULT_WAIT_SECONDS = 24 * 3600  # a fast rank waits this long at the end for the slowest one


def _launched() -> bool:
    return int(os.environ.get("LOCAL_RANK", -1)) != -1 or int(os.environ.get("WORLD_SIZE", 1)) > 1


def start(wait_seconds: float = DEFAULT_WAIT_SECONDS) -> Any:
    """accelerate's PartialState for this process (initialising torch.distributed when launched).

    More processes than GPUs on a machine share them (local rank modulo the GPU count): accelerate
    would give each its own, so it is told to stay off the GPUs and the device is set here.
    """
    import torch
    from accelerate import PartialState

    kwargs: dict[str, Any] = {}
    if _launched():
        kwargs = {"backend": "gloo", "timeout": timedelta(seconds=wait_seconds)}
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    shared = 0 < gpus < int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    state = PartialState(cpu=gpus == 0 or shared, **kwargs)
    if shared:
        torch.cuda.set_device(state.local_process_index % gpus)
    elif state.device is not None and state.device.type == "cuda" and state.device.index is not None:
        torch.cuda.set_device(state.device)
    return state


# A launched process ends with os._exit once its work is recorded and reported: with a pack's
# models loaded, a process that leaves the gloo group and then exits normally was seen to abort
# in C++ teardown ("terminate called without an active exception", no Python frame) in about 1
# of 15 two-process runs (torch 2.13, CPU), an exit status that would mark a finished sweep as
# failed. Code that calls main() in a launched process and goes on afterwards sets this False.
HARD_EXIT = True


def finish(state: Any, code: int) -> None:
    """Leave the process group; then, in a launched process, exit at once with ``code``."""
    import torch.distributed

    if state.num_processes == 1:
        return
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    if HARD_EXIT:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)


def all_gather(state: Any, value: Any) -> list[Any]:
    """``value`` from every process, in rank order (just ``[value]`` in one process)."""
    if state.num_processes == 1:
        return [value]
    from accelerate.utils import gather_object

    return list(gather_object([value]))


def gather_errors(state: Any, message: str | None) -> list[str]:
    """Every process's error (None where it had none), so all of them stop together or none does."""
    return [m for m in all_gather(state, message) if m]
