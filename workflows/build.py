"""Builds the tier workflows (UI format), their API-format copies and the tier table in docs/tiers.md.

The tiers are data. Each family has its own: I2VGen-XL's follow the seed article's preset table;
Wan's are chosen by the planner, per card: the best model, size and frame count that VRAMGuard's
estimate fits on the card (and in the system RAM such a machine has), with the fastest way to run
it. Each tier becomes ``workflows/<name>.json``, a graph the editor loads (LoadImage ->
LoadI2VModel -> VRAMGuard -> I2VSample [<- options] -> EncodeVideo, plus a Note), and
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

EXAMPLE_IMAGE = "i2v-example.png"
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
    weights: str = "default"
    offload: str = "none"
    policy: str = "error"  # "adapt" where the fit needs VAE tiling, which only the guard turns on
    options: dict[str, float] = field(default_factory=dict)  # the family's options node widgets, if shown
    expected: str = ""  # what the seed article expects, for comparison
    files: dict[str, str] = field(default_factory=dict)  # LoadI2VModelFiles' slot -> ComfyUI's file name
    sound: bool = False  # the model makes sound: I2VSample's audio goes into EncodeVideo
    loras: tuple[tuple[str, str, float], ...] = ()  # I2VLoRA nodes, in chain order: (file, target, strength)

    @property
    def loader(self) -> str:
        return "LoadI2VModelFiles" if self.files else "LoadI2VModel"


def i2vgen_tiers() -> list[Tier]:
    from i2v_nodes.runtime.loading import models

    model = "ali-vilab/i2vgen-xl"
    negative = models.describe_published(model).rules.default_negative

    def tier(name, title, card_gib, card, size, frames, steps, fps, guidance, expected, remarks):
        return Tier(
            name,
            title,
            card_gib,
            16 if card_gib <= 12 else 32,
            card,
            model,
            size,
            size,
            frames,
            steps,
            fps,
            guidance,
            negative,
            remarks,
            expected=expected,
        )

    return [
        tier(
            "i2v-preview",
            "Fast preview",
            8,
            "any 8 GB GPU",
            256,
            8,
            30,
            8,
            9.0,
            "a few seconds",
            "For trying prompts and images quickly before a full-size run.",
        ),
        tier(
            "i2v-12gb",
            "12 GB (e.g. RTX 3060)",
            12,
            "RTX 3060 12 GB",
            512,
            16,
            40,
            8,
            9.0,
            "50-70 s",
            "The standard mode: 512x512 is I2VGen-XL's sweet spot and 16 frames its trained length. "
            "The seed table doubted 512p on 12 GB; VRAMGuard's estimate (fp16 weights, fp32 VAE, "
            "decode in small chunks) fits with room to spare, so the tier keeps it.",
        ),
        tier(
            "i2v-24gb",
            "24 GB (e.g. RTX 4090)",
            24,
            "RTX 4090 24 GB",
            768,
            24,
            60,
            12,
            10.0,
            "80-100 s",
            "24 frames is above the 16 I2VGen-XL was trained on: motion can drift late in the clip "
            "(VRAMGuard's report says so). Set num_frames to 16 on both VRAMGuard and I2VSample for the "
            "most coherent motion.",
        ),
        tier(
            "i2v-40gb",
            "40 GB+ (e.g. A100)",
            40,
            "A100 40 GB",
            1024,
            32,
            80,
            24,
            11.0,
            "120-150 s",
            "32 frames is twice the trained length (motion may drift), and past 60 steps quality barely "
            "improves: 60 steps saves a quarter of the time for the same look. Both are kept at the seed "
            "table's values so the tier matches it; lower them freely.",
        ),
    ]


# Wan: the cards people own, with the system RAM such machines usually have, and the candidate
# runs from best to worst. The planner picks, per card, the first candidate that fits and its
# fastest way to run (full-precision weights before fp8, no offload before model before group).
WAN_CARDS = (
    (12, 32, "RTX 3060 / 4070 12 GB"),
    (16, 64, "RTX 4060 Ti / 4080 16 GB"),
    (24, 64, "RTX 3090 / 4090 24 GB"),
    (48, 128, "RTX 6000 Ada / A6000 48 GB"),
    (80, 128, "A100 / H100 80 GB"),
)
WAN_CANDIDATES = (
    ("Wan-AI/Wan2.2-I2V-A14B-Diffusers", 1280, 720, 81),
    ("Wan-AI/Wan2.2-I2V-A14B-Diffusers", 832, 480, 81),
    ("Wan-AI/Wan2.2-TI2V-5B-Diffusers", 1280, 704, 121),
)


ANIMATEDIFF_CANDIDATES = (("openmmlab/PIA-condition-adapter", 512, 512, 16),)
SVD_CANDIDATES = (
    ("stabilityai/stable-video-diffusion-img2vid-xt-1-1", 1024, 576, 25),
    ("stabilityai/stable-video-diffusion-img2vid", 1024, 576, 14),
)
LTX2_CANDIDATES = (
    ("Lightricks/LTX-2", 1280, 704, 121),
    ("Lightricks/LTX-2", 768, 512, 121),
)
LTX_CANDIDATES = (
    ("Lightricks/LTX-Video-0.9.7-dev", 1216, 704, 121),
    ("Lightricks/LTX-Video-0.9.7-dev", 768, 512, 121),
    ("Lightricks/LTX-Video-0.9.5", 768, 512, 121),
)


def wan_tiers() -> list[Tier]:
    def options(handle: Any) -> dict[str, float]:
        if len(handle.roles.denoisers) < 2:
            return {}
        return {"guidance_scale_2": handle.rules.default_guidance, "boundary_ratio": 0.0, "flow_shift": 0.0}

    tiers = planned_tiers("wan", "Wan", WAN_CANDIDATES, options)
    if len(tiers) < len(WAN_CARDS):
        raise SystemExit("a Wan candidate must fit every card")
    return tiers


def ltx_tiers() -> list[Tier]:
    from i2v_nodes.runtime.families import LTX_VIDEO

    return planned_tiers("ltx-video", "LTX-Video", LTX_CANDIDATES,
                         lambda handle: {name: -1.0 for name in LTX_VIDEO.option_inputs()})


def svd_tiers() -> list[Tier]:
    from i2v_nodes.runtime.families import SVD

    return planned_tiers("svd", "SVD", SVD_CANDIDATES,
                         lambda handle: {name: -1 for name in SVD.option_inputs()})


def animatediff_tiers() -> list[Tier]:
    from i2v_nodes.runtime.families import ANIMATEDIFF

    return planned_tiers("animatediff", "AnimateDiff (PIA)", ANIMATEDIFF_CANDIDATES,
                         lambda handle: {name: -1 for name in ANIMATEDIFF.option_inputs()})


def ltx2_tiers() -> list[Tier]:
    return planned_tiers("ltx2", "LTX-2", LTX2_CANDIDATES, lambda handle: {})


def planned_tiers(prefix: str, label: str, candidates: tuple, options: Any) -> list[Tier]:
    """One tier per card that a candidate fits: the first candidate (best to worst) that fits, run
    its fastest way. ``options(handle)`` gives the options node's widgets to show ({} for none)."""
    from i2v_nodes.runtime import memory
    from i2v_nodes.runtime.loading import models
    from i2v_nodes.runtime.memory import planner

    tiers = []
    for card_gib, ram_gib, card in WAN_CARDS:
        runs = [(models.describe_published(hub, device="cuda"), memory.RunShape(w, h, f))
                for hub, w, h, f in candidates]
        choice = planner.choose(runs, planner.Machine(card_gib, ram_gib))
        if choice is None:
            continue
        handle, shape, chosen = choice.handle, choice.shape, choice.options
        rules = handle.rules
        tiers.append(
            Tier(
                f"{prefix}-{card_gib}gb",
                f"{label} {card_gib} GB ({card})",
                card_gib,
                ram_gib,
                card,
                handle.name,
                shape.width,
                shape.height,
                shape.num_frames,
                rules.default_steps,
                rules.default_fps,
                rules.default_guidance,
                rules.default_negative,
                _remarks(handle, chosen),
                weights=handle.weights,
                offload=chosen.offload,
                policy="adapt" if chosen.vae_tiling else "error",
                options=options(handle),
                sound=handle.family_impl.makes_sound,
            )
        )
    return tiers


