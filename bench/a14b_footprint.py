"""Where the pack's A14B weights live once loaded from the full-size files: per component, bytes
file-backed (mapped from a file: the kernel may drop them and read them again) and anonymous
(private: they stay until freed), as loaded and after streaming per phase has spilled the converted
ones; the largest anonymous tensors by name. Explains a cgroup peak (bench_a14b_ram.py) before
anything runs: what cannot be reclaimed is the anonymous part.

    python bench/a14b_footprint.py [--files /work/bench-files] [--set fp8_scaled|gguf] [--top 12]

Loads the pipeline (no run); about 10 GB of RAM for the fp8_scaled set. A benchmark helper, not a test.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import write_a14b_files  # noqa: E402

from i2v_nodes.runtime import services  # noqa: E402
from i2v_nodes.runtime.loading import models, residency  # noqa: E402
from i2v_nodes.runtime.loading.cache import ModelCache  # noqa: E402
from i2v_nodes.runtime.sampling.loaded import pipeline_loader  # noqa: E402

GiB = 2**30


def files_of(folder: Path, name: str) -> dict[str, Path]:
    files = write_a14b_files.template_paths(folder)
    if name == "gguf":
        files.update(write_a14b_files.gguf_paths(folder))
    return files


def table(pipe, roles, title: str) -> None:
    memory_map = residency.MemoryMap()
    print(f"{title}:")
    for role in roles.weighted:
        module = getattr(pipe, role, None)
        if isinstance(module, torch.nn.Module):
            found = residency.footprint(module, memory_map)
            print(f"  {role:14} file-backed {found.file_backed / GiB:6.2f} GiB   "
                  f"anonymous {found.anonymous / GiB:6.2f} GiB")


def largest_anonymous(pipe, roles, top: int) -> None:
    """The largest private tensors, by component and name: the ones a cgroup cannot reclaim."""
    memory_map = residency.MemoryMap()
    found = []
    for role in roles.weighted:
        module = getattr(pipe, role, None)
        if not isinstance(module, torch.nn.Module):
            continue
        names = {id(t): n for n, t in [*module.named_parameters(), *module.named_buffers()]}
        for _owner, _name, tensor, _param in residency.tensors(module):
            if tensor.device.type == "cpu" and memory_map.backing(tensor) is None:
                found.append((tensor.numel() * tensor.element_size(), role, names.get(id(tensor), "?"),
                              tensor.dtype))
    found.sort(reverse=True)
    print(f"largest anonymous tensors (of {len(found)}, {sum(f[0] for f in found) / GiB:.2f} GiB):")
    for size, role, name, dtype in found[:top]:
        print(f"  {size / 2**20:9.1f} MiB  {role}.{name}  {dtype}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=Path, default=write_a14b_files.DEFAULT_FOLDER)
    parser.add_argument("--set", default="fp8_scaled", choices=["fp8_scaled", "gguf"])
    parser.add_argument("--top", type=int, default=12)
    a = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(2)
    handle = models.handle_for_files(files_of(a.files, a.set), precision="fp32", vae_precision="fp32",
                                     device="cpu")
    started = time.perf_counter()
    loaded, _close = pipeline_loader(handle, "none", services.standalone(), ModelCache(lambda _d: 2**50))()
    print(f"loaded in {time.perf_counter() - started:.0f} s")
    table(loaded.pipeline, handle.roles, "as loaded")
    largest_anonymous(loaded.pipeline, handle.roles, a.top)
    started = time.perf_counter()
    loaded.stream(handle.roles, per_phase=True)
    print(f"streamed per phase in {time.perf_counter() - started:.0f} s "
          f"({loaded.streaming.spilled / GiB:.2f} GiB spilled)")
    table(loaded.pipeline, handle.roles, "streamed per phase")
    largest_anonymous(loaded.pipeline, handle.roles, a.top)
    status = Path("/proc/self/status").read_text()
    print(next(line for line in status.splitlines() if line.startswith("VmHWM")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
