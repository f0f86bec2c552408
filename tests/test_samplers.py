"""Samplers (I2VSamplerOptions): on every tiny model, each sampler its family allows runs and equals the
stock pipeline given that scheduler and the same noise, bit for bit, and each one it does not allow is
refused before any work, naming it and the ones it runs; the model's own scheduler is back on the cached
pipeline after every run, a failed or cancelled one too."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch
from diffusers import (
    DPMSolverMultistepScheduler,
    EDMDPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    FlowMatchLCMScheduler,
    UniPCMultistepScheduler,
)

from host_stub import Host
from i2v_nodes import host
from i2v_nodes.errors import InputError
from i2v_nodes.families import registry
from i2v_nodes.families.contract.spec import SAMPLERS
from i2v_nodes.nodes import NODE_CLASS_MAPPINGS
from i2v_nodes.runtime import sampling, services
from i2v_nodes.runtime.options import sampler_of, speed_of
from i2v_nodes.runtime.sampling import schedulers
from tests.test_family_contract import needed_end_image, settings_for

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
TINY = list(registry.tiny_builders())
# What each sampler must be, by the kind of the model's own scheduler: the diffusers class, and the
# settings of the model's own it keeps (a flow model's shift, a UNet model's betas and prediction)
FLOW_KEEPS = ("use_dynamic_shifting", "base_shift", "max_shift", "base_image_seq_len", "max_image_seq_len",
              "shift_terminal", "num_train_timesteps")
BETA_KEEPS = ("beta_start", "beta_end", "beta_schedule", "prediction_type", "timestep_spacing",
              "steps_offset", "num_train_timesteps", "rescale_betas_zero_snr")
EXPECTED = {
    "UniPCMultistepScheduler": {"euler": FlowMatchEulerDiscreteScheduler, "unipc": UniPCMultistepScheduler,
                                "dpmpp_2m": DPMSolverMultistepScheduler, "lcm": FlowMatchLCMScheduler},
    "FlowMatchEulerDiscreteScheduler": {"euler": FlowMatchEulerDiscreteScheduler,
                                        "unipc": UniPCMultistepScheduler, "lcm": FlowMatchLCMScheduler},
    "DDIMScheduler": {"euler": EulerDiscreteScheduler, "unipc": UniPCMultistepScheduler,
                      "dpmpp_2m": DPMSolverMultistepScheduler},
    "EulerDiscreteScheduler": {"euler": EulerDiscreteScheduler, "dpmpp_2m": EDMDPMSolverMultistepScheduler},
}


def sampler(name, options=None):
    (chained,) = NODE_CLASS_MAPPINGS["I2VSamplerOptions"]().build(sampler=name, options=options)
    return chained


def run(handle, image, s, cache, svc=None):
    return sampling.sample(handle, image, s, svc or services.standalone(), cache=cache,
                           end_images=needed_end_image(handle, image))


def loaded_pipe(handle, cache):
    return cache.peek(dataclasses.replace(handle.cache_key, offload="none")).pipeline


def public(config):
    return {key: value for key, value in config.items() if not key.startswith("_")}


def shift(config):
    return config["shift"] if "shift" in config else config.get("flow_shift")


def run_seeing_the_scheduler(handle, image, s, cache):
    """The run's frames, and the scheduler the pipeline held while its denoiser ran."""
    pipe = loaded_pipe(handle, cache)
    seen = []
    denoiser = getattr(pipe, handle.roles.denoisers[0])
    hook = denoiser.register_forward_pre_hook(lambda *_: seen.append(pipe.scheduler))
    try:
        frames = run(handle, image, s, cache).frames
    finally:
        hook.remove()
    assert seen and all(used is seen[0] for used in seen)
    return frames, seen[0]