def _remarks(handle: Any, options: Any, files: bool = False) -> str:
    if handle.family == "ltx-video":
        return " ".join([_ltx_remarks(handle), *_memory_remarks(handle, options, files)])
    if handle.family == "ltx2":
        return " ".join([LTX2_REMARKS, *_memory_remarks(handle, options, files)])
    if handle.family == "svd":
        return " ".join([SVD_REMARKS, *_memory_remarks(handle, options, files)])
    if handle.family == "animatediff":
        return " ".join([ANIMATEDIFF_REMARKS, *_memory_remarks(handle, options, files)])
    return _wan_remarks(handle, options, len(handle.roles.denoisers) == 2, files)


ANIMATEDIFF_REMARKS = (
    "AnimateDiff image-to-video through PIA: a Stable Diffusion 1.5 base with PIA's motion adapter, "
    "which conditions every frame on the image. 16 frames at 512x512 is what it was trained on (up to 32 "
    "run with a warning). AnimateDiffOptions sets strength (lower keeps closer to the image) and PIA's "
    "motion presets (0-2 more motion, 3-5 looping, 6-8 style transfer); every -1 keeps the model's own."
)
SVD_REMARKS = (
    "Stable Video Diffusion: the image alone drives the video (the prompts are ignored, and I2VSample's "
    "report says so); guidance ramps from SVDOptions' min_guidance_scale on the first frame to "
    "I2VSample's guidance_scale on the last, and target_fps is its fps conditioning. SVDOptions sets the "
    "motion bucket (more or less motion) and the noise augmentation (more motion, less likeness); every "
    "-1 keeps the model's own. fp16 with an fp32 VAE; a decode that overflows is retried in fp32."
)
LTX2_REMARKS = (
    "LTX-2: a 19B audio-video transformer with the Gemma 3 12B text encoder; one run makes the clip and "
    "its sound. I2VSample's audio output goes into EncodeVideo's audio (AAC in the mp4), and target_fps is "
    "the frame rate the model is conditioned on. Describe the sound in the prompt too. LTX2Options (not "
    "in this graph) adds sound guidance, STG and modality guidance: each guidance pass costs a full "
    "transformer call per step."
)


