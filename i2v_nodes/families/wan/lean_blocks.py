"""Wan's transformer block with its float32 element-wise arithmetic done a slice of tokens at a time.

diffusers' ``WanTransformerBlock`` computes its norms, modulations and residual sums in float32 over
the whole sequence at once: at the feed-forward's residual the block's input, its normed copy, the
feed-forward's output and three float32 temporaries the size of the sequence are alive together.
For A14B at 1280x720x81 (75,600 tokens of 5,120) that is the call's peak: 8.0 GiB, 4.3 of them the
float32 temporaries. The same operations done on an eighth of the tokens at a time into one output
tensor keep one eighth of those temporaries; the call's peak moves to the feed-forward's hidden layer
and drops to about 6 GiB (what lets 720p run on a 12 GB card).

Every token's numbers come from the same operations in the same order on the same dtypes (each of
these operations works per element, or per token for the layer norms), so the output is the stock
block's bit for bit; attention and the feed-forward run on the whole sequence, as in the stock block.
The rest is the stock block's own code (diffusers, Apache-2.0).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from i2v_nodes.lazy import torch

TOKEN_SLICES = 8


def lean_blocks(transformer: torch.nn.Module) -> None:
    """Make every stock Wan block of ``transformer`` a lean one (in place; weights and hooks kept)."""
    from diffusers.models.transformers.transformer_wan import WanTransformerBlock

    for block in getattr(transformer, "blocks", ()):
        if type(block) is WanTransformerBlock:
            block.__class__ = _lean_class(WanTransformerBlock)


_LEAN: dict[type, type] = {}


def _lean_class(stock: type) -> type:
    if stock not in _LEAN:
        # the stock's name: diffusers (compile_repeated_blocks, ``_repeated_blocks``) and the pack's block
        # compile and step caches find a transformer's blocks by class name
        lean = type(stock.__name__, (stock,), {"forward": _forward, "__module__": __name__,
                                               "__qualname__": stock.__qualname__})
        _register_like(lean, stock)
        _LEAN[stock] = lean
    return _LEAN[stock]


def _register_like(lean: type, stock: type) -> None:
    """diffusers' cache hooks (first-block cache, MagCache, ...) read a block's outputs from metadata
    registered per block class: the lean class gets a copy of the stock's."""
    from diffusers.hooks._helpers import TransformerBlockRegistry

    try:
        metadata = TransformerBlockRegistry.get(stock)
    except ValueError:
        return
    TransformerBlockRegistry.register(lean, copy.copy(metadata))


def _modulation(block: torch.nn.Module, temb: torch.Tensor) -> tuple[torch.Tensor, ...]:
    if temb.ndim == 4:  # batch, tokens, 6, dim (Wan 2.2 TI2V): a modulation per token
        parts = (block.scale_shift_table.unsqueeze(0) + temb.float()).chunk(6, dim=2)
        return tuple(part.squeeze(2) for part in parts)
    return (block.scale_shift_table + temb.float()).chunk(6, dim=1)  # batch, 6, dim


def _by_tokens(fn: Callable[..., torch.Tensor], like: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
    """``fn(*tensors)`` shaped and typed like ``like``, computed a slice of tokens (dim 1) at a time;
    tensors with one token (a modulation for the whole sequence) are broadcast to every slice."""
    tokens = like.shape[1]
    out = torch.empty_like(like)
    step = -(-tokens // TOKEN_SLICES)
    for start in range(0, tokens, step):
        end = start + step
        out[:, start:end] = fn(*(t[:, start:end] if t.shape[1] == tokens else t for t in tensors))
    return out


def _forward(self: torch.nn.Module, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
             temb: torch.Tensor, rotary_emb: torch.Tensor) -> torch.Tensor:
    shift, scale, gate, c_shift, c_scale, c_gate = _modulation(self, temb)
    x = hidden_states

    # 1. self-attention
    normed = _by_tokens(lambda h, sc, sh: (self.norm1(h.float()) * (1 + sc) + sh).type_as(h), x, x,
                        scale, shift)
    attention = self.attn1(normed, None, None, rotary_emb)
    del normed
    x = _by_tokens(lambda h, a, g: (h.float() + a * g).type_as(h), x, x, attention, gate)
    del attention

    # 2. cross-attention
    normed = _by_tokens(lambda h: self.norm2(h.float()).type_as(h), x, x)
    attention = self.attn2(normed, encoder_hidden_states, None, None)
    del normed
    x = x + attention
    del attention

    # 3. feed-forward
    normed = _by_tokens(lambda h, sc, sh: (self.norm3(h.float()) * (1 + sc) + sh).type_as(h), x, x,
                        c_scale, c_shift)
    fed = self.ffn(normed)
    del normed
    return _by_tokens(lambda h, f, g: (h.float() + f.float() * g).type_as(h), x, x, fed, c_gate)