def assert_keeps_the_models_settings(used, own):
    if isinstance(used, (FlowMatchEulerDiscreteScheduler, FlowMatchLCMScheduler)) or used.config.get(
            "use_flow_sigmas"):
        assert shift(used.config) == shift(own.config)
        assert used.config.get("prediction_type", "flow_prediction") == "flow_prediction"
        keeps = FLOW_KEEPS
    elif isinstance(used, EDMDPMSolverMultistepScheduler):
        assert used.config.sigma_data == 1.0 and used.config.sigma_schedule == "karras"
        keeps = ("sigma_min", "sigma_max", "prediction_type")
    else:
        keeps = BETA_KEEPS
    for key in keeps:
        if key in own.config:
            assert used.config.get(key) == own.config[key], key


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("chosen", SAMPLERS)
def test_each_allowed_sampler_equals_the_stock_pipeline_and_others_are_refused(name, chosen, opened, cache,
                                                                             still_image, fresh_cache):
    handle, stock = opened(name)
    s = settings_for(handle, steps=3, decode_chunk_size=1, options=sampler(chosen))  # the oracle's chunk
    allowed = handle.family.samplers(handle.variant)
    if chosen not in allowed:
        with pytest.raises(InputError, match=rf"input 'sampler':.* cannot run the sampler {chosen}: .*"
                                             rf"it runs: {', '.join(allowed)}$"):
            run(handle, still_image, s, fresh_cache)
        assert fresh_cache.loads == 0  # refused before anything loaded
        return
    default = run(handle, still_image, dataclasses.replace(s, options=None), cache).frames
    pipe = loaded_pipe(handle, cache)
    own = pipe.scheduler
    ours, used = run_seeing_the_scheduler(handle, still_image, s, cache)
    assert isinstance(used, EXPECTED[type(own).__name__][chosen]) and used is not own
    assert_keeps_the_models_settings(used, own)
    assert pipe.scheduler is own  # put back after the run

    original = stock.scheduler
    stock.scheduler = type(used).from_config(used.config)
    try:
        reference = sampling.stock_reference(handle, stock, still_image, s,
                                             end_image=needed_end_image(handle, still_image))
    finally:
        stock.scheduler = original
    assert torch.equal(ours, reference.frames)
    if isinstance(used, type(own)) and public(used.config) == public(own.config):
        # the model's own scheduler by name (a pipeline passing its own sigmas keeps them under euler)
        assert torch.equal(ours, default)
    else:
        assert not torch.equal(ours, default)  # the sampler really stepped the run


def test_a_sampler_that_draws_noise_each_step_reproduces_per_clip(opened, cache, still_image):
    handle, _ = opened("tiny-wan2.1-i2v")
    s = settings_for(handle, steps=3, seed=20, options=sampler("lcm"))
    batch = run(handle, still_image, dataclasses.replace(s, batch_size=2), cache).frames
    frames = s.num_frames
    for i in range(2):
        single = run(handle, still_image, dataclasses.replace(s, seed=20 + i), cache).frames
        assert torch.equal(batch[i * frames:(i + 1) * frames], single), f"clip {i} differs from seed {20 + i}"
    assert not torch.equal(batch[:frames], batch[frames:])
    euler = run(handle, still_image, dataclasses.replace(s, options=sampler("euler")), cache).frames
    assert not torch.equal(batch[:frames], euler)


def test_euler_with_flow_shift_5_is_comfyuis_lightx2v_setting(opened, cache, still_image):
    """The lightx2v tiers' sampler: Euler on flow sigmas shifted by 5, on both experts of Wan 2.2 A14B."""
    handle, stock = opened("tiny-wan2.2-i2v-a14b")
    (wan,) = NODE_CLASS_MAPPINGS["WanOptions"]().build(guidance_scale_2=0.0, boundary_ratio=0.0,
                                                       flow_shift=5.0)
    s = settings_for(handle, steps=4, options=sampler("euler", options=wan))
    run(handle, still_image, dataclasses.replace(s, options=None), cache)  # loaded before hooking
    ours, used = run_seeing_the_scheduler(handle, still_image, s, cache)
    assert isinstance(used, FlowMatchEulerDiscreteScheduler) and used.config.shift == 5.0
    # ComfyUI's euler with its simple schedule at 4 steps and shift 5 (model_sampling's 1000 shifted
    # sigmas, every 250th from the top): what the lightx2v LoRAs were distilled for
    assert torch.allclose(used.sigmas, torch.tensor([1.0, 0.9375, 0.8333333, 0.625, 0.0]))
    original = stock.scheduler
    stock.scheduler = schedulers.SimpleFlowMatchEuler(num_train_timesteps=1000, shift=5.0)  # by hand
    try:
        reference = sampling.stock_reference(handle, stock, still_image, s)
    finally:
        stock.scheduler = original
    assert torch.equal(ours, reference.frames)