def _ltx_remarks(handle: Any) -> str:
    size = "13B" if dict(handle.params)["transformer"] > 5e9 else "2B"
    return (
        f"LTX-Video ({handle.name.split('/')[-1]}): a {size} transformer with a 32x VAE (sizes a multiple "
        "of 32, frames 8k+1). LTXVideoOptions holds its decode timestep, decode noise, guidance rescale "
        "and image conditioning; -1 keeps the release's own. For 8 steps without guidance, load "
        "Lightricks/LTX-Video-0.9.7-distilled and set steps 8, guidance 1."
    )


def _wan_remarks(handle: Any, options: Any, a14b: bool, files: bool = False) -> str:
    parts = []
    if files:
        parts.append(
            "This is the tier on the very files ComfyUI's own Wan template downloads, in the folders it "
            "puts them in (LoadI2VModelFiles): nothing new to download."
        )
    if a14b:
        parts.append(
            "Wan 2.2 A14B: two 14B experts, one for the high-noise steps and one for the rest; "
            "WanOptions sets the second one's guidance (the Wan team uses 3.5 for both)."
        )
    else:
        parts.append("Wan 2.2 TI2V-5B: one 5B transformer with a 16x VAE, made for 1280x704 at 24 fps.")
    return " ".join([*parts, *_memory_remarks(handle, options, files)])


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


def files_tiers(tiers: list[Tier]) -> list[Tier]:
    """Each Wan tier again, on the files ComfyUI's own templates download (same names, same
    folders): the same model, size and frames, run the fastest way that fits with those files."""
    from i2v_nodes.runtime import memory
    from i2v_nodes.runtime.families.wan_configs import VARIANT_OF_HUB
    from i2v_nodes.runtime.memory import planner

    out = []
    for tier in tiers:
        variant = VARIANT_OF_HUB.get(tier.model)
        if variant is None:
            continue
        shape = memory.RunShape(tier.width, tier.height, tier.frames)
        choice = planner.choose(
            [(files_handle(variant), shape)], planner.Machine(tier.card_gib, tier.ram_gib)
        )
        if choice is None:
            raise SystemExit(f"ComfyUI's {variant} files do not fit {tier.card} at {tier.name}'s settings")
        options = choice.options
        handle = files_handle(variant, offload=options.offload, weights=choice.handle.weights)
        files = {slot: path.name for slot, path in stand_in_paths(variant).items()}
        out.append(
            dataclasses.replace(
                tier,
                name=f"{tier.name}-files",
                title=f"{tier.title}, ComfyUI's files",
                remarks=_wan_remarks(handle, options, len(handle.roles.denoisers) == 2, files=True),
                weights=handle.weights,
                offload=options.offload,
                policy="adapt" if options.vae_tiling else "error",
                files=files,
            )
        )
    return out


