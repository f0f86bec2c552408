"""Draws docs/pictures/tiers.svg: every tier workflow by family and card, with VRAMGuard's plan for it.

The figures are not typed in anywhere: each cell is read from ``workflows/api/<tier>.json`` (model,
size, frames, steps, offload, weights, LoRAs) and planned by ``workflows/tier_plan.py``, the same plan
``tests/test_workflows.py`` checks against the card and RAM the tier is sized for. So the chart
cannot drift from the planner: ``tests/test_readme_pictures.py`` redraws it and fails when the
committed file differs. The SVG is written by hand (no plotting library), so the same input gives
the same bytes.

    python docs/pictures/tier_chart.py          # rewrite docs/pictures/tiers.svg
    python docs/pictures/tier_chart.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from i2v_nodes.families import registry  # noqa: E402
from workflows import tier_plan  # noqa: E402

OUT = HERE / "tiers.svg"
API_DIR = REPO / "workflows" / "api"

# Layout, in pixels.
MARGIN, LABEL_W, CELL_W, CELL_H, GAP = 16, 150, 156, 124, 6
TITLE_H, HEAD_H, FOOT_H, LINE = 58, 30, 40, 15
PAD, BAR_H = 7, 13
BAR_W = CELL_W - 2 * PAD
RULE, CELL_BG, GPU_FILL, RAM_FILL, TRACK = "#d0d7de", "#f6f8fa", "#9ec5ee", "#a8dba8", "#ffffff"
SANS = "Helvetica, Arial, 'DejaVu Sans', sans-serif"
MONO = "'DejaVu Sans Mono', Menlo, Consolas, monospace"
TITLE = "Tier workflows by card: what runs, and VRAMGuard's plan for it"
SUBTITLE = ("Bars: planned peak GPU memory of the card, and peak system RAM of the RAM the tier is sized for "
            "(published models, full settings).")
FOOTNOTE = ("Drawn by docs/pictures/tier_chart.py from workflows/api/*.json and the planner; "
            "tests/test_readme_pictures.py fails when it is out of date.")
# Text styles by class: one definition each instead of the same attributes on every line.
STYLE = f"""text {{ font-family: {SANS}; font-size: 11px; fill: #1f2328; }}
.title {{ font-size: 18px; font-weight: bold; }}
.head {{ font-size: 13px; font-weight: bold; text-anchor: middle; }}
.family {{ font-size: 14px; font-weight: bold; }}
.tier {{ font-family: {MONO}; font-size: 10px; font-weight: bold; }}
.pattern {{ font-family: {MONO}; fill: #59636e; }}
.model {{ font-size: 12px; }}
.muted {{ fill: #59636e; }}
.note {{ font-size: 12px; fill: #59636e; }}"""


@dataclass(frozen=True)
class Cell:
    """One tier workflow as the chart shows it: what runs, and the plan for its machine."""

    tier: str  # the workflow's name, e.g. "wan-16gb"
    family: str  # the family's name in the registry, e.g. "wan"
    model: str  # the published model it is sized for, short
    files: bool  # ComfyUI's single files (LoadI2VModelFiles) rather than a diffusers folder
    gguf: bool  # of which the denoisers are GGUF files (ComfyUI-GGUF's)
    loras: int  # I2VLoRA nodes
    end_image: bool  # first-last-frame: I2VSample has an end image
    width: int
    height: int
    frames: int
    steps: int
    offload: str
    fp8: bool  # weights stored in fp8 (asked for, or the files are fp8)
    vae_tiling: bool  # the plan tiles the VAE decode
    streamed: bool  # the plan streams the encoders and denoisers per phase (RAM short of everything resident)
    card_gib: int
    ram_gib: int
    gpu_peak_gib: float  # VRAMGuard's planned peak device memory
    ram_peak_gib: float  # and peak system RAM

    @property
    def row(self) -> str:
        """The tier set the cell belongs to: its name without the card, e.g. "wan-*-files"."""
        return re.sub(r"-(\d+gb|preview)", "-*", self.tier)


# --- the figures ---------------------------------------------------------------------------------------


def short_model(hub_id: str) -> str:
    """A hub id short enough for a cell: the repository name, without what every Wan id repeats."""
    name = hub_id.split("/")[-1].removesuffix("-Diffusers")
    return name.replace("stable-video-diffusion-", "SVD-")


def tier_cell(name: str, api: dict, stand_in_dir: Path) -> Cell:
    """The cell of one tier workflow, planned exactly as tests/test_workflows.py plans it."""
    plan = tier_plan.plan_tier(api, name, stand_in_dir)
    handle = tier_plan.tier_handle(api, stand_in_dir)
    loader = tier_plan.nodes_of(api, "LoadI2VModel")[0]["inputs"]
    hub = loader.get("model") or tier_plan.HUB_OF_TEMPLATE[loader["diffusion_model"]]
    card_gib, ram_gib = tier_plan.MACHINES[name]
    return Cell(
        tier=name,
        family=handle.family.name,
        model=short_model(hub),
        files=handle.files is not None,
        gguf=handle.files is not None and any(part.gguf for part in handle.files.parts.values()),
        loras=len(handle.loras),
        end_image=plan.shape.keyframes > 1,
        width=plan.shape.width,
        height=plan.shape.height,
        frames=plan.shape.num_frames,
        steps=tier_plan.nodes_of(api, "I2VSample")[0]["inputs"]["steps"],
        offload=plan.options.offload,
        fp8=handle.weights == "fp8",
        vae_tiling=plan.options.vae_tiling,
        streamed=plan.options.residency == "phase",
        card_gib=card_gib,
        ram_gib=ram_gib,
        gpu_peak_gib=plan.estimate.peak / tier_plan.GiB,
        ram_peak_gib=plan.ram.peak / tier_plan.GiB,
    )


def tier_cells(api_dir: Path = API_DIR) -> list[Cell]:
    """Every tier workflow in ``api_dir`` as a cell (the planner's traces are cached per process)."""
    with tempfile.TemporaryDirectory(prefix="tier-chart-") as tmp:
        return [tier_cell(path.stem, json.loads(path.read_text(encoding="utf-8")), Path(tmp))
                for path in sorted(api_dir.glob("*.json"))]


# --- the drawing ---------------------------------------------------------------------------------------


def text(x: float, y: float, content: str, style: str = "") -> str:
    css = f' class="{style}"' if style else ""
    return f'<text x="{x:g}" y="{y:g}"{css}>{escape(content)}</text>'


def rect(x: float, y: float, w: float, h: float, fill: str, stroke: str = "none", rx: float = 0) -> str:
    return (f'<rect x="{x:g}" y="{y:g}" width="{w:.1f}" height="{h:g}" rx="{rx:g}" fill="{fill}" '
            f'stroke="{stroke}"/>')


def bar(x: float, y: float, label: str, used: float, total: int, fill: str) -> list[str]:
    """A labelled bar: the planned peak as a share of what the machine has."""
    share = min(used / total, 1.0)
    return [rect(x, y, BAR_W, BAR_H, TRACK, RULE, 2), rect(x, y, BAR_W * share, BAR_H, fill, "none", 2),
            text(x + 4, y + BAR_H - 3, f"{label} {used:.1f} of {total} GiB")]


def memory_lines(cell: Cell) -> list[str]:
    """How the tier runs: the offload mode (streamed per phase where the plan streams), then fp8 storage
    and VAE tiling where the plan has them."""
    second = [("fp8 files" if cell.files else "fp8 weights")] if cell.fp8 else []
    second += ["VAE tiling"] if cell.vae_tiling else []
    first = "no offload" if cell.offload == "none" else f"offload {cell.offload}"
    return [first + (", streamed" if cell.streamed else ""), ", ".join(second)]


def draw_cell(cell: Cell, x: float, y: float) -> list[str]:
    """A cell's lines: tier name, model, size and steps, memory options, then the two bars."""
    left, top = x + PAD, y + 16
    lines = [(cell.tier, "tier"), (cell.model, "model"),
             (f"{cell.width}x{cell.height}x{cell.frames}, {cell.steps} steps", "muted"),
             *((line, "muted") for line in memory_lines(cell))]
    out = [rect(x, y, CELL_W, CELL_H, CELL_BG, RULE, 4)]
    out += [text(left, top + i * LINE, content, style) for i, (content, style) in enumerate(lines) if content]
    bars = top + (len(lines) - 1) * LINE + 8
    out += bar(left, bars, "GPU", cell.gpu_peak_gib, cell.card_gib, GPU_FILL)
    out += bar(left, bars + BAR_H + 4, "RAM", cell.ram_peak_gib, cell.ram_gib, RAM_FILL)
    return out


def row_order(cells: list[Cell]) -> list[str]:
    """Tier sets in the family registry's order; a family's diffusers tiers before its files tiers."""
    rank = {family.name: i for i, family in enumerate(registry.REGISTERED)}
    first = {}
    for cell in cells:
        first.setdefault(cell.row, (rank.get(cell.family, len(rank)), cell.files, cell.loras, cell.end_image,
                                    cell.row))
    return sorted(first, key=first.__getitem__)


def draw_row_label(cells: list[Cell], x: float, y: float) -> list[str]:
    """The family's title, the tier names' pattern, and what the set is made of."""
    cell = cells[0]
    lines = [text(x, y + 20, registry.get(cell.family).title, "family"),
             text(x, y + 20 + LINE + 2, cell.row, "pattern")]
    made_of = ("GGUF files" if cell.gguf else "ComfyUI's files" if cell.files else "diffusers folder") + (
        f" + {cell.loras} LoRAs" if cell.loras else "")
    lines.append(text(x, y + 20 + 2 * LINE + 4, made_of, "muted"))
    if cell.end_image:
        lines.append(text(x, y + 20 + 3 * LINE + 6, "first + last frame", "muted"))
    return lines


def render(cells: list[Cell]) -> str:
    """The chart as SVG text: a row per tier set, a column per card size."""
    rows = row_order(cells)
    cards = sorted({cell.card_gib for cell in cells})
    width = 2 * MARGIN + LABEL_W + len(cards) * (CELL_W + GAP) - GAP
    grid_top = MARGIN + TITLE_H + HEAD_H
    height = grid_top + len(rows) * (CELL_H + GAP) - GAP + FOOT_H
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">', f"<style>\n{STYLE}\n</style>",
           rect(0, 0, width, height, "#ffffff"), text(MARGIN, MARGIN + 18, TITLE, "title"),
           text(MARGIN, MARGIN + 40, SUBTITLE, "note")]
    for j, card in enumerate(cards):
        x = MARGIN + LABEL_W + j * (CELL_W + GAP)
        out.append(text(x + CELL_W / 2, grid_top - 10, f"{card} GB card", "head"))
    for i, row in enumerate(rows):
        y = grid_top + i * (CELL_H + GAP)
        in_row = [cell for cell in cells if cell.row == row]
        out += draw_row_label(in_row, MARGIN, y)
        for cell in in_row:
            x = MARGIN + LABEL_W + cards.index(cell.card_gib) * (CELL_W + GAP)
            out += draw_cell(cell, x, y)
    out.append(text(MARGIN, height - 16, FOOTNOTE, "muted"))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def chart_svg() -> str:
    """The chart for the tier workflows in the repository, as the committed file should be."""
    return render(tier_cells())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if it is out of date; write nothing")
    args = parser.parse_args()
    svg = chart_svg()
    current = OUT.read_text(encoding="utf-8") if OUT.is_file() else None
    if args.check:
        print(f"{OUT.relative_to(REPO)} is {'up to date' if current == svg else 'out of date'}")
        return 0 if current == svg else 1
    OUT.write_text(svg, encoding="utf-8")
    print(f"wrote {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
