"""Builds the tier workflows (UI format), their API-format copies and the tier table in docs/tiers.md.

The tiers are data each family declares (its ``tiers``, a :class:`Tiers`): presets set by hand (as
I2VGen-XL's, from the seed article's table), or candidate runs from which the planner picks, per
card, the best model, size and frame count that VRAMGuard's estimate fits on the card (and in the
system RAM such a machine has), with the fastest way to run it; those again on ComfyUI's own files
where the family declares them, and those again with LoRAs. This script names no family.

Each tier becomes ``workflows/<name>.json``, a graph the editor loads (LoadImage -> LoadI2VModel ->
VRAMGuard -> I2VSample [<- options] -> EncodeVideo, plus a Note), and
``workflows/api/<name>.json``, what host_stub's converter makes of it. The Note's figures are
VRAMGuard's own estimate and torch's FLOP count for the published model, so no text can drift from
the code.

    python workflows/build.py          # rewrite all files
    python workflows/build.py --check  # exit 1 if any file is out of date
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import tempfile
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from workflows import tier_notes  # noqa: E402
from workflows.tier_notes import EXAMPLE_END_IMAGE, EXAMPLE_IMAGE, note_text  # noqa: E402

PROMPT = "waves rolling onto the beach at sunset, a sailboat drifting slowly, clouds moving"
GiB = 2**30
TABLE_DOC = REPO / "docs" / "tiers.md"  # holds the tier table between these markers
TABLE_START, TABLE_END = "<!-- tiers:start -->", "<!-- tiers:end -->"


@dataclass(frozen=True)
class Tier:
    name: str
    title: str
    card_gib: int  # total memory of the card the tier is sized for
    ram_gib: int  # system RAM of the machine the tier is sized for
    card: str
    model: str  # a published hub id (its configuration sizes the tier)
    width: int
    height: int
    frames: int
    steps: int
    fps: int
    guidance: float
    negative: str
    remarks: str
    family: str  # the registered family whose tier it is
    variant: str
    weights: str = "default"
    offload: str = "none"
    policy: str = "error"  # "adapt" where the fit needs VAE tiling, which only the guard turns on
    options: dict[str, float] = field(default_factory=dict)  # the family's options node widgets, if shown
    expected: str = ""  # what the seed article expects, for comparison
    files: dict[str, str] = field(default_factory=dict)  # LoadI2VModelFiles' slot -> ComfyUI's file name
    sound: bool = False  # the model makes sound: I2VSample's audio goes into EncodeVideo
    loras: tuple[tuple[str, str, float], ...] = ()  # I2VLoRA nodes, in chain order: (file, target, strength)
    sampler: str = "default"  # an I2VSamplerOptions node's sampler where it is not the model's own
    file_set: str = ""  # the family's FileTiers (its suffix) whose files these are; "": ComfyUI's template
    end_image: bool = False  # first-last-frame: a second LoadImage into I2VSample's end_image

    @property
    def keyframes(self) -> int:
        """Images each clip is conditioned on, as the plan counts them."""
        return 2 if self.end_image else 1

    @property
    def loader(self) -> str:
        return "LoadI2VModelFiles" if self.files else "LoadI2VModel"

    @property
    def declared(self) -> Any:
        """The family's declared tiers (its :class:`Tiers`)."""
        from i2v_nodes.families import registry

        return registry.get(self.family).tiers


# The cards people own, with the system RAM such machines usually have: each family with candidate
# runs gets, per card, the first run that fits, run its fastest way (full-precision weights before fp8,
# no offload before model before group).
CARDS = (
    (8, 16, "RTX 3070 / 4060 8 GB"),
    (12, 32, "RTX 3060 / 4070 12 GB"),
    (16, 32, "RTX 4060 Ti / 4080 16 GB"),
    (24, 64, "RTX 3090 / 4090 24 GB"),
    (48, 128, "RTX 6000 Ada / A6000 48 GB"),
    (80, 128, "A100 / H100 80 GB"),
)


