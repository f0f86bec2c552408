"""The tier workflows a family ships, as data: ``workflows/build.py`` turns them into graphs.

A tier is a ready graph for one card size and the system RAM such machines have. A family declares
the runs it would like, best first, and the planner picks, per card, the first that fits and its
fastest way to run; or it declares its tiers by hand (presets). What the tier's Note says about the
model comes from here too, so the builder never branches on a family.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class TierRun:
    """A candidate for a tier: a published model at a size."""

    hub_id: str
    width: int
    height: int
    frames: int


@dataclass(frozen=True)
class Preset:
    """A tier set by hand (I2VGen-XL's follow the seed article's preset table)."""

    name: str
    title: str
    card_gib: int  # the card's total memory
    ram_gib: int  # the machine's system RAM
    card: str
    hub_id: str
    size: int  # width and height
    frames: int
    steps: int
    fps: int
    guidance: float
    expected: str  # what the seed article expects, for comparison
    remarks: str


@dataclass(frozen=True)
class LoraTiers:
    """The file tiers again, each with LoRAs and the settings they were made for (ComfyUI's 4-step
    lightx2v setup): one tier per file tier of the given variants."""

    suffix: str  # appended to the tier's name
    title: str  # appended to the tier's title
    variants: tuple[str, ...]  # the variants it applies to
    loras: Mapping[str, str]  # I2VLoRA target -> the LoRA's file name (ComfyUI's loras folder)
    stand_ins: Callable[[Path], Mapping[str, Path]]  # header-only LoRA files (target -> path) to plan with
    steps: int
    guidance: float
    options: Mapping[str, float]  # the family's options node's widgets
    remarks: str  # the Note's words; ``{lora_gib}``: the LoRAs' weight per denoiser
    cell: str  # what the tier table adds to the model's cell
    sampler: str = "default"  # an I2VSamplerOptions node's sampler, chained before the options node


@dataclass(frozen=True)
class FileTiers:
    """Tiers on another set of single files a variant is published as, such as GGUF-quantised experts
    in ComfyUI-GGUF's folder, for cards the family's other tiers leave without that model: each
    ``<prefix>-<card>gb-files-<suffix>``, the first of its own runs that fits, run its fastest way."""

    suffix: str  # appended to the tier's name, after "-files"
    title: str  # appended to the tier's title
    variant: str
    files: Mapping[str, str]  # loader slot -> the file's name, as its publisher names it
    stand_ins: Callable[[Path], Mapping[str, Path]]  # header-only copies in ComfyUI's folders (slot -> path)
    runs: tuple[TierRun, ...]  # best first; each hub id is the published model the files are
    cards: tuple[int, ...]  # the card sizes (GiB total) it has a tier for
    remarks: str  # the Note's words on the files
    source: str  # where the files come from, e.g. "QuantStack's ... on Hugging Face"
    cell: str  # what the tier table and chart add to the model's cell


@dataclass(frozen=True)
class KeyframeTiers:
    """Tiers on ComfyUI's files again as first-last-frame workflows: a second LoadImage gives I2VSample's
    ``end_image`` (``<file tier>-<suffix>``), planned with the end image counted."""

    suffix: str  # appended to the file tier's name
    title: str  # appended to the tier's title
    variants: tuple[str, ...]  # the variants it applies to (they must take an end image)
    cards: tuple[int, ...]  # the card sizes (GiB total) it has a tier for
    remarks: str  # the Note's words on first-last-frame with this model


@dataclass(frozen=True)
class Tiers:
    """A family's tiers: ``<prefix>-<card>gb`` workflows, titled ``<label> <card> GB (...)``."""

    prefix: str
    label: str
    runs: tuple[TierRun, ...] = ()  # best first: each card gets the first that fits, run its fastest way
    presets: tuple[Preset, ...] = ()  # tiers set by hand
    fit_from_card: int | None = None  # a run must fit every card of this size (GiB) and up, else the
    # build fails
    remarks: Mapping[str, str] = field(default_factory=dict)  # variant -> the Note's words on the model;
    # ``{model}``: the hub id's last part, ``{size}``: the denoiser's parameters (e.g. "13B")
    options: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # variant -> options widgets
    # The same tiers again on ComfyUI's own files for the variant, as its template names them (the
    # family's single files say what they are); the Note's words for them, and where they come from.
    comfy_files: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # variant -> slot -> file
    files_stand_ins: Callable[[Path, str], dict[str, Path]] | None = None  # header-only copies, to plan
    files_remarks: str = ""
    files_source: str = ""  # where the files come from, e.g. "ComfyUI's own Wan template downloads (...)"
    lora_tiers: tuple[LoraTiers, ...] = ()
    file_tiers: tuple[FileTiers, ...] = ()  # tiers on other files the family's variants are published as
    keyframe_tiers: tuple[KeyframeTiers, ...] = ()  # file tiers again, first-last-frame
