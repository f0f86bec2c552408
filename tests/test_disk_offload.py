"""Group offload with its groups on disk (diffusers' ``offload_to_disk_path``), for RAM shorter than one
expert: each component in a folder of its own in the host's temp folder (diffusers names the files by
the groups' names, which the two experts share, and reuses a file it finds), the frames of a resident
run bit for bit, the folder gone with the cache entry; and the guard and the planner pick it only
where streaming per phase does not fit RAM. The offload runs here with a CPU as its "device"
(``place`` is what a CUDA load calls too; a CPU run is never offloaded by the guard)."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

from i2v_nodes.runtime import memory, services
from i2v_nodes.runtime.loading import models
from i2v_nodes.runtime.memory import guard, planner
from i2v_nodes.runtime.sampling import SampleSettings
from i2v_nodes.runtime.sampling.loaded import OFFLOAD_FOLDER, pipeline_loader
from i2v_nodes.runtime.sampling.oracle import stock_reference

NAME = "tiny-wan2.2-i2v-a14b"
SETTINGS = SampleSettings(prompt="a boat on a lake", negative_prompt="blurry", width=64, height=48,
                          num_frames=5, steps=2, guidance_scale=5.0, seed=11, batch_size=1, target_fps=16)


def test_groups_on_disk_give_the_resident_frames_and_leave_nothing(opened, cache, still_image, tmp_path):
    handle, stock = opened(NAME)
    host = dataclasses.replace(services.standalone(), temp_dir=lambda: tmp_path)
    loaded, close = pipeline_loader(handle, "group", host, cache, disk=True)()
    try:
        folder = loaded.disk
        assert folder is not None and folder.parent == tmp_path / OFFLOAD_FOLDER
        experts = [sorted(p.name for p in (folder / role).iterdir()) for role in handle.roles.denoisers]
        assert experts[0] and experts[0] == experts[1]  # the same file names: one folder would mix them
        first = (folder / "transformer" / experts[0][0]).read_bytes()
        assert first != (folder / "transformer_2" / experts[0][0]).read_bytes()
        assert sorted(p.name for p in folder.iterdir()) == sorted(handle.roles.denoisers)
        ours = stock_reference(handle, loaded.pipeline, still_image, SETTINGS).frames
    finally:
        close()
    theirs = stock_reference(handle, stock, still_image, SETTINGS).frames
    assert torch.equal(ours, theirs)
    assert not folder.exists()


def test_a_failed_load_removes_its_folder(opened, cache, tmp_path, monkeypatch):
    handle, _ = opened(NAME)
    host = dataclasses.replace(services.standalone(), temp_dir=lambda: tmp_path)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("i2v_nodes.runtime.loading.placement.load_pipeline", broken)
    with pytest.raises(OSError, match="disk full"):
        pipeline_loader(handle, "group", host, cache, disk=True)()
    assert list((tmp_path / OFFLOAD_FOLDER).iterdir()) == []


@pytest.fixture(scope="module")
def a14b():
    return models.handle_for_planning("Wan-AI/Wan2.2-I2V-A14B-Diffusers", [], device="cuda", offload="group")


def budget(vram_gib: float, ram_gib: float) -> guard.Budget:
    gib = 2**30
    return guard.Budget(int(vram_gib * gib), int(vram_gib * gib), 0.0, ram_free=int(ram_gib * gib),
                        ram_total=int(ram_gib * gib))


def test_the_guard_keeps_groups_on_disk_only_where_streaming_does_not_fit(a14b):
    shape = memory.RunShape(832, 480, 81)
    start = dataclasses.replace(memory.default_options(a14b, shape), vae_tiling=True)
    ram = {residency: memory.estimate_ram(a14b, shape, dataclasses.replace(start, residency=residency)).peak
           for residency in ("resident", "phase", "disk")}
    assert ram["disk"] < ram["phase"] < ram["resident"]
    roomy = guard.plan_run(a14b, shape, "error", budget(24, (ram["phase"] + 2**30) / 2**30), start)
    assert roomy.fits and roomy.options.residency == "phase"
    short = guard.plan_run(a14b, shape, "error", budget(24, (ram["disk"] + 2**30) / 2**30), start)
    assert short.fits and short.options.residency == "disk"
    assert guard.ON_DISK in short.report
    too_short = guard.plan_run(a14b, shape, "off", budget(24, ram["disk"] / 2**30 / 2), start)
    assert not too_short.fits


def test_the_planner_offers_disk_last_and_says_so(a14b):
    shape = memory.RunShape(832, 480, 81)
    ways = [(w, o.offload, o.residency) for w, o in planner.ways_to_run(a14b, shape)]
    disk = [way for way in ways if way[2] == "disk"]
    assert disk and all(offload == "group" for _, offload, _ in disk)
    assert ways.index(disk[0]) > max(i for i, way in enumerate(ways) if way[2] == "phase")
    # streamed per phase, one expert sits in RAM (28 GB in bf16, 14 in fp8); on disk, the text encoder
    # is the most: a machine with RAM between the two runs on disk, in the stock precision
    start = dataclasses.replace(memory.default_options(a14b, shape), vae_tiling=True)
    fp8 = dataclasses.replace(a14b, weights="fp8")
    streamed = memory.estimate_ram(fp8, shape, dataclasses.replace(start, residency="phase")).peak
    on_disk = memory.estimate_ram(a14b, shape, dataclasses.replace(start, residency="disk")).peak
    assert on_disk < streamed
    machine = planner.Machine(8, (on_disk + streamed) / 2 / 0.9 / 2**30)
    choice = planner.choose([(a14b, shape)], machine)
    assert choice is not None and choice.options.residency == "disk" and choice.handle.weights == "default"
    assert choice.ram_peak <= 0.9 * machine.ram_gib * 2**30
    assert "offloaded to disk" in planner.render(planner.answer(a14b, shape, machine, search=False))


def test_gguf_experts_on_disk_give_the_frames_they_give_in_ram(session_dirs, cache, still_image, tmp_path):
    """diffusers' GGUF parameters keep their quantisation type when their data comes back from disk."""
    from i2v_nodes.nodes import NODE_CLASS_MAPPINGS

    paths = models.tiny_single_files(NAME, session_dirs["models"], "gguf-Q8_0")
    widgets = {"clip_vision": "none", "precision": "auto", "vae_precision": "auto", "device": "cpu",
               "offload": "none", "allow_download": False}
    widgets.update({slot: path.name for slot, path in paths.items()})
    (handle,) = NODE_CLASS_MAPPINGS["LoadI2VModelFiles"]().load(unique_id="7", **widgets)
    assert all(handle.files.parts[role].gguf is not None for role in handle.roles.denoisers)
    host = dataclasses.replace(services.standalone(), temp_dir=lambda: tmp_path)
    frames = []
    for offload, disk in (("none", False), ("group", True)):
        loaded, close = pipeline_loader(handle, offload, host, cache, disk=disk)()
        try:
            frames.append(stock_reference(handle, loaded.pipeline, still_image, SETTINGS).frames)
        finally:
            close()
    assert torch.equal(*frames)


def test_a_crashed_processs_groups_are_removed_and_a_live_ones_kept(opened, cache, tmp_path):
    import socket
    import subprocess

    handle, _ = opened(NAME)
    parent = tmp_path / OFFLOAD_FOLDER
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process that has ended: its pid names no live process (until reused)
    host_name = socket.gethostname()
    orphan = parent / f"groups-{host_name}-{gone.pid}-x1"
    live = parent / f"groups-{host_name}-{os.getppid()}-x2"
    other_machine = parent / f"groups-elsewhere-{gone.pid}-x3"
    for folder in (orphan, live, other_machine):
        (folder / "transformer").mkdir(parents=True)
    host = dataclasses.replace(services.standalone(), temp_dir=lambda: tmp_path)
    loaded, close = pipeline_loader(handle, "group", host, cache, disk=True)()
    close()
    assert not orphan.exists() and live.exists() and other_machine.exists()