def all_tiers() -> list[Tier]:
    """Every family's tiers, in the registry's order: its presets, its planned tiers, those again on
    ComfyUI's files, those again with LoRAs, its tiers on other files (such as GGUF experts), and file
    tiers again as first-last-frame workflows."""
    from i2v_nodes.families import registry

    tiers = []
    for family in registry.REGISTERED:
        if family.tiers is None:
            continue
        planned = preset_tiers(family) + planned_tiers(family)
        files = files_tiers(family, planned)
        tiers += planned + files + [t for lora in family.tiers.lora_tiers for t in lora_tiers(lora, files)]
        tiers += [t for file_set in family.tiers.file_tiers for t in file_set_tiers(family, file_set)]
        tiers += [t for declared in family.tiers.keyframe_tiers for t in keyframe_tiers(declared, files)]
    return tiers


def preset_tiers(family: Any) -> list[Tier]:
    from i2v_nodes.runtime.loading import models

    tiers = []
    for p in family.tiers.presets:
        handle = models.describe_published(p.hub_id)
        tiers.append(Tier(p.name, p.title, p.card_gib, p.ram_gib, p.card, p.hub_id, p.size, p.size,
                          p.frames, p.steps, p.fps, p.guidance, handle.rules.default_negative, p.remarks,
                          family.name, handle.variant, expected=p.expected))
    return tiers


def planned_tiers(family: Any) -> list[Tier]:
    """One tier per card that a run fits: the first run (best to worst) that fits, its fastest way."""
    from i2v_nodes.runtime import memory
    from i2v_nodes.runtime.loading import models
    from i2v_nodes.runtime.memory import planner

    declared, tiers = family.tiers, []
    if not declared.runs:
        return tiers
    for card_gib, ram_gib, card in CARDS:
        runs = [(models.describe_published(run.hub_id, device="cuda"),
                 memory.RunShape(run.width, run.height, run.frames)) for run in declared.runs]
        choice = planner.choose(runs, planner.Machine(card_gib, ram_gib))
        if choice is None:
            continue
        handle, shape, chosen = choice.handle, choice.shape, choice.options
        rules = handle.rules
        tiers.append(Tier(
            f"{declared.prefix}-{card_gib}gb", f"{declared.label} {card_gib} GB ({card})", card_gib, ram_gib,
            card, handle.name, shape.width, shape.height, shape.num_frames, rules.default_steps,
            rules.default_fps, rules.default_guidance, rules.default_negative,
            " ".join([model_remarks(handle), *_memory_remarks(handle, chosen, files=False)]),
            family.name, handle.variant, weights=handle.weights, offload=chosen.offload,
            policy="adapt" if chosen.vae_tiling else "error",
            options=dict(declared.options.get(handle.variant, {})), sound=family.spec.makes_sound))
    fitted = {tier.card_gib for tier in tiers}
    if declared.fit_from_card is not None and any(
        card_gib not in fitted for card_gib, _ram, _card in CARDS if card_gib >= declared.fit_from_card
    ):
        raise SystemExit(f"a {family.title} run must fit every card from {declared.fit_from_card} GB")
    return tiers


def model_remarks(handle: Any) -> str:
    """What the family's tiers say of this model (its variant's words, with its name and size)."""
    text = handle.family.tiers.remarks.get(handle.variant, "")
    denoiser = max(dict(handle.params)[role] for role in handle.roles.denoisers)
    return text.format(model=handle.name.split("/")[-1], size=f"{round(denoiser / 1e9)}B")


def _memory_remarks(handle: Any, options: Any, files: bool) -> list[str]:
    parts = []
    if files and handle.weights == "fp8":
        parts.append(
            "The files are fp8 and stay fp8 in memory (each layer computes in bf16, with the file's "
            "scales), as ComfyUI runs them."
        )
    elif handle.weights == "fp8":
        parts.append(
            "Weights are stored in fp8 (LoadI2VModel's weights input) to halve the "
            f"{'experts' if len(handle.roles.denoisers) == 2 else 'transformer'}: a small loss of fine "
            "detail against bf16."
        )
    if options.offload != "none":
        parts.append(
            f"Offload '{options.offload}' keeps weights in system RAM and moves them in when needed "
            "(slower steps, but it fits)."
        )
    if options.vae_tiling:
        parts.append(
            "The 3-D VAE would not fit untiled: VRAMGuard's policy is 'adapt', which turns VAE tiling "
            "on and changes nothing else here."
        )
    return parts


