"""I2VSamplerOptions at run time: the sampler is checked against the model's family before any work,
then set on the cached pipeline for one pipeline call and put back after it, also when the call fails
or is cancelled, so it never reaches the next run or another graph using the same model.

The scheduler itself is built from the model's own scheduler config (:mod:`.schedulers`, imported
only when a run picks a sampler).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from i2v_nodes.errors import InputError
from i2v_nodes.families.contract.spec import SAMPLERS
from i2v_nodes.runtime.loading.handle import ModelHandle
from i2v_nodes.runtime.options import SamplerSettings

DEFAULT = "default"
CHOICES = (DEFAULT, *SAMPLERS)
# Samplers that add fresh noise at each step: the engine runs them one clip per pipeline call, each
# clip's noise from its own seed, so clip i of a batch still equals a single run with seed + i
DRAWS_NOISE = frozenset({"lcm"})


def check(handle: ModelHandle, settings: SamplerSettings) -> None:
    """Raise :class:`InputError` naming the sampler and the ones the model runs, for one it cannot."""
    name = settings.sampler
    if name not in CHOICES:
        raise InputError("sampler", f"unknown sampler {name!r}; the samplers are: {', '.join(CHOICES)}")
    allowed = handle.family.samplers(handle.variant)
    if name not in allowed:
        family = handle.family
        title = family.spec.variant_titles.get(handle.variant) or family.title
        raise InputError("sampler", f"{title} ({handle.name}) cannot run the sampler {name}: its stock "
                                    f"pipeline does not step that scheduler; it runs: {', '.join(allowed)}")


def draws_noise(name: str) -> bool:
    return name in DRAWS_NOISE


@contextmanager
def using(pipe: Any, name: str, seeds: Sequence[int]) -> Iterator[str]:
    """The pipeline's scheduler replaced by the sampler's for the duration, then its own again. Yields
    what the report says of it ("" for the model's own). A sampler that draws noise each step draws it
    from the seed of the one clip it is given."""
    if name == DEFAULT:
        yield ""
        return
    from i2v_nodes.runtime.sampling import schedulers

    own = pipe.scheduler
    chosen = schedulers.build(name, own=own)
    with ExitStack() as stack:
        if draws_noise(name):
            if len(seeds) != 1:
                raise ValueError(f"{name} draws noise each step: one clip per call, got seeds {list(seeds)}")
            stack.enter_context(schedulers.step_noise(seeds[0]))
        pipe.scheduler = chosen
        try:
            yield f"sampler {name} ({type(chosen).__name__})"
        finally:
            pipe.scheduler = own
