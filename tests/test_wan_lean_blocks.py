"""Wan's lean blocks: the stock block's numbers bit for bit, with a fraction of its float32 temporaries.

(The whole pipeline's frames equal the unprepared stock pipeline's in tests/test_family_contract.py.)"""

from __future__ import annotations

import json

import pytest
import torch

from i2v_nodes.families.wan import configs
from i2v_nodes.families.wan.components import meta_component
from i2v_nodes.families.wan.lean_blocks import lean_blocks
from i2v_nodes.runtime.memory import trace as memtrace


def _lean(block: torch.nn.Module) -> bool:
    """A lean block, under the stock's class name (what diffusers and the block compile look blocks up by)."""
    stock = type(block).__mro__[1]
    return type(block).__name__ == stock.__name__ == "WanTransformerBlock" and type(block) is not stock


def _transformer(config: dict, dtype: torch.dtype) -> torch.nn.Module:
    from diffusers import WanTransformer3DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return WanTransformer3DModel(**config).to(dtype).eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("model", ["tiny-wan2.2-i2v-a14b", "tiny-wan2.2-ti2v-5b"])
def test_a_lean_block_computes_the_stock_blocks_numbers(model, dtype):
    config = configs.TINY[model]["transformer"]
    stock = _transformer(config, dtype)
    lean = _transformer(config, dtype)
    lean_blocks(lean)
    assert all(_lean(block) for block in lean.blocks)
    generator = torch.Generator().manual_seed(1)
    # 3 x 14 x 10 latents: 105 tokens, not a multiple of the 8 slices
    latents = torch.randn(1, config["in_channels"], 3, 28, 20, generator=generator).to(dtype)
    text = torch.randn(1, 8, config["text_dim"], generator=generator).to(dtype)
    # TI2V-5B's pipeline passes a timestep per token (batch, tokens): the modulations go per token too
    timestep = torch.full((1, 3 * 14 * 10), 700) if model.endswith("5b") else torch.tensor([700])
    with torch.no_grad():
        expected = stock(latents, timestep, text, return_dict=False)[0]
        got = lean(latents, timestep, text, return_dict=False)[0]
    assert torch.equal(got, expected)


def test_lean_blocks_keep_the_weights_and_leave_other_modules_alone():
    config = configs.TINY["tiny-wan2.2-i2v-a14b"]["transformer"]
    model = _transformer(config, torch.float32)
    before = {name: p.data_ptr() for name, p in model.named_parameters()}
    lean_blocks(model)
    lean_blocks(model)  # twice is once
    assert {name: p.data_ptr() for name, p in model.named_parameters()} == before
    assert type(model.blocks[0]).__mro__[1].__name__ == "WanTransformerBlock"
    lean_blocks(torch.nn.Linear(2, 2))  # no blocks: nothing to do


def test_the_a14b_call_at_720p_peaks_lower_and_is_traced_as_it_runs():
    """The traced peak of one A14B call at 1280x720x81 in bf16: the stock block's float32 residual
    arithmetic (8.0 GiB) against the lean block's (6.1 GiB on CUDA, where RMS norm is one kernel)."""
    config = json.dumps(configs.PUBLISHED["Wan-AI/Wan2.2-I2V-A14B-Diffusers"]["transformer"], sort_keys=True)
    model = meta_component("transformer", config, torch.bfloat16)
    assert _lean(model.blocks[0])
    latents = torch.empty(1, 36, 21, 90, 160, device="meta", dtype=torch.bfloat16)
    text = torch.empty(1, 512, 4096, device="meta", dtype=torch.bfloat16)
    timestep = torch.empty(1, device="meta", dtype=torch.long)

    def call() -> torch.Tensor:
        return model(latents, timestep, text, return_dict=False)[0]

    lean = memtrace.peak_bytes(call, kernels="cuda")
    stock_class = type(model.blocks[0]).__mro__[1]
    lean_class = type(model.blocks[0])
    try:
        for block in model.blocks:
            block.__class__ = stock_class
        stock = memtrace.peak_bytes(call, kernels="cuda")
    finally:
        for block in model.blocks:
            block.__class__ = lean_class
    tokens_f32 = 21 * 45 * 80 * 5120 * 4  # one float32 copy of the sequence: 1.44 GiB
    assert stock - lean >= 1.25 * tokens_f32
    assert stock > 7.9 * 2**30 and lean < 6.2 * 2**30