def files_tiers(family: Any, tiers: list[Tier]) -> list[Tier]:
    """Each tier again, on the files ComfyUI's own templates download (same names, same folders) where
    the family declares them: the same model, size and frames, run the fastest way that fits."""
    from i2v_nodes.runtime import memory
    from i2v_nodes.runtime.memory import planner

    out = []
    for tier in tiers:
        if tier.variant not in family.tiers.comfy_files:
            continue
        shape = memory.RunShape(tier.width, tier.height, tier.frames)
        machine = planner.Machine(tier.card_gib, tier.ram_gib)
        choice = planner.choose([(files_handle(tier), shape)], machine)
        if choice is None:
            raise SystemExit(f"ComfyUI's {tier.variant} files do not fit {tier.card} at {tier.name}'s "
                             "settings")
        options = choice.options
        handle = files_handle(tier, offload=options.offload, weights=choice.handle.weights)
        files = {slot: path.name for slot, path in stand_in_paths(tier).items()}
        remarks = [family.tiers.files_remarks, model_remarks(handle), *_memory_remarks(handle, options, True)]
        out.append(dataclasses.replace(
            tier, name=f"{tier.name}-files", title=f"{tier.title}, ComfyUI's files",
            remarks=" ".join(remarks), weights=handle.weights, offload=options.offload,
            policy="adapt" if options.vae_tiling else "error", files=files))
    return out


def file_set_tiers(family: Any, file_set: Any) -> list[Tier]:
    """The family's tiers on another set of files (a ``FileTiers``, such as GGUF experts): for each of
    its cards, the first of its runs that fits, run the fastest way."""
    from i2v_nodes.runtime import memory
    from i2v_nodes.runtime.loading import models
    from i2v_nodes.runtime.memory import planner

    declared, spec, out = family.tiers, family.spec, []
    paths = _file_set_stand_ins(family.name, file_set.suffix)
    for card_gib, ram_gib, card in (c for c in CARDS if c[0] in file_set.cards):
        runs = {memory.RunShape(run.width, run.height, run.frames): run for run in file_set.runs}
        choice = planner.choose([(models.handle_for_files(paths, device="cuda"), shape) for shape in runs],
                                planner.Machine(card_gib, ram_gib))
        if choice is None:
            raise SystemExit(f"{family.title}'s {file_set.suffix} files fit no run on {card}")
        shape, options = choice.shape, choice.options
        handle = models.handle_for_files(paths, device="cuda", offload=options.offload,
                                         weights=choice.handle.weights)
        rules = handle.rules
        remarks = [file_set.remarks, model_remarks(handle), *_memory_remarks(handle, options, True)]
        out.append(Tier(
            f"{declared.prefix}-{card_gib}gb-files-{file_set.suffix}",
            f"{declared.label} {card_gib} GB ({card}){file_set.title}", card_gib, ram_gib, card,
            runs[shape].hub_id, shape.width, shape.height, shape.num_frames, rules.default_steps,
            rules.default_fps, rules.default_guidance, rules.default_negative, " ".join(remarks), family.name,
            handle.variant, weights=handle.weights, offload=options.offload,
            policy="adapt" if options.vae_tiling else "error",
            options=dict(declared.options.get(handle.variant, {})),
            files={slot: path.name for slot, path in paths.items()}, sound=spec.makes_sound,
            file_set=file_set.suffix))
    return out


@functools.cache
def _file_set_stand_ins(family: str, suffix: str) -> dict[str, Path]:
    from i2v_nodes.families import registry

    file_set = next(f for f in registry.get(family).tiers.file_tiers if f.suffix == suffix)
    return dict(file_set.stand_ins(Path(_stand_in_folder().name)))


@functools.cache
def _stand_in_folder() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="i2v-stand-ins-")  # removed when the process ends


