"""Runs every benchmark and writes the results as JSON and a short Markdown table.

P1 pack vs plain diffusers (warm, I2VGen-XL), P2 model loads over 10 runs, P3 EncodeVideo vs the
ffmpeg CLI, P4 host_stub on a 200-node graph (first run and cached), P5 a batch of 4 seeds vs 4
calls, P6 pack vs plain diffusers on each tiny Wan model, P7 the planner's time for the published
Wan 2.2 A14B. With CUDA, also the tiers at full size (random weights) beside the stock pipeline.

    python bench/run.py [--quick] [--docs] [--no-tiers]

Results go to bench/results/<date>-<device>.json and .md; --docs replaces the table between the
bench markers of docs/benchmarks.md with this run's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

BENCH_DOC = REPO / "docs" / "benchmarks.md"  # holds the latest table between these markers
MARK_START, MARK_END = "<!-- bench:start -->", "<!-- bench:end -->"


def collect(quick: bool, tiers: bool) -> dict:
    import bench_batch
    import bench_encode
    import bench_host_stub
    import bench_loads
    import bench_planner
    import bench_sample
    import torch

    repeats = 3 if quick else 11
    results = {
        "P1": bench_sample.run(repeats=repeats),
        "P2": bench_loads.run(runs=10),
        "P3": bench_encode.run(repeats=repeats),
        "P3a": bench_encode.run(repeats=repeats, audio=True),
        "P4": bench_host_stub.run(repeats=repeats),
        "P5": bench_batch.run(repeats=max(3, repeats // 2)),
        "P6": [bench_sample.run(model, repeats=repeats) for model in
               ("tiny-wan2.1-i2v", "tiny-wan2.2-i2v-a14b", "tiny-wan2.2-ti2v-5b", "tiny-ltx-video",
                "tiny-ltx-video-distilled", "tiny-ltx-video-0.9.1", "tiny-ltx2", "tiny-svd",
                "tiny-animatediff-i2v")],
        "P7": bench_planner.run(repeats=1 if quick else 3),
    }
    if tiers and torch.cuda.is_available():
        import bench_tiers

        results["tiers"] = bench_tiers.run(steps=5 if quick else 10)
    results["machine"] = {
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": dt.date.today().isoformat(),
    }
    return results


def table(results: dict) -> str:
    p1, p2, p3, p4, p5, p6, p7 = (results[k] for k in ("P1", "P2", "P3", "P4", "P5", "P6", "P7"))
    machine = results["machine"]
    ms = 1000
    p1_figure = (f"{p1['ratio_ours_over_stock']:.3f} ({p1['ours_s'] * ms:.0f} ms vs "
                 f"{p1['stock_s'] * ms:.0f} ms)")
    p3_figure = _encode_figure(p3)
    p4_figure = (f"{p4['validate_s'] * ms:.1f} ms / {p4['first_run_s'] * ms:.1f} ms / "
                 f"{p4['rerun_s'] * ms:.1f} ms")
    rows = [
        "| | what | figure | target |",
        "|---|---|---|---|",
        f"| P1 | pack end to end (Load warm + Guard + Sample) / stock `pipe(..., output_type=\"pt\")` | "
        f"{p1_figure} | <= 1.02 |",
        f"| P2 | model loads over {p2['runs']} runs with new seeds (loader node re-executed "
        f"{p2['loader_node_executions']}x) | {p2['model_loads']} | 0 |",
        f"| P3 | EncodeVideo speed / ffmpeg CLI speed, mp4 512x512x64 | {p3_figure} | >= 0.95 |",
        *([f"| P3a | the same with stereo sound muxed as AAC | {_encode_figure(results['P3a'])} | >= 0.95 |"]
          if "P3a" in results else []),
        f"| P4 | host_stub, {p4['nodes']}-node graph: validate / first run / unchanged re-run | "
        f"{p4_figure} | |",
        f"| P5 | batch of 4 seeds in one call / 4 calls (throughput, identical clips) | "
        f"{p5['throughput_ratio']:.2f}x | |",
    ]
    for wan in p6:
        name = wan["workload"].split(",")[0]
        figure = (f"{wan['ratio_reencoding_over_stock']:.3f} / {wan['ratio_ours_over_stock']:.3f} "
                  f"({wan['ours_reencoding_s'] * ms:.0f} / {wan['ours_s'] * ms:.0f} ms vs "
                  f"{wan['stock_s'] * ms:.0f} ms)")
        rows.append(f"| P6 | {name}: pack end to end / stock `pipe(..., output_type=\"pt\")`, identical "
                    f"frames; prompts encoded every call / remembered | {figure} | <= 1.02 |")
    rows.append(f"| P7 | planner, published Wan 2.2 A14B at 832x480x81 on 24 GB: cold (new process, after "
                f"`import torch`) / cold with `--no-search` / warm | {p7['cold_s']:.2f} s / "
                f"{p7['cold_no_search_s']:.2f} s / {p7['warm_s'] * ms:.1f} ms | < 2 s / - / < 0.1 s |")
    for tier in results.get("tiers", {}).get("tiers", []):
        ours, stock = tier["ours"], tier["stock"]
        rows.append(f"| tier | {tier['tier']}: {tier['size']}p x {tier['frames']} frames, s/step ours vs "
                    f"stock; peak | {ours['s_per_step']:.2f} vs {stock['s_per_step']:.2f}; "
                    f"{ours['peak_gib']:.1f} GiB (estimate {tier['estimate_gib']:.1f}) | |")
    note = (f"\n{machine['date']}, {machine['device']} ({machine['cpu']}), torch {machine['torch']}, "
            "one thread, medians of interleaved repeats; P1, P5 and P6 on the tiny models.")
    return "\n".join(rows) + "\n" + note + "\n"


def _encode_figure(result: dict) -> str:
    return f"{result['ratio']:.3f} ({result['ours_s']:.2f} s vs {result['ffmpeg_cli_s']:.2f} s)"


def update_doc(text: str) -> None:
    content = BENCH_DOC.read_text(encoding="utf-8")
    start, end = content.index(MARK_START) + len(MARK_START), content.index(MARK_END)
    BENCH_DOC.write_text(content[:start] + "\n" + text + content[end:], encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--docs", "--readme", action="store_true", dest="docs",
                        help="put the table into docs/benchmarks.md")
    parser.add_argument("--no-tiers", action="store_true", help="skip the full-size tiers even with CUDA")
    args = parser.parse_args()
    results = collect(args.quick, not args.no_tiers)
    text = table(results)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stem = f"{results['machine']['date']}-{'cuda' if 'tiers' in results else 'cpu'}"
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (out / f"{stem}.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"written: bench/results/{stem}.json, .md")
    if args.docs:
        update_doc(text)


if __name__ == "__main__":
    main()