@functools.cache
def _stand_in_folder() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="i2v-stand-ins-")  # removed when the process ends


@functools.cache
def stand_in_paths(variant: str) -> dict[str, Path]:
    """Header-only stand-ins for ComfyUI's template files: everything planning reads, no weights."""
    from i2v_nodes.runtime.families.wan_stand_ins import write_template_files

    return write_template_files(Path(_stand_in_folder().name), variant)


def files_handle(variant: str, offload: str = "none", weights: str = "default") -> Any:
    from i2v_nodes.runtime.loading import models

    return models.handle_for_files(stand_in_paths(variant), device="cuda", offload=offload, weights=weights)


# ComfyUI's Wan 2.2 14B image-to-video template in its 4-step mode (video_wan2_2_14B_i2v, Comfy-Org's
# workflow_templates): lightx2v's LoRA on each expert at strength 1, 4 steps, cfg 1, ModelSamplingSD3
# shift 5 on both experts, the high-noise expert for steps 0-2 and the low-noise one for 2-4. diffusers'
# own switch (boundary 0.9) at flow shift 5 gives the same 2 + 2 split at 4 steps.
LIGHTX2V_STEPS = 4
LIGHTX2V_OPTIONS = {"guidance_scale_2": 1.0, "boundary_ratio": 0.9, "flow_shift": 5.0}


def lightx2v_tiers(tiers: list[Tier]) -> list[Tier]:
    """Each tier on ComfyUI's Wan 2.2 A14B files again, as ComfyUI's template runs it in 4 steps: the
    same files and memory choices, plus the two lightx2v LoRAs (one per expert), 4 steps, no CFG."""
    return [
        dataclasses.replace(
            tier,
            name=f"{tier.name}-lightx2v",
            title=f"{tier.title}, 4 steps (lightx2v LoRAs)",
            steps=LIGHTX2V_STEPS,
            guidance=LIGHTX2V_OPTIONS["guidance_scale_2"],
            options=dict(LIGHTX2V_OPTIONS),
            loras=_lightx2v_loras(),
            remarks=_lightx2v_remarks(tier),
        )
        for tier in tiers
        if "diffusion_model_2" in tier.files  # Wan 2.2 A14B: two experts
    ]


def _lightx2v_remarks(tier: Tier) -> str:
    from i2v_nodes.runtime import memory

    handle = tier_handle(tier)
    added = tier_handle(dataclasses.replace(tier, loras=_lightx2v_loras()))
    lora_gib = (sum(memory.weight_bytes(added).values()) - sum(memory.weight_bytes(handle).values())) / GiB
    options = types.SimpleNamespace(offload=tier.offload, vae_tiling=tier.policy == "adapt")
    return " ".join([(
        "ComfyUI's own 4-step setup, as its Wan 2.2 14B image-to-video template runs it: lightx2v's "
        "step-distill LoRAs, the high_noise one on the high-noise expert and the low_noise one on the "
        "low-noise expert (two I2VLoRA nodes, strength 1), then 4 steps without CFG (guidance 1 on both "
        "experts; WanOptions: flow shift 5 and the experts switching at 0.9, which splits the 4 steps 2 + 2 "
        "as the template does). 4 steps without CFG are 4 transformer calls where 40 steps with CFG are "
        "80: 20x fewer. The two LoRA files go in models/loras/ (ComfyUI's LoRA folder, where the template "
        f"downloads them). The LoRAs add {lora_gib / 2:.2f} GiB per expert (adapters in bf16), counted in "
        "the figures below."), *_memory_remarks(handle, options, files=True)])