def stand_in_paths(tier: Tier) -> dict[str, Path]:
    """Header-only stand-ins for the tier's files (ComfyUI's template files, or the family's other
    set it names): everything planning reads, no weights."""
    if tier.file_set:
        return _file_set_stand_ins(tier.family, tier.file_set)
    return _stand_ins(tier.family, tier.variant)


@functools.cache
def _stand_ins(family: str, variant: str) -> dict[str, Path]:
    from i2v_nodes.families import registry

    return registry.get(family).tiers.files_stand_ins(Path(_stand_in_folder().name), variant)


def files_handle(tier: Tier, offload: str = "none", weights: str = "default") -> Any:
    from i2v_nodes.runtime.loading import models

    return models.handle_for_files(stand_in_paths(tier), device="cuda", offload=offload, weights=weights)


def lora_tiers(lora: Any, tiers: list[Tier]) -> list[Tier]:
    """Each file tier of the LoRA tiers' variants again, with those LoRAs and the settings they were
    made for (such as a step-distill LoRA's few steps): the same files and memory choices."""
    out = []
    for tier in tiers:
        if tier.variant not in lora.variants:
            continue
        with_loras = dataclasses.replace(
            tier, name=f"{tier.name}-{lora.suffix}", title=f"{tier.title}{lora.title}", steps=lora.steps,
            guidance=lora.guidance, options=dict(lora.options), sampler=lora.sampler,
            loras=tuple((name, target, 1.0) for target, name in lora.loras.items()))
        with_loras = _lightest_offload_that_fits(with_loras)
        out.append(dataclasses.replace(with_loras, remarks=_lora_remarks(lora, tier, with_loras)))
    return out


def _lightest_offload_that_fits(tier: Tier) -> Tier:
    """The tier with its file tier's offload, or the next one up where the LoRAs' weights tip it over
    (a 48 GB tier that fitted with 0.8 GiB to spare)."""
    from i2v_nodes.errors import MemoryGuardError
    from i2v_nodes.runtime import memory
    from i2v_nodes.runtime.memory import guard, planner

    shape = memory.RunShape(tier.width, tier.height, tier.frames)
    budget = planner.Machine(tier.card_gib, tier.ram_gib).budget()
    order = ("none", "model", "group")
    for offload in order[order.index(tier.offload):] if tier.offload in order else (tier.offload,):
        candidate = dataclasses.replace(tier, offload=offload)
        try:
            plan = guard.plan_run(tier_handle(candidate), shape, tier.policy, budget)
        except MemoryGuardError:
            continue
        if plan.fits and not any(change.startswith("offload") for change in plan.changes):
            return candidate
    return tier


def keyframe_tiers(declared: Any, tiers: list[Tier]) -> list[Tier]:
    """The file tiers of the declared variants and cards again, first-last-frame: the same files, size
    and frames, re-planned with the end image counted (a build error if it no longer fits)."""
    from i2v_nodes.runtime import memory
    from i2v_nodes.runtime.memory import guard, planner

    out = []
    for tier in tiers:
        if tier.variant not in declared.variants or tier.card_gib not in declared.cards:
            continue
        flf = dataclasses.replace(tier, name=f"{tier.name}-{declared.suffix}",
                                  title=f"{tier.title}{declared.title}", end_image=True,
                                  remarks=" ".join([declared.remarks, tier.remarks]))
        shape = memory.RunShape(tier.width, tier.height, tier.frames, keyframes=flf.keyframes)
        budget = planner.Machine(tier.card_gib, tier.ram_gib).budget()
        guard.plan_run(tier_handle(flf), shape, tier.policy, budget)  # raises when it does not fit
        out.append(flf)
    return out


def _lora_remarks(lora: Any, tier: Tier, with_loras: Tier) -> str:
    from i2v_nodes.runtime import memory

    handle, added = tier_handle(tier), tier_handle(with_loras)
    lora_gib = (sum(memory.weight_bytes(added).values()) - sum(memory.weight_bytes(handle).values())) / GiB
    options = types.SimpleNamespace(offload=tier.offload, vae_tiling=tier.policy == "adapt")
    per_denoiser = lora_gib / len(handle.roles.denoisers)
    remarks = lora.remarks.format(lora_gib=per_denoiser)
    return " ".join([remarks, *_memory_remarks(handle, options, files=True)])


