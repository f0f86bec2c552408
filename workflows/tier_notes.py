"""The words of a tier workflow's Note, from VRAMGuard's plan for the tier's machine.

``workflows/build.py`` gathers the figures (:func:`memory_figures` for what RAM holds and what a
streamed run reads back); this module only writes them out, so no figure is typed in by hand.
The time the expert swaps cost is an estimate: the bytes read back over a disk's read speed, for
the two speeds in ``DISKS`` (a streamed run re-reads what it released from its file; the compute
of the steps is not in it).
"""

from __future__ import annotations

import dataclasses
from typing import Any

GiB = 2**30
EXAMPLE_IMAGE = "i2v-example.png"
EXAMPLE_END_IMAGE = "i2v-example-end.png"  # the same beach later: the first-last-frame tiers' end image
DISKS = (("an NVMe SSD", 2.0), ("a SATA SSD", 0.5))  # sequential read, GB/s (10^9 bytes)


def memory_figures(handle: Any, shape: Any, plan: Any) -> dict[str, Any]:
    """What RAM holds at the plan's peak (anonymous and file-backed), whether the run is streamed per
    phase and what everything resident would need, and the weights a streamed run reads back."""
    from i2v_nodes.runtime import memory

    sizes, roles = memory.weight_bytes(handle), handle.roles
    resident = dataclasses.replace(plan.options, residency="resident")
    return {
        "ram_file_backed_gib": plan.ram.file_backed / GiB,
        "streamed": plan.options.residency == "phase",
        "resident_ram_gib": memory.estimate_ram(handle, shape, resident).peak / GiB,
        "expert_gib": [sizes.get(role, 0) / GiB for role in roles.denoisers],
        "encoders_gib": sum(sizes.get(role, 0) for role in roles.encoders) / GiB,
    }


def _read_times(gib: float, short: bool = False) -> str:
    """How long reading ``gib`` takes from each disk in DISKS, in words (``short``: the speeds only)."""
    return " or ".join(f"{gib * GiB / (speed * 1e9):.0f} s " + (f"at {speed:g} GB/s" if short else
                                                               f"from {disk} at {speed:g} GB/s")
                       for disk, speed in DISKS)


def ram_text(tier: Any, figures: dict[str, Any]) -> str:
    """System RAM: the peak, anonymous and file-backed, and, when the plan streams, why and what that
    leaves out."""
    backed = figures["ram_file_backed_gib"]
    split = (f" ({figures['ram_gib'] - backed:.1f} GiB anonymous + {backed:.1f} GiB file-backed: pages "
             "mapped from files, which the kernel can drop and read again)" if backed >= 0.05 else "")
    text = (f"System RAM: a peak of {figures['ram_gib']:.1f} GiB{split} while it "
            f"{_ram_phase(figures['ram_phase'])}; sized for a machine with {tier.ram_gib} GB. The weights "
            f"are {figures['weights_gib']:.1f} GiB as stored.")
    if figures["streamed"]:
        text += (f" Everything resident would need {figures['resident_ram_gib']:.1f} GiB, so VRAMGuard "
                 "streams this run per phase (the same frames): each encoder and denoiser is resident only "
                 "while it runs and is read back from its file when it next runs. With that much RAM it "
                 "keeps everything resident instead, which is faster.")
    return text


def swap_text(figures: dict[str, Any]) -> str:
    """What the experts' swaps cost (two experts), or a streamed run's reads on a new prompt (one
    denoiser); nothing for a single denoiser kept resident."""
    experts, encoders = figures["expert_gib"], figures["encoders_gib"]
    if len(experts) == 2 and not figures["streamed"]:
        return ("Expert swaps: none. Both experts stay resident (on the card, or in RAM where offloaded), so "
                "the switch from the high-noise to the low-noise expert reads nothing from disk.")
    if len(experts) == 2:
        one = max(experts)
        return (f"Expert swaps: the two experts swap once per clip (the high-noise steps, then the low-noise "
                f"ones), and each swap re-reads one expert from its file, {one:.1f} GiB: about "
                f"{_read_times(one)}. The next clip starts on the high-noise expert again, one more such "
                f"read, so reckon {_read_times(2 * one, short=True)} per clip (less while the page cache "
                f"still holds an expert). A new prompt also reads the text encoder back "
                f"({encoders:.1f} GiB).")
    if figures["streamed"]:
        reread = encoders + max(experts, default=0)
        return (f"Streaming costs reads only on a new prompt: the text encoder ({encoders:.1f} GiB) comes "
                f"back for it and the transformer after it, {reread:.1f} GiB in all, about "
                f"{_read_times(reread)}; clips with the same prompt keep the transformer resident.")
    return ""


