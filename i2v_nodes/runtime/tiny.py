"""Tiny, randomly initialised models for tests, demos and benchmarks.

They run the real diffusers pipeline code end to end in well under a second on a CPU, with
no download: every component is built here from a small config, with a fixed seed, saved with
safetensors and loaded back with ``from_pretrained`` like any other model. Their output is
noise; they prove that the plumbing works, not that the pictures are good.

The tokenizer is a byte-level BPE built in code (a byte alphabet plus merges for a short word
list), so CLIP tokenization runs offline too.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import torch

log = logging.getLogger(__name__)

BUILD_SEED = 20241121

# Shapes chosen to be as small as the real classes allow while keeping the real structure:
# four VAE levels (so latents are 1/8 of the image, as in the real model), a UNet with one
# cross-attention level, and two-layer CLIP towers.
TINY_I2VGEN_XL = {
    "unet": {
        "sample_size": 8,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ["CrossAttnDownBlock3D", "DownBlock3D"],
        "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D"],
        "block_out_channels": [4, 8],
        "layers_per_block": 1,
        "norm_num_groups": 2,
        "cross_attention_dim": 4,
        "attention_head_dim": 4,
        "num_attention_heads": None,
    },
    "vae": {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [8, 8, 8, 8],
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 2,
        "sample_size": 64,
        "scaling_factor": 0.18215,
        "force_upcast": True,
    },
    "text_encoder": {
        "hidden_size": 4,
        "intermediate_size": 8,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
        "projection_dim": 4,
        "hidden_act": "gelu",
    },
    "image_encoder": {
        "hidden_size": 4,
        "intermediate_size": 8,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 1,
        "projection_dim": 4,
        "hidden_act": "gelu",
    },
    "feature_extractor": {"crop_size": 32, "size": {"shortest_edge": 32}},
    # The real model's scheduler settings, so sampling takes the same code path.
    "scheduler": {
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "clip_sample": False,
        "set_alpha_to_one": False,
        "steps_offset": 1,
        "rescale_betas_zero_snr": True,
        "timestep_spacing": "leading",
    },
}

# Words the tokenizer knows whole; anything else falls back to single bytes.
TOKENIZER_WORDS = (
    "a an the of in on at with and to from is are it its this that "
    "cat dog bird fish horse person man woman child car boat ship train plane tree flower "
    "water sea ocean river sky cloud clouds sun moon star stars fire snow rain wind city street "
    "forest mountain beach field road house room light night day red blue green white black "
    "walking running flying swimming moving floating dancing turning waves camera slowly fast "
    "video photo high quality detailed cinematic blurry distorted ugly static motionless low "
    "resolution"
).split()


def _bytes_to_unicode() -> dict[int, str]:
    """The byte-to-printable-character map that byte-level BPE vocabularies are written in."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def _apply_merges(pieces: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Byte-pair encoding of one word: merge the best-ranked adjacent pair until none is known."""
    while len(pieces) > 1:
        pairs = [(ranks.get(pair, len(ranks) + 1), i)
                 for i, pair in enumerate(zip(pieces, pieces[1:], strict=False))]
        rank, i = min(pairs)
        if rank > len(ranks):
            break
        pieces = pieces[:i] + [pieces[i] + pieces[i + 1]] + pieces[i + 2:]
    return pieces


def build_clip_tokenizer(words: tuple[str, ...] | list[str] = tuple(TOKENIZER_WORDS)):
    """A CLIP tokenizer built offline: byte alphabet plus whole-word merges for ``words``."""
    from transformers import CLIPTokenizer

    alphabet = sorted(set(_bytes_to_unicode().values()))
    vocab: dict[str, int] = {}
    for token in alphabet + [c + "</w>" for c in alphabet]:
        vocab.setdefault(token, len(vocab))
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        # Add merges until the word comes out whole. BPE applies the best-ranked pair first, so
        # merges made for earlier words (the "at" in "cat") decide the path; follow it.
        pieces = _apply_merges(list(word[:-1]) + [word[-1] + "</w>"], ranks)
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            vocab.setdefault(pair[0] + pair[1], len(vocab))
            pieces = _apply_merges(pieces, ranks)
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab.setdefault(special, len(vocab))
    return CLIPTokenizer(
        vocab=vocab,
        merges=merges,
        model_max_length=77,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )


def build_tiny_i2vgen_xl(config: dict = TINY_I2VGEN_XL, seed: int = BUILD_SEED):
    """Build an I2VGen-XL pipeline with random weights (fixed seed) from component configs.

    With the default config, the tiny test model; benchmarks pass the published model's layout to
    get a full-size pipeline without downloading its weights.
    """
    from diffusers import AutoencoderKL, DDIMScheduler
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    from .families.i2vgen_xl import pipeline_class, unet_class

    tokenizer = build_clip_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                   "pad_token_id": tokenizer.pad_token_id}
        # a full-size config brings CLIP's own vocab size; our offline ids fit inside it
        text_config = CLIPTextConfig(**{"vocab_size": len(tokenizer), **special, **config["text_encoder"]})
        components = {
            "unet": unet_class()(**config["unet"]),
            "vae": AutoencoderKL(**config["vae"]),
            "text_encoder": CLIPTextModel(text_config),
            "image_encoder": CLIPVisionModelWithProjection(CLIPVisionConfig(**config["image_encoder"])),
        }
    return pipeline_class()(
        tokenizer=tokenizer,
        feature_extractor=CLIPImageProcessor(**config["feature_extractor"]),
        scheduler=DDIMScheduler(**config["scheduler"]),
        **components,
    )


# name -> builder; the name is also the folder the model is saved under.
TINY_MODELS: dict[str, Callable] = {"tiny-i2vgen-xl": build_tiny_i2vgen_xl}

_build_lock = threading.Lock()


def ensure_tiny_model(name: str, models_dir: Path) -> Path:
    """Return the folder of tiny model ``name``, building and saving it on first use.

    The build goes to a temporary folder beside the target and is renamed into place, so a
    crash or a concurrent build never leaves a half-written model behind.
    """
    if name not in TINY_MODELS:
        raise KeyError(f"unknown tiny model {name!r}; known: {sorted(TINY_MODELS)}")
    target = Path(models_dir) / name
    if (target / "model_index.json").is_file():
        return target
    with _build_lock:
        if (target / "model_index.json").is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
        try:
            log.info("building tiny model %s in %s", name, target)
            pipe = TINY_MODELS[name]()
            pipe.save_pretrained(staging, safe_serialization=True)
            try:
                os.rename(staging, target)
            except OSError:
                if not (target / "model_index.json").is_file():  # another process won the race
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target