def test_lcm_under_a_family_flow_shift_still_draws_its_noise_from_the_seed(opened, cache, still_image):
    """WanOptions' flow_shift rebuilds the scheduler from its config inside the call: the lcm scheduler
    it rebuilds still draws each step's noise from the clip's seed."""
    handle, stock = opened("tiny-wan2.1-i2v")
    (wan,) = NODE_CLASS_MAPPINGS["WanOptions"]().build(guidance_scale_2=0.0, boundary_ratio=0.0,
                                                       flow_shift=5.0)
    s = settings_for(handle, steps=3, options=sampler("lcm", options=wan))
    ours = run(handle, still_image, s, cache).frames
    assert torch.equal(ours, run(handle, still_image, s, cache).frames)
    original = stock.scheduler
    stock.scheduler = schedulers.SeededFlowMatchLCMScheduler(num_train_timesteps=1000, shift=5.0)
    try:
        reference = sampling.stock_reference(handle, stock, still_image, s)
    finally:
        stock.scheduler = original
    assert torch.equal(ours, reference.frames)


def test_the_models_own_scheduler_is_back_after_a_failed_and_a_cancelled_run(opened, cache, still_image):
    handle, _ = opened("tiny-wan2.1-i2v")
    s = settings_for(handle, steps=4)
    before = run(handle, still_image, s, cache).frames
    pipe = loaded_pipe(handle, cache)
    own, entry = pipe.scheduler, tuple(pipe.config["scheduler"])
    calls = []

    def fail(*_):
        calls.append(pipe.scheduler)
        if len(calls) == 3:
            raise RuntimeError("the denoiser broke")

    hook = pipe.transformer.register_forward_pre_hook(fail)
    try:
        with pytest.raises(RuntimeError, match="the denoiser broke"):
            run(handle, still_image, dataclasses.replace(s, options=sampler("dpmpp_2m")), cache)
    finally:
        hook.remove()
    assert isinstance(calls[0], DPMSolverMultistepScheduler)
    assert pipe.scheduler is own and tuple(pipe.config["scheduler"]) == entry

    class Progress:
        def __init__(self, total, description):
            self.done = 0

        def update(self, n=1):
            self.done += n
            if self.done == 2:
                host.request_interrupt()  # cancel pressed during step 2

        def close(self):
            pass

    svc = dataclasses.replace(host.services(), progress=Progress)
    with pytest.raises(host.Interrupted):
        run(handle, still_image, dataclasses.replace(s, options=sampler("lcm")), cache, svc=svc)
    assert pipe.scheduler is own and tuple(pipe.config["scheduler"]) == entry
    assert torch.equal(run(handle, still_image, s, cache).frames, before)  # nothing leaked into this run


def test_the_sampler_chains_with_the_other_option_nodes_in_any_order(opened, cache, still_image):
    handle, _ = opened("tiny-wan2.1-i2v")
    nodes = NODE_CLASS_MAPPINGS
    (wan,) = nodes["WanOptions"]().build(guidance_scale_2=0.0, boundary_ratio=0.0, flow_shift=4.0)
    (speed,) = nodes["I2VSpeedOptions"]().build(guidance_until=0.5, options=sampler("euler", options=wan))
    (other_order,) = nodes["WanOptions"]().build(guidance_scale_2=0.0, boundary_ratio=0.0, flow_shift=4.0,
                                                 options=sampler("euler", options=nodes["I2VSpeedOptions"]()
                                                                 .build(guidance_until=0.5)[0]))
    for chained in (speed, other_order):
        assert sampler_of(chained).sampler == "euler" and speed_of(chained).guidance_until == 0.5
        assert chained.for_family("wan", handle.name).flow_shift == 4.0
    s = settings_for(handle, steps=4, options=speed)
    first = run(handle, still_image, s, cache)
    assert torch.equal(first.frames, run(handle, still_image, dataclasses.replace(s, options=other_order),
                                         cache).frames)
    assert "sampler euler (SimpleFlowMatchEuler)" in first.report
    # a later sampler node in the chain replaces an earlier one, as every option node does
    assert sampler_of(sampler("unipc", options=speed)).sampler == "unipc"
    # the sampler belongs to no family: alone it works with any model, beside another family's node
    ltx, _ = opened("tiny-ltx-video")
    with pytest.raises(InputError, match="WanOptions holds settings for wan models"):
        run(ltx, still_image, settings_for(ltx, options=speed), cache)


