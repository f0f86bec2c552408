"""Every tier workflow on its model's tiny twin (CPU, fp32): a SHA-256 of I2VSample's frames and sound.

A refactor that claims "behaviour unchanged" proves it here: save the digests before the change,
compare after. Each run builds the tiny models (and their single files, stand-ins and LoRAs) afresh in
a temporary folder, so the builders are checked too. Runs the same scaled-down settings as the tier
tests (``tests/test_workflows.py``).

    python bench/tier_frames.py --save before.json
    python bench/tier_frames.py --compare before.json     # exit 1 when any tier differs
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["I2V_CPU_AUTO_PRECISION"] = "fp32"  # what the tests pin: "auto" is fp32 on this CPU


def digest(value) -> str:
    """SHA-256 of a tensor's bytes (with its shape and dtype), or of an AUDIO's waveform and rate."""
    import torch

    if isinstance(value, list):  # the executor's output lists (one item per list entry)
        return ",".join(digest(item) for item in value)
    if not isinstance(value, (dict, torch.Tensor)):
        return repr(value)
    if isinstance(value, dict):
        return f"{digest(value['waveform'])}@{value['sample_rate']}"
    tensor = value.detach().to("cpu").contiguous()
    head = f"{tuple(tensor.shape)}:{tensor.dtype}".encode()
    return hashlib.sha256(head + tensor.view(torch.uint8).numpy().tobytes()).hexdigest()[:32]


def run_tiers(root: Path) -> dict[str, dict[str, str]]:
    """Each tier workflow's I2VSample outputs, run scaled down on its tiny twin."""
    import torch

    torch.set_num_threads(1)
    dirs = {name: root / name for name in ("models", "output", "input")}
    for path in dirs.values():
        path.mkdir()
    os.environ["I2V_MODELS_DIR"] = str(dirs["models"])
    os.environ["I2V_OUTPUT_DIR"] = str(dirs["output"])
    from tests import test_workflows as tiers  # one definition of "a tier, scaled down"

    shutil.copy(REPO / "examples" / "i2v-example.png", dirs["input"])
    host = _host(tiers, dirs)
    results = {}
    for path in tiers.WORKFLOWS:
        api = tiers.load(REPO / "workflows" / "api" / path.name)
        overrides, _expected = tiers.scaled_down(api)
        result = host.run(tiers.load(path), overrides=overrides)
        if result.status != "success":
            results[path.stem] = {"error": str(result.error)[:300]}
        else:
            sample = next(n for n, node in api.items() if node["class_type"] == "I2VSample")
            frames, fps, per_clip, *audio = result.node_outputs[sample]
            results[path.stem] = {"frames": digest(frames), "fps": digest(fps),
                                  "frames_per_clip": digest(per_clip)}
            if audio:
                results[path.stem]["audio"] = digest(audio[0])
        print(f"{path.stem:32} {results[path.stem]}", flush=True)
    return results


def _host(tiers, dirs: dict[str, Path]):
    """The tier tests' host: stand-ins of ComfyUI's template files and tiny lightx2v LoRAs."""
    from host_stub import Host

    for variant in tiers.stand_ins.TEMPLATE_FILES:
        tiers.stand_ins.write_template_files(dirs["models"], variant)
    tiers.write_tiny_lightx2v_loras(dirs["models"])
    return Host(packs=[str(REPO)], **{f"{name}_dir": str(path) for name, path in dirs.items()})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, help="write the digests to this JSON file")
    parser.add_argument("--compare", type=Path, help="compare with digests saved earlier")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tier-frames-") as root:
        results = run_tiers(Path(root))
    if args.save:
        args.save.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    if not args.compare:
        return 0
    before = json.loads(args.compare.read_text(encoding="utf-8"))
    differ = sorted(name for name in before.keys() | results.keys() if before.get(name) != results.get(name))
    same = len(before.keys() & results.keys()) - len(set(differ) & before.keys() & results.keys())
    print(f"{same} of {len(results)} tiers bit-identical to {args.compare.name}; differ: {differ or 'none'}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