# --- figures for the Notes ---------------------------------------------------------------------


def tier_figures(tier: Tier) -> dict[str, Any]:
    """VRAMGuard's plan and the denoiser's compute for the published model at this tier, and where its
    files go."""
    from i2v_nodes.runtime import memory
    from i2v_nodes.runtime.memory import guard, planner

    handle = tier_handle(tier)
    shape = memory.RunShape(tier.width, tier.height, tier.frames, keyframes=tier.keyframes)
    plan = guard.plan_run(handle, shape, tier.policy, planner.Machine(tier.card_gib, tier.ram_gib).budget())
    return {
        "peak_gib": plan.estimate.peak / GiB,
        "ram_gib": plan.ram.peak / GiB,
        "ram_phase": plan.ram.phase,
        "tflop_per_step": step_tflop(handle, shape, guided=tier.guidance > 1),
        "precision": handle.precision,
        "vae_tiling": plan.options.vae_tiling,
        "weights_gib": sum(memory.weight_bytes(handle).values()) / GiB,
        "folders": {slot: path.parent.name for slot, path in stand_in_paths(tier).items()}
        if tier.files else {},
        **tier_notes.memory_figures(handle, shape, plan),
    }


def tier_handle(tier: Tier) -> Any:
    """The handle the tier's loader (and LoRA nodes) give for the published model, weights unread."""
    from i2v_nodes.runtime.loading import lora, models

    if tier.files:
        handle = files_handle(tier, tier.offload, tier.weights)
    else:
        handle = models.describe_published(
            tier.model, device="cuda", offload=tier.offload, weights=tier.weights
        )
    for name, target, strength in tier.loras:
        handle = handle.with_lora(lora.LoraSpec(str(stand_in_loras(tier)[name]), strength, target))
    return handle


def stand_in_loras(tier: Tier) -> dict[str, Path]:
    """Header-only stand-ins for the LoRA files the tier names (file name -> path)."""
    return _lora_stand_ins(tier.family, tier.name.rsplit("-", 1)[-1])


@functools.cache
def _lora_stand_ins(family: str, suffix: str) -> dict[str, Path]:
    from i2v_nodes.families import registry

    lora = next(lora for lora in registry.get(family).tiers.lora_tiers if lora.suffix == suffix)
    return {path.name: path for path in lora.stand_ins(Path(_stand_in_folder().name)).values()}