def _lightx2v_loras() -> tuple[tuple[str, str, float], ...]:
    from i2v_nodes.runtime.families.wan_stand_ins import LIGHTX2V_LORAS

    return tuple((name, target, 1.0) for target, name in LIGHTX2V_LORAS.items())


def all_tiers() -> list[Tier]:
    wan = wan_tiers()
    files = files_tiers(wan)
    return (i2vgen_tiers() + wan + files + lightx2v_tiers(files) + ltx_tiers() + ltx2_tiers() + svd_tiers()
            + animatediff_tiers())


# --- figures for the Notes ---------------------------------------------------------------------


def tier_figures(tier: Tier) -> dict[str, Any]:
    """VRAMGuard's plan and the denoiser's compute for the published model at this tier."""
    from i2v_nodes.runtime import memory
    from i2v_nodes.runtime.memory import guard, planner

    handle = tier_handle(tier)
    shape = memory.RunShape(tier.width, tier.height, tier.frames)
    plan = guard.plan_run(handle, shape, tier.policy, planner.Machine(tier.card_gib, tier.ram_gib).budget())
    return {
        "peak_gib": plan.estimate.peak / GiB,
        "ram_gib": plan.ram.peak / GiB,
        "ram_phase": plan.ram.phase,
        "tflop_per_step": step_tflop(handle, shape, guided=tier.guidance > 1),
        "precision": handle.precision,
        "vae_tiling": plan.options.vae_tiling,
        "weights_gib": sum(memory.weight_bytes(handle).values()) / GiB,
    }


def tier_handle(tier: Tier) -> Any:
    """The handle the tier's loader (and LoRA nodes) give for the published model, weights unread."""
    from i2v_nodes.runtime.loading import lora, models

    if tier.files:
        from i2v_nodes.runtime.families.wan_configs import VARIANT_OF_HUB

        handle = files_handle(VARIANT_OF_HUB[tier.model], tier.offload, tier.weights)
    else:
        handle = models.describe_published(
            tier.model, device="cuda", offload=tier.offload, weights=tier.weights
        )
    for name, target, strength in tier.loras:
        handle = handle.with_lora(lora.LoraSpec(str(stand_in_loras()[name]), strength, target))
    return handle


@functools.cache
def stand_in_loras() -> dict[str, Path]:
    """Header-only stand-ins for the LoRA files the tiers name (file name -> path)."""
    from i2v_nodes.runtime.families.wan_stand_ins import write_lightx2v_loras

    return {path.name: path for path in write_lightx2v_loras(Path(_stand_in_folder().name)).values()}


