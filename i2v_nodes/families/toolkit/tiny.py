"""Building tiny, randomly initialised models for tests, demos and benchmarks.

Each family declares its tiny models (small configs, in its own module); this module builds
one on first use, with a fixed seed, saves it with safetensors and hands back its folder, which
then loads with ``from_pretrained`` like any other model. They run the real diffusers pipeline
code end to end in well under a second on a CPU, with no download. Their output is noise; they
prove that the plumbing works, not that the pictures are good.

The tokenizers are built in code too, so tokenization runs offline: a byte-level BPE for CLIP
(a byte alphabet plus merges for a short word list) and a unigram vocabulary for T5/UMT5.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from i2v_nodes.lazy import torch

log = logging.getLogger(__name__)

BUILD_SEED = 20241121

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


@contextmanager
def seeded(seed: int = BUILD_SEED) -> Iterator[None]:
    """Random weights from a fixed seed, without touching the caller's global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_t5_tokenizer(words: tuple[str, ...] | list[str] = tuple(TOKENIZER_WORDS), max_length: int = 512):
    """A T5/UMT5 tokenizer built offline: a unigram vocabulary of whole words and single characters.

    Every listed word is one piece (with the word-start marker); anything else falls back to its
    characters, and characters outside printable ASCII to ``<unk>``.
    """
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [("\u2581" + word, -1.0) for word in words]
    vocab += [(chr(c), -5.0) for c in range(33, 127)]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=max_length)


COMPLETE = ".i2v-complete"  # written last into a built folder: without it, a folder is half-written


@contextmanager
def first_use_lock(target: Path) -> Iterator[None]:
    """Hold a lock for building ``target`` on first use, across threads and processes on this machine
    (a sweep's processes start on a fresh models folder together). The lock file lives in the system's
    temporary folder, so a models folder never gets lock files; across machines sharing one folder,
    the atomic rename still leaves exactly one complete copy."""
    from filelock import FileLock

    folder = Path(tempfile.gettempdir()) / "i2v-nodes-locks"
    folder.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(str(Path(target).resolve()).encode()).hexdigest()[:32]
    with FileLock(str(folder / f"{key}.lock")):
        yield


def ensure_built(name: str, models_dir: Path, build: Callable[[], Any]) -> Path:
    """Return the folder of tiny model ``name``, building and saving it on first use.

    The build goes to a temporary folder beside the target, is marked complete, and is renamed into
    place under :func:`first_use_lock`: a second process waits and then uses it, and a crash or a
    concurrent build never leaves a half-written model behind. A folder that is there but not
    complete (a crash in an older version, a partial copy) is set aside and built again, never loaded.
    """
    target = Path(models_dir) / name
    if _complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with first_use_lock(target):
        if _complete(target):
            return target
        if target.exists():
            _set_aside(target)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
        try:
            log.info("building tiny model %s in %s", name, target)
            _every_rank_saves(build()).save_pretrained(staging, safe_serialization=True)
            if not _whole(staging):
                raise RuntimeError(f"building {name} left a component without weights in {staging}")
            (staging / COMPLETE).write_text("built by i2v-nodes\n", encoding="utf-8")
            staging.chmod(0o777 & ~_umask())  # mkdtemp's 0700 would hide it from other users
            os.rename(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _complete(folder: Path) -> bool:
    """Whether a built folder is whole: marked so, or (built before the mark existed) :func:`_whole`;
    such a folder is marked now."""
    if (folder / COMPLETE).is_file():
        return True
    if not _whole(folder):
        return False
    try:
        (folder / COMPLETE).write_text("checked by i2v-nodes\n", encoding="utf-8")
    except OSError:
        pass  # a read-only models folder: still whole, checked again next time
    return True


def _whole(folder: Path) -> bool:
    """Whether a pipeline folder holds every component its model_index.json names, none empty."""
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    named = [k for k, v in index.items() if isinstance(v, list) and v and v[0] is not None]
    return all((folder / part).is_dir() and any((folder / part).iterdir()) for part in named)


def _every_rank_saves(pipeline: Any) -> Any:
    """transformers 5 writes a model's weights only on rank 0 of an initialised torch.distributed group
    (a sweep's processes form one), silently leaving an empty folder on the others. A first-use build
    is this process's own file, whatever its rank: each transformers component of this freshly built
    pipeline is told so (on the instance; the library's class is left alone)."""
    for component in getattr(pipeline, "components", {}).values():
        if hasattr(component, "should_save_on_this_rank"):
            component.should_save_on_this_rank = _this_process_saves
    return pipeline


def _this_process_saves(is_main_process: bool = True) -> bool:
    return is_main_process


def _set_aside(folder: Path) -> None:
    """Move a half-written folder out of the way (renamed first: a reader never sees it change)."""
    aside = folder.with_name(f".{folder.name}.broken-{os.getpid()}")
    log.warning("%s is half-written (no %s): building it again", folder, COMPLETE)
    os.rename(folder, aside)
    shutil.rmtree(aside, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


GEMMA_SPECIALS = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>")  # Gemma's own ids 0-4, in its order


def build_gemma_tokenizer(words: tuple[str, ...] | list[str] = tuple(TOKENIZER_WORDS),
                          max_length: int = 1024):
    """A Gemma tokenizer built offline: Gemma's byte-fallback BPE with its special tokens (pad 0, eos 1,
    bos 2, unk 3, mask 4), the 256 byte tokens, and merges that make each listed word one piece, both
    at the start of a text and after a space (Gemma writes a space as "▁" and adds no prefix space).
    Anything else falls back to characters, or to UTF-8 bytes. Adds ``<bos>`` as Gemma does.
    """
    from transformers import GemmaTokenizer

    vocab = {token: index for index, token in enumerate(GEMMA_SPECIALS)}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    for char in sorted({c for word in words for c in word} | {"\u2581"}):
        vocab.setdefault(char, len(vocab))
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in (form for w in words for form in (w, "\u2581" + w)):
        # as build_clip_tokenizer: follow the path BPE takes through earlier merges until it is whole
        pieces = _apply_merges(list(word), ranks)
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            vocab.setdefault(pair[0] + pair[1], len(vocab))
            pieces = _apply_merges(pieces, ranks)
    return GemmaTokenizer(vocab=vocab, merges=merges, model_max_length=max_length, add_bos_token=True,
                          add_eos_token=False)
