"""The pack's command line: will a run fit this machine, before any download?

    python -m i2v_nodes plan MODEL --width W --height H --frames F [--precision P] [--weights fp8]
                             [--offload O] [--vram GB] [--ram GB] [--end-image] [--json]
    python -m i2v_nodes tiers [FOLDER]   # each family's largest tier workflow that fits this machine
    python -m i2v_nodes tiny-files [NAME ...] [--format F] [--models-dir DIR]
                                         # the tiny models as ComfyUI's single files

``plan`` is VRAMGuard without ComfyUI: the same estimate and the same verdict. MODEL is a known hub
id (sized from its published configuration, nothing downloaded), a local diffusers folder name or
a built-in tiny model; or give ComfyUI's single files (``--diffusion-model``,
``--diffusion-model-2``, ``--text-encoder``, ``--vae``, ``--clip-vision``), sized from their headers.
Without ``--vram`` it plans for this machine's GPU; without ``--ram``, for this machine's RAM; both
are total memory, with ``--headroom`` (default 10%) kept free.

Exit codes: 0 it fits (or the command did its work), 1 it does not fit, 2 the command line or its
input cannot be used (with one line saying why).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from i2v_nodes import host
from i2v_nodes.errors import I2VError
from i2v_nodes.families import registry
from i2v_nodes.families.contract.files import FILE_FORMATS, FILE_SLOTS, file_folders
from i2v_nodes.lazy import torch
from i2v_nodes.runtime import memory
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.loading.precision import PRECISION_CHOICES, VAE_PRECISION_CHOICES, WEIGHTS_CHOICES
from i2v_nodes.runtime.memory import devices, guard, planner
from i2v_nodes.runtime.shapes import validate_shape

GiB = 2**30
MAX_GIB = 1e6  # a petabyte: anything larger is a typo, not a machine


def _size_gib(text: str) -> float:
    """A memory size in GiB for argparse: finite, above 0, at most :data:`MAX_GIB`."""
    value = float(text)
    if not math.isfinite(value) or not 0 < value <= MAX_GIB:
        raise argparse.ArgumentTypeError(f"expected GiB above 0 and at most {MAX_GIB:g}, got {text}")
    return value


def _headroom(text: str) -> float:
    """The share of memory kept free, for argparse: 0 to 0.9 (what VRAMGuard's widget takes)."""
    value = float(text)
    if not math.isfinite(value) or not 0 <= value <= 0.9:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to 0.9, got {text}")
    return value


class UsageError(Exception):
    """A command line the command cannot run: exit 2, as argparse does, never 1 ("does not fit")."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m i2v_nodes", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser(
        "plan", help="will this run fit? device memory and RAM per phase, and what fits"
    )
    plan.add_argument("model", nargs="?", help="hub id, local model folder name, or tiny model (or give the "
                      "single files below instead)")
    for slot in FILE_SLOTS:
        plan.add_argument(f"--{slot.replace('_', '-')}", type=Path, metavar="FILE",
                          help=f"a single file, as ComfyUI's {' or '.join(file_folders(slot))} folder "
                          "holds them")
    plan.add_argument("--width", type=int, required=True)
    plan.add_argument("--height", type=int, required=True)
    plan.add_argument("--frames", type=int, required=True)
    plan.add_argument("--batch", type=int, default=1, help="clips per image (default 1)")
    plan.add_argument("--no-cfg", action="store_true", help="guidance 1 or less (one denoiser pass per step)")
    plan.add_argument("--end-image", action="store_true",
                      help="with an end image (first-last-frame: I2VSample's end_image)")
    plan.add_argument("--precision", choices=PRECISION_CHOICES, default="auto")
    plan.add_argument("--vae-precision", choices=VAE_PRECISION_CHOICES, default="auto")
    plan.add_argument("--weights", choices=WEIGHTS_CHOICES, default="default")
    plan.add_argument("--offload", choices=models.OFFLOAD_CHOICES, default="none")
    plan.add_argument(
        "--device", choices=["cuda", "cpu"], default="cuda", help="where it runs (default cuda)"
    )
    plan.add_argument("--vram", type=_size_gib, help="device memory in GiB (default: this machine's GPU)")
    plan.add_argument("--ram", type=_size_gib, help="system RAM in GiB (default: this machine's)")
    plan.add_argument("--headroom", type=_headroom, default=0.10, help="fraction kept free, 0 to 0.9 "
                      "(default 0.10)")
    plan.add_argument("--json", action="store_true", help="the same as data, with a top-level boolean 'fits'")
    plan.add_argument("--no-search", action="store_true",
                      help="skip the largest frames and size per option (much faster cold)")
    tiers = commands.add_parser("tiers", help="each family's largest tier workflow that fits this machine")
    tiers.add_argument("folder", nargs="?", default="workflows/api", help="API-format tier workflows")
    tiny = commands.add_parser("tiny-files", help="write tiny models as ComfyUI's single files, to try "
                               "LoadI2VModelFiles (in ComfyUI's folders under the models folder)")
    tiny.add_argument("names", nargs="*", help="tiny models (default: every one with a single-file form)")
    formats = dict.fromkeys(f for family in registry.file_readers() for f in family.files.formats)
    tiny.add_argument("--format", choices=[*FILE_FORMATS, *formats], default="fp32",
                      help="how the weights are stored (gguf-Q8_0: the transformers as GGUF files)")
    tiny.add_argument("--models-dir", type=Path, help="default: ComfyUI's models folder / I2V_MODELS_DIR")
    return parser


def this_machine(device: str, vram: float | None, ram: float | None, headroom: float) -> planner.Machine:
    ram_gib = ram if ram is not None else devices.total_bytes(torch.device("cpu")) / GiB
    if device == "cpu":
        return planner.Machine(ram_gib, ram_gib, headroom)
    if vram is None:
        if not torch.cuda.is_available():
            raise UsageError("no CUDA device here: give --vram GB (the card to plan for), or --device cpu")
        vram = devices.total_bytes(torch.device("cuda")) / GiB
    return planner.Machine(vram, ram_gib, headroom)


def plan(args: argparse.Namespace) -> int:
    files = {slot: getattr(args, slot) for slot in FILE_SLOTS if getattr(args, slot) is not None}
    if bool(files) == bool(args.model):
        raise UsageError("give a MODEL, or single files (--diffusion-model, --text-encoder, --vae, ...), "
                         "not both")
    options = {"precision": args.precision, "vae_precision": args.vae_precision, "device": args.device,
               "offload": args.offload, "weights": args.weights}
    handle = (models.handle_for_files(files, **options) if files else
              models.handle_for_planning(args.model, host.model_dirs(), **options))
    validate_shape(handle, args.width, args.height, args.frames, args.batch)
    if args.end_image and handle.variant not in handle.family.spec.keyframes:
        from i2v_nodes.runtime.sampling import capable_models

        raise UsageError(f"--end-image: {handle.name} cannot condition on a last frame; the models that can: "
                         f"{capable_models()}")
    machine = this_machine(args.device, args.vram, args.ram, args.headroom)
    result = planner.answer(
        handle,
        memory.RunShape(args.width, args.height, args.frames, args.batch, cfg=not args.no_cfg,
                        keyframes=2 if args.end_image else 1),
        machine,
        search=not args.no_search,
    )
    print(json.dumps(result.as_data(), indent=2) if args.json else planner.render(result))
    return 0 if result.fits else 1


def tiers(args: argparse.Namespace) -> int:
    """For each family, the largest tier workflow in ``folder`` whose run fits this machine."""
    cuda = torch.cuda.is_available()
    machine = this_machine("cuda" if cuda else "cpu", None, None, 0.10)
    where = (
        f"this machine ({machine.vram_gib:.0f} GiB GPU, {machine.ram_gib:.0f} GiB RAM)"
        if cuda
        else f"this machine (no GPU; {machine.ram_gib:.0f} GiB RAM, runs on the CPU)"
    )
    best: dict[str, tuple[int, str]] = {}
    for path in sorted(Path(args.folder).glob("*.json")):
        tier = _tier_run(json.loads(path.read_text(encoding="utf-8")), "cuda" if cuda else "cpu")
        if tier is None:
            continue
        handle, shape, options = tier
        if guard.fits(handle, shape, options, machine.budget()):
            peak = memory.estimate(handle, shape, options).peak
            if peak > best.get(handle.family.name, (-1, ""))[0]:
                best[handle.family.name] = (
                    peak,
                    f"{path.stem} ({handle.name}, {shape.width}x{shape.height}, "
                    f"{shape.num_frames} frames: {peak / GiB:.1f} GiB)",
                )
    print(f"What {where} can run, per model family (largest tier workflow that fits):")
    for family in sorted({*best, *_families_in(args.folder)}):
        print(f"- {family}: {best[family][1] if family in best else 'none of the tier workflows fits'}")
    return 0


def _families_in(folder: str) -> set[str]:
    names = set()
    for path in Path(folder).glob("*.json"):
        loader = _node(json.loads(path.read_text(encoding="utf-8")), "LoadI2VModel")
        if loader and loader["model"] in registry.known_hub_ids():
            names.add(registry.for_hub_id(loader["model"]).name)
    return names


def _node(api: dict, class_type: str) -> dict | None:
    return next((n["inputs"] for n in api.values() if n.get("class_type") == class_type), None)


def _tier_run(api: dict, device: str):
    loader, guard_inputs = _node(api, "LoadI2VModel"), _node(api, "VRAMGuard")
    sample = _node(api, "I2VSample")
    if loader is None or guard_inputs is None or loader["model"] not in registry.known_hub_ids():
        return None
    precision = loader["precision"] if device == "cuda" else "auto"
    handle = models.handle_for_planning(
        loader["model"],
        [],
        precision=precision,
        device=device,
        offload=loader["offload"] if device == "cuda" else "none",
        weights=loader.get("weights", "default"),
    )
    cfg = not sample or float(sample.get("guidance_scale", 9.0)) > 1
    shape = memory.RunShape(
        guard_inputs["width"],
        guard_inputs["height"],
        guard_inputs["num_frames"],
        guard_inputs["batch_size"],
        cfg=cfg,
    )
    return handle, shape, memory.default_options(handle, shape)


def tiny_files(args: argparse.Namespace) -> int:
    """Write tiny models as single files; an existing file is left as it is (they are seeded)."""
    root = args.models_dir or host.models_root()
    builders = registry.tiny_builders()
    writable = [name for name, (family, _build) in builders.items() if family.files is not None]
    for name in args.names or writable:
        if name not in writable:
            raise UsageError(f"{name!r} has no single-file form; choose from {', '.join(writable)}")
        formats = builders[name][0].files.formats
        if args.format not in formats:
            if args.names:
                raise UsageError(f"{name!r} has no {args.format} files; its formats: {', '.join(formats)}")
            print(f"{name}  (no {args.format} files; its formats: {', '.join(formats)})")
            continue
        for slot, path in models.tiny_single_files(name, root, args.format).items():
            print(f"{name}  {slot:<17} {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        commands = {"plan": plan, "tiers": tiers, "tiny-files": tiny_files}
        return commands[args.command](args)
    except (I2VError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