def step_tflop(handle: Any, shape: Any, guided: bool = True) -> float:
    """FLOPs of one denoising step (with CFG unless ``guided`` is off), counted on the meta device
    (every block)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from i2v_nodes.runtime.loading.precision import dtype_of

    family = handle.family
    rows, calls = (2, 1) if family.spec.cfg_in_one_call else (1, 2)
    if not guided:
        rows, calls = 1, 1
    trace = family.traces.denoiser(
        handle.variant,
        handle.configs_json,
        dtype_of(handle.precision),
        rows,
        shape.num_frames,
        shape.height,
        shape.width,
        full_depth=True,
    )
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        trace.fn(*trace.args, **trace.kwargs)
    return calls * counter.get_total_flops() / 1e12


# --- the graph ---------------------------------------------------------------------------------


class Graph:
    """A UI-format graph, laid out as the editor saves it (inputs: plain sockets, then widgets)."""

    def __init__(self, object_info: dict):
        self.info = object_info
        self.nodes: list[dict] = []
        self.links: list[list] = []

    def add(
        self,
        class_type: str,
        pos: tuple[int, int],
        size: tuple[int, int],
        widgets: list,
        title: str | None = None,
    ) -> dict:
        node_id = len(self.nodes) + 1
        node = {
            "id": node_id,
            "type": class_type,
            "pos": list(pos),
            "size": list(size),
            "flags": {},
            "order": node_id - 1,
            "mode": 0,
            "inputs": self._sockets(class_type),
            "outputs": self._outputs(class_type),
            "properties": {"Node name for S&R": class_type},
            "widgets_values": widgets,
        }
        if title:
            node["title"] = title
        self.nodes.append(node)
        return node

    def _sockets(self, class_type: str) -> list[dict]:
        if class_type == "Note":
            return []
        info = self.info[class_type]
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        order = info["input_order"].get("required", []) + info["input_order"].get("optional", [])
        plain, widgets = [], []
        for name in order:
            kind, options = specs[name][0], (specs[name][1] if len(specs[name]) > 1 else {})
            type_name = "COMBO" if isinstance(kind, list) else kind
            is_widget = (
                isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING", "BOOLEAN")
            ) and not options.get("forceInput")
            socket = {"name": name, "type": type_name, "link": None}
            if is_widget:
                socket["widget"] = {"name": name}
                widgets.append(socket)
            else:
                plain.append(socket)
        return plain + widgets

    def _outputs(self, class_type: str) -> list[dict]:
        if class_type == "Note":
            return []
        info = self.info[class_type]
        return [
            {"name": name, "type": kind, "links": [], "slot_index": i}
            for i, (name, kind) in enumerate(zip(info["output_name"], info["output"], strict=True))
        ]

    def link(self, source: dict, output: str, target: dict, input_name: str) -> None:
        link_id = len(self.links) + 1
        out_slot = next(i for i, o in enumerate(source["outputs"]) if o["name"] == output)
        in_slot = next(i for i, s in enumerate(target["inputs"]) if s["name"] == input_name)
        kind = source["outputs"][out_slot]["type"]
        source["outputs"][out_slot]["links"].append(link_id)
        target["inputs"][in_slot]["link"] = link_id
        self.links.append([link_id, source["id"], out_slot, target["id"], in_slot, kind])

    def to_json(self) -> dict:
        return {
            "last_node_id": len(self.nodes),
            "last_link_id": len(self.links),
            "nodes": self.nodes,
            "links": self.links,
            "groups": [],
            "config": {},
            # the view opens on the Note above the graph
            "extra": {"ds": {"scale": 0.8, "offset": [40, 380]}},
            "version": 0.4,
        }


def tier_workflow(tier: Tier, object_info: dict, figures: dict[str, Any]) -> dict:

    g = Graph(object_info)
    g.add("Note", (40, -330), (760, 300), [note_text(tier, figures)], title=f"i2v-nodes: {tier.title}")
    image = g.add("LoadImage", (40, 320), (320, 330), [EXAMPLE_IMAGE, "image"])
    if tier.files:
        from i2v_nodes.families.contract.files import FILE_SLOTS

        names = [tier.files.get(slot, "none") for slot in FILE_SLOTS]
        widgets = [*names, "auto", "auto", "auto", tier.offload, False, tier.weights]
        model = g.add("LoadI2VModelFiles", (40, -10), (320, 300), widgets)
    else:
        widgets = [tier.model, "auto", "auto", "auto", tier.offload, False, tier.weights]
        model = g.add("LoadI2VModel", (40, 20), (320, 260), widgets)
    loras = []
    for i, (name, target, strength) in enumerate(tier.loras):  # a column between loader and guard
        loras.append(g.add("I2VLoRA", (420, 20 + 170 * i), (320, 130), [name, strength, target],
                           title=f"LoRA ({target.replace('_', ' ')})"))
    dx = 360 if loras else 0
    guard = g.add(
        "VRAMGuard", (420 + dx, 20), (320, 280), [tier.width, tier.height, tier.frames, 1, tier.policy, 0.10]
    )
    sample = g.add(
        "I2VSample",
        (800 + dx, 20),
        (400, 540),
        [
            PROMPT,
            tier.negative,
            tier.width,
            tier.height,
            tier.frames,
            tier.steps,
            tier.guidance,
            42,
            "randomize",
            1,
            tier.fps,
            0,
        ],
    )
    encode = g.add(
        "EncodeVideo",
        (1260 + dx, 20),
        (360, 460),
        [float(tier.fps), "mp4-h264", 19, f"i2v/{tier.name.removeprefix('i2v-')}", 0, False, True],
    )
    if tier.options:
        from i2v_nodes.families import registry

        node = registry.get(tier.family).spec.options_node
        options = g.add(node, (420 + dx, 360), (320, 160), list(tier.options.values()))
        g.link(options, "options", sample, "options")
        if tier.sampler != "default":  # chained into the family's options node
            chosen = g.add("I2VSamplerOptions", (420 + dx, 560), (320, 80), [tier.sampler])
            g.link(chosen, "options", options, "options")
    for node in loras:
        g.link(model, "model", node, "model")
        model = node
    g.link(model, "model", guard, "model")
    g.link(guard, "model", sample, "model")
    g.link(image, "IMAGE", sample, "image")
    if tier.end_image:
        end = g.add("LoadImage", (40, 700), (320, 330), [EXAMPLE_END_IMAGE, "image"],
                    title="Load Image (end)")
        g.link(end, "IMAGE", sample, "end_image")
    for name in ("width", "height", "num_frames", "batch_size"):
        g.link(guard, name, sample, name)
    g.link(sample, "frames", encode, "frames")
    g.link(sample, "fps", encode, "fps")
    g.link(sample, "frames_per_clip", encode, "frames_per_clip")
    if tier.sound:
        g.link(sample, "audio", encode, "audio")
    return g.to_json()


# --- the tier table in docs/tiers.md -----------------------------------------------------------------


def tier_table(rows: list[tuple[Tier, dict[str, Any]]]) -> str:
    lines = [
        "| workflow | card (RAM) | model | size | frames | steps | fps | guidance | memory options | "
        "VRAMGuard: GPU / RAM |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tier, figures in rows:
        options = [f"offload {tier.offload}"] if tier.offload != "none" else []
        options += [("fp8 files" if tier.files else "fp8 weights")] if tier.weights == "fp8" else []
        options += ["VAE tiling (adapt)"] if figures["vae_tiling"] else []
        options += ["streamed per phase"] if figures["streamed"] else []
        backed = figures["ram_file_backed_gib"]
        peaks = f"{figures['peak_gib']:.1f} / {figures['ram_gib']:.1f} GiB" + (
            f" ({backed:.1f} file-backed)" if backed >= 0.05 else "")
        lines.append(
            f"| `{tier.name}.json` | {tier.card} ({tier.ram_gib} GB) | {_model_cell(tier)} | "
            f"{tier.width}x{tier.height} | {tier.frames} | {tier.steps} | {tier.fps} | {tier.guidance} | "
            f"{', '.join(options) or 'none'} | {peaks} |"
        )
    return "\n".join(lines)


def _model_cell(tier: Tier) -> str:
    if not tier.files:
        return f"`{tier.model}`"
    cell = "".join(lora.cell for lora in tier.declared.lora_tiers if tier.name.endswith(f"-{lora.suffix}"))
    cell += "".join(f.cell for f in tier.declared.file_tiers if f.suffix == tier.file_set)
    return ("" if tier.file_set else "ComfyUI's ") + " + ".join(
        f"`{name.removesuffix('.safetensors').removesuffix('.gguf')}`"
        for slot, name in tier.files.items()
        if slot.startswith("diffusion_model")
    ) + cell


def doc_with_table(table: str) -> str:
    doc = TABLE_DOC.read_text(encoding="utf-8")
    start, end = doc.index(TABLE_START) + len(TABLE_START), doc.index(TABLE_END)
    return doc[:start] + "\n" + table + "\n" + doc[end:]


# --- writing -----------------------------------------------------------------------------------


def render(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def build() -> dict[Path, str]:
    """Every file this script owns, with its content."""
    from host_stub import Host

    host = Host(packs=[str(REPO)])
    object_info = host.object_info()
    files: dict[Path, str] = {}
    rows = []
    for tier in all_tiers():
        figures = tier_figures(tier)
        rows.append((tier, figures))
        ui = tier_workflow(tier, object_info, figures)
        files[HERE / f"{tier.name}.json"] = render(ui)
        files[HERE / "api" / f"{tier.name}.json"] = render(host.convert(ui))
    files[TABLE_DOC] = doc_with_table(tier_table(rows))
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report out-of-date files, write nothing")
    args = parser.parse_args()
    stale = []
    for path, text in build().items():
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(("out of date: " if args.check else "wrote ") + str(path.relative_to(REPO)))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
