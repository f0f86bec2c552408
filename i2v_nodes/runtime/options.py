"""The ``I2V_OPTIONS`` object: settings only some families have, built by small option nodes.

Each option node adds one set (its family's settings) to the chain it is given; I2VSample takes
the chain through its optional ``options`` input and hands each set to the family it belongs to.
A set meant for another family is an error, never silently ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from i2v_nodes.errors import InputError
from i2v_nodes.runtime.speed.settings import SpeedSettings

SPEED = "speed"  # the OptionSet.family of speed settings: they apply across families, where supported
SAMPLER = "sampler"  # the OptionSet.family of the sampler choice: each family says which it runs
ACROSS_FAMILIES = (SPEED, SAMPLER)


@dataclass(frozen=True)
class SamplerSettings:
    """What I2VSamplerOptions sets."""

    sampler: str = "default"  # "default" (the model's own scheduler) or a name from the families' SAMPLERS


@dataclass(frozen=True)
class OptionSet:
    family: str  # the family it applies to
    node: str  # the node class that made it, for messages
    settings: Any  # the family's settings dataclass


@dataclass(frozen=True)
class Options:
    """An ordered chain of option sets; a later set from the same node replaces an earlier one."""

    sets: tuple[OptionSet, ...] = ()

    def with_set(self, new: OptionSet) -> Options:
        return dataclasses.replace(self, sets=tuple(s for s in self.sets if s.node != new.node) + (new,))

    def for_family(self, family: str, model_name: str) -> Any:
        """The settings for ``family`` (or None); a set for any other family is an error."""
        chosen = None
        for option_set in self.sets:
            if option_set.family in ACROSS_FAMILIES:
                continue
            if option_set.family != family:
                raise InputError(
                    "options",
                    f"{option_set.node} holds settings for {option_set.family} models, but the model is "
                    f"{model_name} ({family}): remove {option_set.node} or pick a {option_set.family} model",
                )
            chosen = option_set.settings
        return chosen


def speed_of(options: Options | None) -> SpeedSettings:
    """The chain's speed settings (the defaults when it has none)."""
    found = [s.settings for s in options.sets if s.family == SPEED] if options is not None else []
    return found[-1] if found else SpeedSettings()


def sampler_of(options: Options | None) -> SamplerSettings:
    """The chain's sampler choice (the model's own when it has none)."""
    found = [s.settings for s in options.sets if s.family == SAMPLER] if options is not None else []
    return found[-1] if found else SamplerSettings()


def chain(previous: object, new: OptionSet) -> Options:
    """What an option node outputs: ``previous`` (another option node's output, or None) plus its set."""
    if previous is None:
        return Options((new,))
    if not isinstance(previous, Options):
        raise InputError(
            "options", f"expected I2V_OPTIONS from another option node, got {type(previous).__name__}"
        )
    return previous.with_set(new)