def note_text(tier: Any, figures: dict[str, Any]) -> str:
    size = f"{tier.width}x{tier.height}"
    storage = (", fp8 files" if tier.files else ", fp8 weights") if tier.weights == "fp8" else ""
    options = f"offload {tier.offload}" + (
        ", VAE tiling (turned on by VRAMGuard's adapt)" if figures["vae_tiling"] else ""
    ) + (", streamed per phase (VRAMGuard's choice on this machine)" if figures["streamed"] else "")
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
            ram_text(tier, figures),
            *filter(None, [swap_text(figures)]),
            f"Compute: {figures['tflop_per_step']:.1f} TFLOP per step "
            f"{'with' if tier.guidance > 1 else 'without'} guidance (torch's FLOP counter), "
            f"{figures['tflop_per_step'] * tier.steps:.0f} TFLOP for the clip."
            + (f" The seed article expected {tier.expected} on its reference card." if tier.expected else "")
            + " Run bench/run.py on yours for measured figures.",
            "",
            _images_text(tier) + f" {_where_the_model_comes_from(tier, figures['folders'])} The first run "
            "loads it (slow); later runs reuse it.",
        ]
    )


def _images_text(tier: Any) -> str:
    if tier.end_image:
        return (f"Put {EXAMPLE_IMAGE} and {EXAMPLE_END_IMAGE} (from the repo's examples/ folder: the beach, "
                "then the same beach with the boat further right) or your own first and last frames in "
                "ComfyUI's input folder.")
    return (f"Put {EXAMPLE_IMAGE} (from the repo's examples/ folder) or your own image in ComfyUI's input "
            "folder.")


def _where_the_model_comes_from(tier: Any, folders: dict[str, str]) -> str:
    """Where the tier's model or files come from, and the plan command that checks a machine first.
    ``folders``: the models folder each of the tier's files goes in (loader slot -> folder)."""
    size = f"--width {tier.width} --height {tier.height} --frames {tier.frames}" + (
        " --end-image" if tier.end_image else "")
    if tier.files:
        listing = ", ".join([*(f"{folders[slot]}/{name}" for slot, name in tier.files.items()),
                             *(f"loras/{name}" for name, _target, _strength in tier.loras)])
        flags = " ".join(
            f"--{slot.replace('_', '-')} models/{folders[slot]}/{name}" for slot, name in tier.files.items()
        )
        file_set = next((f for f in tier.declared.file_tiers if f.suffix == tier.file_set), None)
        source = (f"The files ({listing}) come from {file_set.source}." if file_set else
                  f"The files ({listing}) are those {tier.declared.files_source}: if you have run it, you "
                  "have them.")
        return (
            f"{source} `python -m i2v_nodes plan {flags} {size}` says whether it fits your machine first"
            + (" (without the LoRAs)." if tier.loras else ".")
        )
    folder = tier.model.split("/")[-1]
    plan = f"`python -m i2v_nodes plan {tier.model} {size}` says whether it fits your machine first."
    from i2v_nodes.families import registry

    repos = registry.for_hub_id(tier.model).hub_repos(tier.model)
    if len(repos) > 1:  # assembled from several repositories when it loads
        return (f"The model is made of {' and '.join(repos)}: turn LoadI2VModel's allow_download on to "
                f"fetch both into the Hugging Face cache once. {plan}")
    return (
        f"The model: `huggingface-cli download {tier.model} --local-dir models/i2v/{folder}` once (then "
        f"pick {folder}), or turn LoadI2VModel's allow_download on. {plan}"
    )


def _ram_phase(phase: str) -> str:
    return {"load": "loads the weights", "run": "runs"}.get(phase, "runs")
