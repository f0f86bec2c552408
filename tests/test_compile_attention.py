"""Regional compile and the attention backend (I2VSpeedOptions' compile and attention): compiled
once per loaded model and reused, a failing compile falls back to eager and says so, and a kernel
that is missing falls back to SDPA and says so. Inductor itself is measured in bench/ (its first
compile on a CPU takes minutes); here torch.compile runs with a counting backend."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch

from i2v_nodes.runtime import sampling, services
from i2v_nodes.runtime.loading.cache import ModelCache
from i2v_nodes.runtime.speed import attention, block_compile
from tests.test_speed import with_speed

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def settings():
    return sampling.SampleSettings(prompt="waves", negative_prompt="blurry", width=64, height=48,
                                   num_frames=9, steps=3, guidance_scale=5.0, seed=3, target_fps=16)


def sample(handle, image, s, cache):
    return sampling.sample(handle, image, s, services.standalone(), cache=cache)


@pytest.fixture(scope="module")
def plain(wan, still_image, settings):
    cache = ModelCache(lambda device: 2**40)
    yield sample(wan, still_image, settings, cache).frames
    cache.unload()


def test_blocks_compile_once_per_loaded_model_and_uncompile_when_off(wan, still_image, settings, plain,
                                                                      fresh_cache, monkeypatch):
    graphs = []

    def counting_backend(graph, example_inputs):
        graphs.append(graph)
        return graph.forward

    monkeypatch.setattr(block_compile, "BACKEND", counting_backend)
    compiled = with_speed(settings, compile="blocks")
    first = sample(wan, still_image, compiled, fresh_cache)
    blocks = block_compile.repeated_blocks(fresh_cache.peek(wan.cache_key).pipeline.transformer)
    # one graph serves every block (torch passes each block's weights as inputs)
    assert len(blocks) == 2 and len(graphs) >= 1 and "compiled blocks" in first.report
    assert all("forward" in vars(block) for block in blocks)
    assert torch.allclose(first.frames, plain, atol=1e-5)
    compiles = len(graphs)
    again = sample(wan, still_image, dataclasses.replace(compiled, seed=4), fresh_cache)
    assert len(graphs) == compiles and "compiled blocks" in again.report  # warm: nothing compiled again
    off = sample(wan, still_image, settings, fresh_cache)
    assert not any("forward" in vars(block) for block in blocks) and "compiled" not in off.report
    assert torch.equal(off.frames, plain)


def test_a_failing_compile_falls_back_to_eager_and_says_so_once(wan, still_image, settings, plain,
                                                                fresh_cache, monkeypatch, caplog):
    def failing_backend(graph, example_inputs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(block_compile, "BACKEND", failing_backend)
    with caplog.at_level(logging.WARNING, logger="i2v_nodes.runtime.speed.block_compile"):
        result = sample(wan, still_image, with_speed(settings, compile="blocks"), fresh_cache)
        again = sample(wan, still_image, with_speed(settings, compile="blocks"), fresh_cache)
    assert torch.equal(result.frames, plain) and torch.equal(again.frames, plain)
    assert "compile failed, ran uncompiled (BackendCompilerFailed" in result.report
    assert "no C++ compiler found" in result.report and "compile failed" in again.report
    assert sum("torch.compile of the denoiser's blocks failed" in r.message for r in caplog.records) == 1


def test_a_missing_attention_kernel_falls_back_to_sdpa_and_says_why(wan, still_image, settings, plain,
                                                                    fresh_cache):
    result = sample(wan, still_image, with_speed(settings, attention="flash_attn"), fresh_cache)
    assert torch.equal(result.frames, plain)
    assert ("attention flash_attn unavailable (the flash_attn package is not installed): ran sdpa"
            in result.report)


def test_an_available_backend_is_set_on_the_denoisers_processors_for_the_run_only(
        wan, still_image, settings, plain, fresh_cache, monkeypatch):
    # torch's own math kernel stands in for an installed kernel package
    monkeypatch.setitem(attention.BACKENDS, "sage", attention.Backend("_native_math", None, False))
    sample(wan, still_image, settings, fresh_cache)
    transformer = fresh_cache.peek(wan.cache_key).pipeline.transformer
    attn = block_compile.repeated_blocks(transformer)[0].attn1
    seen = []
    hook = attn.register_forward_pre_hook(lambda *_: seen.append(attn.processor._attention_backend))
    try:
        result = sample(wan, still_image, with_speed(settings, attention="sage"), fresh_cache)
    finally:
        hook.remove()
    assert seen and {str(b.value) for b in seen} == {"_native_math"} and "attention sage" in result.report
    assert attn.processor._attention_backend is None  # put back after the run
    assert torch.allclose(result.frames, plain, atol=1e-4)
