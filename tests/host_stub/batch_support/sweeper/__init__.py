"""Test pack for the batch tests: a fake model with a per-process cache, a sampler with ``seed`` and
``batch_size`` (clip i gets seed + i), a pass-through guard and a saver writing one file per clip.

Environment: ``SWEEP_TEST_LOG`` (a folder: every load and call is logged there, per process),
``SWEEP_TEST_SLEEP`` (seconds per clip), ``SWEEP_TEST_DIE_AT`` (``prompt:seed``: the process kills
itself with SIGKILL when a call starts at that seed, as a crashed rank would).
"""

import json
import os
import signal
import time

import folder_paths

_LOADED = {}  # name -> model: this process's warm cache


def _log(kind, **data):
    folder = os.environ.get("SWEEP_TEST_LOG")
    if folder:
        data.update(pid=os.getpid(), rank=int(os.environ.get("RANK", 0)))
        with open(os.path.join(folder, f"{kind}-{os.getpid()}.jsonl"), "a", encoding="utf-8") as fh:
            fh.write(json.dumps(data) + "\n")


class SweepModel:
    CATEGORY = "test"
    RETURN_TYPES = ("SWEEP_MODEL",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"name": ("STRING", {"default": "fake"})}}

    def make(self, name):
        return (name,)


class SweepGuard:
    """Passes batch_size through, as a memory guard does."""

    CATEGORY = "test"
    RETURN_TYPES = ("SWEEP_MODEL", "INT")
    RETURN_NAMES = ("model", "batch_size")
    FUNCTION = "guard"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"model": ("SWEEP_MODEL",), "batch_size": ("INT", {"default": 1, "min": 1, "max": 3})}
        }

    def guard(self, model, batch_size):
        return (model, batch_size)


class SweepSample:
    CATEGORY = "test"
    RETURN_TYPES = ("SWEEP_CLIPS",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("SWEEP_MODEL",),
                "image": ("IMAGE",),
                "prompt": ("STRING", {"default": ""}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 8}),
            }
        }

    def sample(self, model, image, prompt, seed, batch_size):
        if os.environ.get("SWEEP_TEST_DIE_AT") == f"{prompt}:{seed}":
            os.kill(os.getpid(), signal.SIGKILL)
        if model not in _LOADED:
            _LOADED[model] = {"name": model}
            _log("loads", model=model)
        time.sleep(float(os.environ.get("SWEEP_TEST_SLEEP", "0")) * batch_size)
        _log("calls", prompt=prompt, seed=seed, batch_size=batch_size, image=round(float(image.mean()), 4))
        if "fail" in prompt:
            raise ValueError(f"cannot sample {prompt!r}")
        mean = round(float(image.mean()), 4)
        return ([{"prompt": prompt, "seed": seed + i, "image": mean} for i in range(batch_size)],)


class SweepSave:
    CATEGORY = "test"
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"clips": ("SWEEP_CLIPS",), "filename_prefix": ("STRING", {"default": "sweep/clip"})}
        }

    def save(self, clips, filename_prefix):
        subfolder, _, name = filename_prefix.rpartition("/")
        folder = os.path.join(folder_paths.get_output_directory(), subfolder)
        os.makedirs(folder, exist_ok=True)
        entries = []
        for clip in clips:
            counter = 1
            while True:  # never overwrite: another process may save into the same folder
                filename = f"{name}_{counter:05d}_.json"
                try:
                    with open(os.path.join(folder, filename), "x", encoding="utf-8") as fh:
                        json.dump(clip, fh)
                    break
                except FileExistsError:
                    counter += 1
            entries.append({"filename": filename, "subfolder": subfolder, "type": "output"})
        return {"ui": {"clips": entries}}


NODE_CLASS_MAPPINGS = {
    "SweepModel": SweepModel,
    "SweepGuard": SweepGuard,
    "SweepSample": SweepSample,
    "SweepSave": SweepSave,
}
