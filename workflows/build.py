"""Builds the tier workflows (UI format) and their API-format copies.

The tiers are data (``TIERS``); each becomes ``workflows/<name>.json``, a graph the editor loads
(LoadImage -> LoadI2VModel -> VRAMGuard -> I2VSample -> EncodeVideo, plus a Note), and
``workflows/api/<name>.json``, what host_stub's converter makes of it. The Note's memory figure is
VRAMGuard's own estimate for the published model at the tier's settings, and its compute figure
comes from torch's FLOP counter on the same config, so the text cannot drift from the code.

    python workflows/build.py          # rewrite all files
    python workflows/build.py --check  # exit 1 if any file is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

MODEL = "ali-vilab/i2vgen-xl"
EXAMPLE_IMAGE = "i2v-example.png"
PROMPT = "waves rolling onto the beach at sunset, a sailboat drifting slowly, clouds moving"
NEGATIVE = "Distorted, discontinuous, ugly, blurry, low resolution, motionless, static"
GiB = 2**30


@dataclass(frozen=True)
class Tier:
    name: str
    title: str
    card_gib: int  # total memory of the card the tier is sized for
    card: str
    size: int  # "Np": N x N frames
    frames: int
    steps: int
    fps: int
    guidance: float
    seed_time: str  # what the seed article expects, for comparison
    remarks: str


TIERS = (
    Tier("i2v-preview", "Fast preview", 8, "any 8 GB GPU", 256, 8, 30, 8, 9.0, "a few seconds",
         "For trying prompts and images quickly before a full-size run."),
    Tier("i2v-12gb", "12 GB (e.g. RTX 3060)", 12, "RTX 3060 12 GB", 512, 16, 40, 8, 9.0, "50-70 s",
         "The standard mode: 512x512 is I2VGen-XL's sweet spot and 16 frames its trained length. "
         "The seed table doubted 512p on 12 GB; VRAMGuard's estimate (fp16 weights, fp32 VAE, "
         "decode in small chunks) fits with room to spare, so the tier keeps it."),
    Tier("i2v-24gb", "24 GB (e.g. RTX 4090)", 24, "RTX 4090 24 GB", 768, 24, 60, 12, 10.0, "80-100 s",
         "24 frames is above the 16 I2VGen-XL was trained on: motion can drift late in the clip "
         "(VRAMGuard's report says so). Set num_frames to 16 on both VRAMGuard and I2VSample for the "
         "most coherent motion."),
    Tier("i2v-40gb", "40 GB+ (e.g. A100)", 40, "A100 40 GB", 1024, 32, 80, 24, 11.0, "120-150 s",
         "32 frames is twice the trained length (motion may drift), and past 60 steps quality barely "
         "improves: 60 steps saves a quarter of the time for the same look. Both are kept at the seed "
         "table's values so the tier matches it; lower them freely."),
)


# --- figures for the Notes ---------------------------------------------------------------------


def tier_figures(tier: Tier) -> dict[str, float]:
    """VRAMGuard's estimate and the UNet's compute for the published model at this tier."""
    from i2v_nodes.runtime import memory, models

    handle = models.describe_published(MODEL, precision="fp16", device="cuda")
    shape = memory.RunShape(tier.size, tier.size, tier.frames)
    estimate = memory.estimate(handle, shape, memory.default_options(handle, shape))
    weights = sum(memory.weight_bytes(handle).values())  # what passes through RAM while loading
    return {"peak_gib": estimate.peak / GiB, "tflop_per_step": unet_tflop(tier), "weights_gib": weights / GiB}


def unet_tflop(tier: Tier) -> float:
    """FLOPs of one denoising step (one UNet call, CFG batch of 2), counted on the meta device."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from i2v_nodes.runtime import models
    from i2v_nodes.runtime.families import i2vgen_xl

    handle = models.describe_published(MODEL)
    config = json.dumps(handle.configs["unet"], sort_keys=True)
    unet = i2vgen_xl.meta_unet(config, torch.float16)
    args, kwargs = i2vgen_xl.unet_trace_inputs(handle.configs["unet"], 2, tier.frames, tier.size, tier.size,
                                                torch.float16)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        unet(*args, **kwargs)
    return counter.get_total_flops() / 1e12


