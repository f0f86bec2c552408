"""Embedding tables stored in bf16 stay bf16 once loaded (half the bytes of fp32, used in place from the
mapped file) and give exactly the rows of the table cast whole; the model still reports the dtype it
computes in, which pipelines give the prompt embeddings."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import UMT5Config, UMT5EncoderModel

from i2v_nodes.families.toolkit.file_tensors import assign, empty_weights
from i2v_nodes.families.toolkit.float8 import FLOAT8, cast_keeping_float8, keep_float8

CONFIG = UMT5Config(vocab_size=300, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                    relative_attention_num_buckets=8, feed_forward_proj="gated-gelu")


def stored_checkpoint() -> dict[str, torch.Tensor]:
    """A UMT5 as a float8 file has it: float8 matrices (scale 1), the tables in bf16."""
    torch.manual_seed(0)
    state = UMT5EncoderModel(CONFIG).state_dict()
    out = {}
    for name, tensor in state.items():
        table = "shared" in name or "embed_tokens" in name or "relative_attention_bias" in name
        out[name] = tensor.to(torch.bfloat16 if table else FLOAT8[0]) if tensor.ndim == 2 else tensor
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
    assert kept.encoder.block[0].layer[0].SelfAttention.q.weight.dtype in FLOAT8
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
        assert weights[wo].dtype in FLOAT8
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
