"""Each tier workflow's machine and VRAMGuard's plan for it, at the workflow's full settings.

One place for both, because two readers must agree on them: ``tests/test_workflows.py`` checks that
every tier fits the card and RAM it is sized for, and ``docs/pictures/tier_chart.py`` draws the
README's chart from the very same plans, so the chart cannot show figures the test does not check.
The plan is made for the published model with no weights on disk: its configuration
(``models.describe_published``), or for a tier on ComfyUI's files, header-only stand-ins of those files
(``models.handle_for_files``), plus the tier's LoRAs as header-only stand-ins.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from i2v_nodes.families import registry
from i2v_nodes.families.contract.files import FILE_SLOTS
from i2v_nodes.runtime import memory
from i2v_nodes.runtime.loading import lora, models
from i2v_nodes.runtime.memory import guard

GiB = 2**30

# tier workflow name -> (card GiB, system RAM GiB) of the machine the tier is sized for
MACHINES = {"i2v-preview": (8, 16), "i2v-12gb": (12, 16), "i2v-24gb": (24, 32), "i2v-40gb": (40, 32),
            "wan-12gb": (12, 32), "wan-16gb": (16, 32), "wan-24gb": (24, 64), "wan-48gb": (48, 128),
            "wan-80gb": (80, 128)}
MACHINES.update({f"{name}-files": machine for name, machine in MACHINES.items() if name.startswith("wan-")})
MACHINES.update({f"{family}-{name.removeprefix('wan-')}": machine for name, machine in MACHINES.items()
                 for family in ("ltx-video", "ltx2", "svd", "animatediff")
                 if name.startswith("wan-") and not name.endswith("-files")})
# 8 GB cards with 16 GB of RAM: SVD and AnimateDiff as published; Wan 2.2 A14B on GGUF Q4_K_M experts
# (neither LTX model, nor Wan's published models, fits one)
MACHINES.update({"svd-8gb": (8, 16), "animatediff-8gb": (8, 16), "wan-8gb-files-gguf": (8, 16)})
# ComfyUI's 4-step lightx2v setup, on each tier whose files are Wan 2.2 A14B's (every card from 12 GB)
MACHINES.update({f"wan-{gb}gb-files-lightx2v": MACHINES[f"wan-{gb}gb"] for gb in (12, 16, 24, 48, 80)})
# ComfyUI's Wan 2.2 14B first-last-frame template on the same files, for 16 and 24 GB cards
MACHINES.update({f"wan-{gb}gb-files-flf": MACHINES[f"wan-{gb}gb"] for gb in (16, 24)})


def _templates() -> dict[str, tuple[Any, str, Callable[[Path], Mapping[str, Path]]]]:
    """The first diffusion model file of each set of files the families' tiers name (ComfyUI's
    template files of a variant, or another set such as GGUF experts) -> (family, variant, the
    writer of the set's header-only stand-ins in a folder)."""
    sets = {}
    for family in (f for f in registry.REGISTERED if f.tiers):
        for variant, files in family.tiers.comfy_files.items():
            write = functools.partial(family.tiers.files_stand_ins, variant=variant)
            sets[files["diffusion_model"]] = (family, variant, write)
        for file_set in family.tiers.file_tiers:
            sets[file_set.files["diffusion_model"]] = (family, file_set.variant, file_set.stand_ins)
    return sets


def _hub_of(family: Any, variant: str) -> str:
    """The first published model of a variant (the one its tiers are sized from)."""
    return next(hub for hub, known in family.spec.hub_variants.items() if known == variant)


# ComfyUI's template file of each variant's (first) diffusion model -> the published model it is
HUB_OF_TEMPLATE = {name: _hub_of(family, variant) for name, (family, variant, _write) in _templates().items()}


def nodes_of(api: dict, class_prefix: str) -> list[dict[str, Any]]:
    """The API-format nodes whose class starts with ``class_prefix``, in the workflow's order."""
    return [n for n in api.values() if n["class_type"].startswith(class_prefix)]


def tier_handle(api: dict, stand_in_dir: Path) -> Any:
    """The handle the tier's loader and LoRA nodes give for the published model, no weights read.
    ``stand_in_dir`` receives the header-only stand-ins of ComfyUI's files and of the LoRAs."""
    node = nodes_of(api, "LoadI2VModel")[0]
    loader = node["inputs"]
    if node["class_type"] == "LoadI2VModel":
        handle = models.describe_published(loader["model"], device="cuda", offload=loader["offload"],
                                           weights=loader["weights"])
    else:  # ComfyUI's files, sized from the stand-ins' headers (the published shapes and formats)
        _family, _variant, write_stand_ins = _templates()[loader["diffusion_model"]]
        paths = write_stand_ins(stand_in_dir)
        named = {slot: name for slot, name in loader.items() if slot in FILE_SLOTS and name != "none"}
        if {slot: p.name for slot, p in paths.items()} != named:
            raise ValueError(f"the workflow names {named}, ComfyUI's template has {paths}")
        handle = models.handle_for_files(paths, device="cuda", offload=loader["offload"],
                                         weights=loader["weights"])
    for node in nodes_of(api, "I2VLoRA"):
        inputs = node["inputs"]
        handle = handle.with_lora(lora.LoraSpec(str(_lora_stand_in(inputs["lora_name"], stand_in_dir)),
                                                inputs["strength"], inputs["target"]))
    return handle


def _lora_stand_in(name: str, stand_in_dir: Path) -> Path:
    """A header-only stand-in of a LoRA file a family's LoRA tiers name."""
    for family in registry.REGISTERED:
        for tiers in family.tiers.lora_tiers if family.tiers else ():
            if name in tiers.loras.values():
                return {p.name: p for p in tiers.stand_ins(stand_in_dir).values()}[name]
    raise KeyError(f"no family's LoRA tiers name {name}")


def plan_tier(api: dict, name: str, stand_in_dir: Path) -> guard.Plan:
    """VRAMGuard's plan for the tier ``name`` (API format ``api``) on the machine it is sized for, with
    the workflow's own VRAMGuard settings (and I2VSample's end image, which it counts as I2VSample
    does). Raises MemoryGuardError when it does not fit."""
    settings = nodes_of(api, "VRAMGuard")[0]["inputs"]
    card, ram = (gib * GiB for gib in MACHINES[name])
    sample = nodes_of(api, "I2VSample")[0]["inputs"]
    shape = memory.RunShape(settings["width"], settings["height"], settings["num_frames"],
                            settings["batch_size"], keyframes=2 if "end_image" in sample else 1)
    budget = guard.Budget(card, card, settings["headroom"], ram_free=ram, ram_total=ram)
    return guard.plan_run(tier_handle(api, stand_in_dir), shape, settings["policy"], budget)