def step_tflop(handle: Any, shape: Any, guided: bool = True) -> float:
    """FLOPs of one denoising step (with CFG unless ``guided`` is off), counted on the meta device
    (every block)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from i2v_nodes.runtime.loading.precision import dtype_of

    family = handle.family_impl
    rows, calls = (2, 1) if family.cfg_in_one_call else (1, 2)
    if not guided:
        rows, calls = 1, 1
    trace = family.denoiser_trace(
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


def note_text(tier: Tier, figures: dict[str, Any]) -> str:
    size = f"{tier.width}x{tier.height}"
    storage = (", fp8 files" if tier.files else ", fp8 weights") if tier.weights == "fp8" else ""
    options = f"offload {tier.offload}" + (
        ", VAE tiling (turned on by VRAMGuard's adapt)" if figures["vae_tiling"] else ""
    )
    model = " + ".join(tier.files.values()) if tier.files else tier.model
    return "\n".join(
        [
            f"{tier.title}: {model}, {size}, {tier.frames} frames, {tier.steps} steps, {tier.fps} fps, "
            f"guidance {tier.guidance}",
            "",
            tier.remarks,
            "",
            f"GPU memory: VRAMGuard estimates a peak of {figures['peak_gib']:.1f} GiB "
            f"({figures['precision']}{storage}, VAE fp32, {options}); the tier is sized for {tier.card} and "
            f"passes VRAMGuard's '{tier.policy}' policy there with 10% headroom. If it does not fit your "
            f"card, set VRAMGuard's policy to 'adapt' (decode chunking, VAE tiling, offload and "
            f"sub-batches; never the size, frames or weight storage).",
            f"System RAM: a peak of {figures['ram_gib']:.1f} GiB (while it "
            f"{_ram_phase(figures['ram_phase'])}); sized for a machine with {tier.ram_gib} GB. The weights "
            f"are {figures['weights_gib']:.1f} GiB as stored.",
            f"Compute: {figures['tflop_per_step']:.1f} TFLOP per step "
            f"{'with' if tier.guidance > 1 else 'without'} guidance (torch's FLOP counter), "
            f"{figures['tflop_per_step'] * tier.steps:.0f} TFLOP for the clip."
            + (f" The seed article expected {tier.expected} on its reference card." if tier.expected else "")
            + " Run bench/run.py on yours for measured figures.",
            "",
            f"Put {EXAMPLE_IMAGE} (from the repo's examples/ folder) or your own image in ComfyUI's input "
            f"folder. {_where_the_model_comes_from(tier)} The first run loads it (slow); later runs reuse "
            "it.",
        ]
    )


def _where_the_model_comes_from(tier: Tier) -> str:
    from i2v_nodes.runtime.families.base import FILE_FOLDERS
    from i2v_nodes.runtime.loading import models

    size = f"--width {tier.width} --height {tier.height} --frames {tier.frames}"
    if tier.files:
        listing = ", ".join([*(f"{FILE_FOLDERS[slot]}/{name}" for slot, name in tier.files.items()),
                             *(f"loras/{name}" for name, _target, _strength in tier.loras)])
        flags = " ".join(
            f"--{slot.replace('_', '-')} models/{FILE_FOLDERS[slot]}/{name}"
            for slot, name in tier.files.items()
        )
        return (
            f"The files ({listing}) are those ComfyUI's own Wan template downloads (from Comfy-Org's "
            f"repackaged Wan repos on Hugging Face): if you have run it, you have them. `python -m "
            f"i2v_nodes plan {flags} {size}` says whether it fits your machine first"
            + (" (without the LoRAs)." if tier.loras else ".")
        )
    folder = tier.model.split("/")[-1]
    plan = f"`python -m i2v_nodes plan {tier.model} {size}` says whether it fits your machine first."
    repos = models.families.for_hub_id(tier.model).hub_repos(tier.model)
    if len(repos) > 1:  # assembled from several repositories when it loads
        return (f"The model is made of {' and '.join(repos)}: turn LoadI2VModel's allow_download on to "
                f"fetch both into the Hugging Face cache once. {plan}")
    return (
        f"The model: `huggingface-cli download {tier.model} --local-dir models/i2v/{folder}` once (then "
        f"pick {folder}), or turn LoadI2VModel's allow_download on. {plan}"
    )


def _ram_phase(phase: str) -> str:
    return {"load": "loads the weights", "run": "runs"}.get(phase, "runs")


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
    from i2v_nodes.runtime.loading import models

    g = Graph(object_info)
    g.add("Note", (40, -330), (760, 300), [note_text(tier, figures)], title=f"i2v-nodes: {tier.title}")
    image = g.add("LoadImage", (40, 320), (320, 330), [EXAMPLE_IMAGE, "image"])
    if tier.files:
        from i2v_nodes.runtime.families.base import FILE_SLOTS

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
        node = models.families.for_hub_id(tier.model).options_node
        options = g.add(node, (420 + dx, 360), (320, 160), list(tier.options.values()))
        g.link(options, "options", sample, "options")
    for node in loras:
        g.link(model, "model", node, "model")
        model = node
    g.link(model, "model", guard, "model")
    g.link(guard, "model", sample, "model")
    g.link(image, "IMAGE", sample, "image")
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
        lines.append(
            f"| `{tier.name}.json` | {tier.card} ({tier.ram_gib} GB) | {_model_cell(tier)} | "
            f"{tier.width}x{tier.height} | {tier.frames} | {tier.steps} | {tier.fps} | {tier.guidance} | "
            f"{', '.join(options) or 'none'} | {figures['peak_gib']:.1f} / {figures['ram_gib']:.1f} GiB |"
        )
    return "\n".join(lines)


def _model_cell(tier: Tier) -> str:
    if not tier.files:
        return f"`{tier.model}`"
    return "ComfyUI's " + " + ".join(
        f"`{name.removesuffix('.safetensors')}`"
        for slot, name in tier.files.items()
        if slot.startswith("diffusion_model")
    ) + (", each with its lightx2v 4-step LoRA" if tier.loras else "")


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
