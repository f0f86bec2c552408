"""Regional ``torch.compile``: the denoisers' repeated transformer blocks, compiled once per
loaded model and kept with it in the cache, so later runs start warm.

Compiling the one block class a transformer repeats (diffusers lists it in ``_repeated_blocks``)
costs a fraction of compiling the whole model and gives most of its speed. Each block's
``forward`` is replaced on the instance by a guard around the compiled function. A compile that
fails (no C compiler, an unsupported op, a backend error) surfaces at the first call, before that
block computed anything: the guard puts every block back to eager, runs the call eagerly, and the
run goes on; the report says so. Turning compile off puts the eager blocks back but keeps the
compiled functions, so turning it on again costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from i2v_nodes.lazy import torch

log = logging.getLogger(__name__)

BACKEND: Any = "inductor"  # torch.compile's backend (tests use "eager" or a failing one)


def compile_errors() -> tuple[type[BaseException], ...]:
    """The errors of a compile that failed (not of the computation itself)."""
    from torch._dynamo.exc import TorchDynamoException
    from torch._inductor.exc import CppCompileError, InductorError

    return TorchDynamoException, InductorError, CppCompileError


def repeated_blocks(module: torch.nn.Module) -> list[torch.nn.Module]:
    """The instances of the block class(es) a diffusers model repeats, in module order."""
    names = set(getattr(module, "_repeated_blocks", ()))
    return [m for m in module.modules() if type(m).__name__ in names]


@dataclass
class CompiledBlocks:
    """The compiled blocks of one loaded pipeline's denoisers (lives on the cache entry)."""

    blocks: list[torch.nn.Module] = field(default_factory=list)
    guards: list[Callable[..., Any]] = field(default_factory=list)
    failure: str = ""  # why compiling failed (then the blocks stay eager)
    installed: bool = False

    def install(self, denoisers: list[torch.nn.Module]) -> None:
        """Compiled forwards on every repeated block (compiled on first use)."""
        if self.failure or self.installed:
            return
        if not self.blocks:
            self.blocks = [b for d in denoisers for b in repeated_blocks(d)]
            self.guards = [self._guard(b) for b in self.blocks]
        for block, guard in zip(self.blocks, self.guards, strict=True):
            block.forward = guard
        self.installed = True

    def uninstall(self) -> None:
        for block in self.blocks:
            block.__dict__.pop("forward", None)
        self.installed = False

    def _guard(self, block: torch.nn.Module) -> Callable[..., Any]:
        eager = block.forward  # the class's forward, bound (no instance override yet)
        compiled = torch.compile(eager, backend=BACKEND, dynamic=False)

        def forward(*args: Any, **kwargs: Any) -> Any:
            if self.failure:
                return eager(*args, **kwargs)
            try:
                return compiled(*args, **kwargs)
            except compile_errors() as exc:
                self.failure = _describe(exc)
                log.warning("torch.compile of the denoiser's blocks failed (%s); running them uncompiled",
                            self.failure)
                self.uninstall()
                return eager(*args, **kwargs)

        return forward

    def note(self) -> str:
        if self.failure:
            return f"compile failed, ran uncompiled ({self.failure})"
        return "compiled blocks" if self.installed else ""


def _describe(exc: BaseException) -> str:
    """The compile error and its root cause, on one line (dynamo wraps the backend's own error and
    keeps it as ``inner_exception``, or as the cause or context)."""
    root = exc
    while (inner := getattr(root, "inner_exception", None) or root.__cause__ or root.__context__) is not None:
        root = inner
    lines = [line for line in str(root).splitlines() if line.strip()]
    cause = f"{type(root).__name__}: {lines[0].strip()[:200]}" if lines else type(root).__name__
    return cause if root is exc else f"{type(exc).__name__}, {cause}"