def note_text(tier: Tier, figures: dict[str, float]) -> str:
    size = f"{tier.size}x{tier.size}"
    return "\n".join([
        f"{tier.title}: {size}, {tier.frames} frames, {tier.steps} steps, {tier.fps} fps, "
        f"guidance {tier.guidance}",
        "",
        tier.remarks,
        "",
        f"GPU memory: VRAMGuard estimates a peak of {figures['peak_gib']:.1f} GiB for {MODEL} in fp16 "
        "(VAE fp32); "
        f"the tier is sized for {tier.card} and passes VRAMGuard's 'error' policy there with 10% headroom. "
        "If it does not fit your card, set VRAMGuard's policy to 'adapt' (it turns on decode chunking, VAE "
        "tiling, offload and sub-batches, never changing size or frames).",
        f"System RAM: the weights pass through RAM while loading ({figures['weights_gib']:.1f} GiB: fp16, "
        "VAE fp32); "
        "16 GB of RAM is comfortable, 32 GB with offload.",
        f"Compute: {figures['tflop_per_step']:.1f} TFLOP per step (torch's FLOP counter), "
        f"{figures['tflop_per_step'] * tier.steps:.0f} TFLOP for the clip. The seed article expected "
        f"{tier.seed_time} on its reference card; run bench/run.py on yours for measured figures.",
        "",
        f"Put {EXAMPLE_IMAGE} (from the repo's examples/ folder) or your own image in ComfyUI's input "
        f"folder. The model: `huggingface-cli download {MODEL} --local-dir models/i2v/i2vgen-xl` once (then "
        "pick i2vgen-xl), or turn LoadI2VModel's allow_download on. The first run loads it (slow); later "
        "runs reuse it.",
    ])


# --- the graph ---------------------------------------------------------------------------------


class Graph:
    """A UI-format graph, laid out as the editor saves it (inputs: plain sockets, then widgets)."""

    def __init__(self, object_info: dict):
        self.info = object_info
        self.nodes: list[dict] = []
        self.links: list[list] = []

    def add(self, class_type: str, pos: tuple[int, int], size: tuple[int, int], widgets: list,
            title: str | None = None) -> dict:
        node_id = len(self.nodes) + 1
        node = {"id": node_id, "type": class_type, "pos": list(pos), "size": list(size), "flags": {},
                "order": node_id - 1, "mode": 0, "inputs": self._sockets(class_type),
                "outputs": self._outputs(class_type), "properties": {"Node name for S&R": class_type},
                "widgets_values": widgets}
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
            is_widget = (isinstance(kind, list) or kind in ("INT", "FLOAT", "STRING", "BOOLEAN")) \
                and not options.get("forceInput")
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
        return [{"name": name, "type": kind, "links": [], "slot_index": i}
                for i, (name, kind) in enumerate(zip(info["output_name"], info["output"], strict=True))]

    def link(self, source: dict, output: str, target: dict, input_name: str) -> None:
        link_id = len(self.links) + 1
        out_slot = next(i for i, o in enumerate(source["outputs"]) if o["name"] == output)
        in_slot = next(i for i, s in enumerate(target["inputs"]) if s["name"] == input_name)
        kind = source["outputs"][out_slot]["type"]
        source["outputs"][out_slot]["links"].append(link_id)
        target["inputs"][in_slot]["link"] = link_id
        self.links.append([link_id, source["id"], out_slot, target["id"], in_slot, kind])

    def to_json(self) -> dict:
        return {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
                "links": self.links, "groups": [], "config": {},
                "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}


def tier_workflow(tier: Tier, object_info: dict, figures: dict[str, float]) -> dict:
    g = Graph(object_info)
    g.add("Note", (40, -330), (760, 300), [note_text(tier, figures)], title=f"i2v-nodes: {tier.title}")
    image = g.add("LoadImage", (40, 260), (320, 330), [EXAMPLE_IMAGE, "image"])
    model = g.add("LoadI2VModel", (40, 20), (320, 200), [MODEL, "auto", "auto", "auto", "none", False])
    guard = g.add("VRAMGuard", (420, 20), (320, 230), [tier.size, tier.size, tier.frames, 1, "error", 0.10])
    sample = g.add("I2VSample", (800, 20), (400, 520),
                   [PROMPT, NEGATIVE, tier.size, tier.size, tier.frames, tier.steps, tier.guidance, 42,
                    "randomize", 1, tier.fps, 0])
    encode = g.add("EncodeVideo", (1260, 20), (360, 460),
                   [float(tier.fps), "mp4-h264", 19, f"i2v/{tier.name.removeprefix('i2v-')}", 0, False, True])
    g.link(model, "model", guard, "model")
    g.link(guard, "model", sample, "model")
    g.link(image, "IMAGE", sample, "image")
    for name in ("width", "height", "num_frames", "batch_size"):
        g.link(guard, name, sample, name)
    g.link(sample, "frames", encode, "frames")
    g.link(sample, "fps", encode, "fps")
    g.link(sample, "frames_per_clip", encode, "frames_per_clip")
    return g.to_json()


# --- writing -----------------------------------------------------------------------------------


def render(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def build() -> dict[Path, str]:
    """Every file this script owns, with its content."""
    from host_stub import Host

    host = Host(packs=[str(REPO)])
    object_info = host.object_info()
    files: dict[Path, str] = {}
    for tier in TIERS:
        ui = tier_workflow(tier, object_info, tier_figures(tier))
        files[HERE / f"{tier.name}.json"] = render(ui)
        files[HERE / "api" / f"{tier.name}.json"] = render(host.convert(ui))
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