def test_the_node_documents_each_sampler_and_what_every_family_runs():
    node = NODE_CLASS_MAPPINGS["I2VSamplerOptions"]
    inputs = node.INPUT_TYPES()
    choices, widget = inputs["required"]["sampler"]
    assert choices == ["default", *SAMPLERS] and widget["default"] == "default"
    tip = widget["tooltip"]
    for chosen in SAMPLERS:
        assert f"{chosen}:" in tip
    for family in registry.REGISTERED:
        for variant in family.spec.rules:
            title = family.spec.variant_titles.get(variant, family.title)
            runs = ", ".join(family.samplers(variant)[1:]) or "its own only"
            assert f"{family.title}: {runs}" in tip or f"{title}: {runs}" in tip, (family.name, variant)
    assert len(inputs["optional"]["options"][1]["tooltip"]) > 20
    with pytest.raises(InputError, match=r"I2VSamplerOptions \(node 7\): input 'sampler': unknown sampler "
                                         r"'heun'; the samplers are: default, euler, unipc, dpmpp_2m, lcm"):
        node().build(sampler="heun", unique_id="7")


@pytest.mark.parametrize("name", TINY)
def test_in_the_stub_host_each_sampler_equals_the_stock_pipeline(name, opened, session_dirs, still_image):
    """One graph per model, an I2VSample per sampler it runs, each fed by its own I2VSamplerOptions."""
    handle, stock = opened(name)
    s = settings_for(handle, steps=3, decode_chunk_size=1)
    shutil.copy(REPO / "examples" / "i2v-example.png", session_dirs["input"])
    folders = {f"{kind}_dir": str(session_dirs[kind]) for kind in ("input", "output", "models")}
    prompt = {
        "image": {"class_type": "LoadImage", "inputs": {"image": "i2v-example.png"}},
        "model": {"class_type": "LoadI2VModel", "inputs": {
            "model": name, "precision": "fp32", "vae_precision": "auto", "device": "cpu", "offload": "none",
            "allow_download": False, "weights": "default"}},
    }
    widgets = {key: getattr(s, key) for key in ("prompt", "negative_prompt", "width", "height", "num_frames",
                                                "steps", "guidance_scale", "seed", "batch_size", "target_fps",
                                                "decode_chunk_size")}
    names = handle.family.samplers(handle.variant)
    for chosen in names:
        prompt[f"options-{chosen}"] = {"class_type": "I2VSamplerOptions", "inputs": {"sampler": chosen}}
        prompt[f"sample-{chosen}"] = {"class_type": "I2VSample", "inputs": {
            **widgets, "model": ["model", 0], "image": ["image", 0], "options": [f"options-{chosen}", 0]}}
        if needed_end_image(handle, still_image) is not None:  # first-last-frame: the same image at the end
            prompt[f"sample-{chosen}"]["inputs"]["end_image"] = ["image", 0]
        prompt[f"preview-{chosen}"] = {"class_type": "PreviewImage",
                                       "inputs": {"images": [f"sample-{chosen}", 0]}}
    result = Host(packs=[str(REPO)], **folders).run(prompt)
    assert result.status == "success", result.error
    image = result.output("image")
    frames = {chosen: result.output(f"sample-{chosen}") for chosen in names}
    original = stock.scheduler
    for chosen in names:
        if chosen != "default":
            stock.scheduler = schedulers.build(chosen, original)
        try:
            end = image if needed_end_image(handle, image) is not None else None
            reference = sampling.stock_reference(handle, stock, image, s, end_image=end)
        finally:
            stock.scheduler = original
        assert torch.equal(frames[chosen], reference.frames), chosen
