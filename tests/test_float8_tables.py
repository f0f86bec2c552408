"""Embedding tables stored in bf16 stay bf16 once loaded (half the bytes of fp32, used in place from the
mapped file) and give exactly the rows of the table cast whole; the model still reports the dtype it
computes in, which pipelines give the prompt embeddings."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import UMT5Config, UMT5EncoderModel

from i2v_nodes.families.toolkit.file_tensors import assign, empty_weights
from i2v_nodes.families.toolkit.float8 import cast_keeping_float8, is_float8, keep_float8

CONFIG = UMT5Config(vocab_size=300, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                    relative_attention_num_buckets=8, feed_forward_proj="gated-gelu")


def stored_checkpoint() -> dict[str, torch.Tensor]:
    """A UMT5 as a float8 file has it: float8 matrices (scale 1), the tables in bf16."""
    torch.manual_seed(0)
    state = UMT5EncoderModel(CONFIG).state_dict()
    out = {}
    for name, tensor in state.items():
        table = "shared" in name or "embed_tokens" in name or "relative_attention_bias" in name
        stored = torch.bfloat16 if table else torch.float8_e4m3fn
        out[name] = tensor.to(stored) if tensor.ndim == 2 else tensor
    return out


def loaded(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    with empty_weights():
        model = UMT5EncoderModel(CONFIG)
    weights, scales = cast_keeping_float8(model, dict(state), {}, torch.float32)
    keep_float8(assign(model, weights, Path("umt5.safetensors")), scales, torch.float32)
    return model


def test_tables_stay_bf16_and_give_the_rows_of_the_table_cast_whole():
    state = stored_checkpoint()
    kept = loaded(state)
    cast_whole = loaded({n: t.float() if t.dtype == torch.bfloat16 else t for n, t in state.items()})
    assert kept.shared.weight.dtype == torch.bfloat16
    assert kept.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight.dtype == torch.bfloat16
    assert cast_whole.shared.weight.dtype == torch.float32
    assert is_float8(kept.encoder.block[0].layer[0].SelfAttention.q.weight.dtype)
    assert kept.dtype == torch.float32  # not the first parameter's (the bf16 table)
    assert type(kept).__name__ == "UMT5EncoderModel" and isinstance(kept, UMT5EncoderModel)
    ids = torch.randint(0, 300, (2, 12))
    with torch.no_grad():
        ours, theirs = kept(input_ids=ids).last_hidden_state, cast_whole(input_ids=ids).last_hidden_state
    assert ours.dtype == torch.float32 and torch.equal(ours, theirs)


def test_the_gated_output_layers_stay_float8_and_compute_in_fp32():
    """transformers keeps UMT5's ``wo`` in fp32: from a float8 file it stays float8 (a quarter of the
    bytes) and computes in fp32, giving the numbers of the layer dequantised to fp32 on load, also
    when the rest computes in bf16."""
    state = stored_checkpoint()
    wo = "encoder.block.0.layer.1.DenseReluDense.wo.weight"
    for dtype in (torch.float32, torch.bfloat16):
        with empty_weights():
            kept = UMT5EncoderModel(CONFIG)
        weights, scales = cast_keeping_float8(kept, dict(state), {}, dtype)
        assert is_float8(weights[wo].dtype)
        keep_float8(assign(kept, weights, Path("umt5.safetensors")), scales, dtype)
        with empty_weights():
            dequantised = UMT5EncoderModel(CONFIG)
        weights = {n: (t.float() if n.endswith(".wo.weight") else t) for n, t in state.items()}
        weights, scales = cast_keeping_float8(dequantised, weights, {}, dtype)
        keep_float8(assign(dequantised, weights, Path("umt5.safetensors")), scales, dtype)
        assert dequantised.encoder.block[0].layer[1].DenseReluDense.wo.weight.dtype == torch.float32
        ids = torch.randint(0, 300, (1, 9))
        with torch.no_grad():
            ours, theirs = kept(input_ids=ids).last_hidden_state, dequantised(input_ids=ids).last_hidden_state
        assert ours.dtype == theirs.dtype and torch.equal(ours, theirs)


def test_an_encoders_half_matrices_stay_half_in_an_fp32_run_and_give_the_same_numbers():
    """A bf16 / fp16 encoder file loaded for an fp32 run (``keep_half``): every matrix stays in its
    stored dtype (half the bytes of fp32), cast as its layer runs, and the output equals that of the
    same file cast whole to fp32 on load, bit for bit; the class's fp32-kept gated output layer too."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    for stored in (torch.bfloat16, torch.float16):
        state = {n: t.to(stored) for n, t in UMT5EncoderModel(CONFIG).state_dict().items()}
        with empty_weights():
            kept = UMT5EncoderModel(CONFIG)
        weights, scales = cast_keeping_float8(kept, dict(state), {}, torch.float32, keep_half=True)
        keep_float8(assign(kept, weights, Path("umt5.safetensors")), scales, torch.float32)
        layer = kept.encoder.block[0].layer
        assert layer[0].SelfAttention.q.weight.dtype == stored
        assert layer[1].DenseReluDense.wo.weight.dtype == stored
        assert kept.dtype == torch.float32
        cast_whole = loaded({n: t.float() for n, t in state.items()})
        ids = torch.randint(0, 300, (2, 12))
        with torch.no_grad():
            ours, theirs = kept(input_ids=ids).last_hidden_state, cast_whole(input_ids=ids).last_hidden_state
        assert ours.dtype == torch.float32 and torch.equal(ours, theirs)

    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, image_size=28, patch_size=14)
    state = {n: t.to(torch.bfloat16) for n, t in CLIPVisionModel(config).state_dict().items()}
    kept, cast_whole = (half_loaded(config, weights)
                        for weights in (dict(state), {n: t.float() for n, t in state.items()}))
    fc1 = next(layer for name, layer in kept.named_modules() if name.endswith("layers.0.mlp.fc1"))
    assert fc1.weight.dtype == torch.bfloat16 and fc1.bias.dtype == torch.float32
    pixels = torch.randn(1, 3, 28, 28)
    with torch.no_grad():
        ours = kept(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
        theirs = cast_whole(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
    assert torch.equal(ours, theirs)


def half_loaded(config, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    from transformers import CLIPVisionModel

    with empty_weights():
        model = CLIPVisionModel(config)
    weights, scales = cast_keeping_float8(model, weights, {}, torch.float32, keep_half=True)
    keep_float8(assign(model, weights, Path("clip.safetensors")), scales, torch.float32)
    return model
