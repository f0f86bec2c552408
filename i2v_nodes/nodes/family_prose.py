"""Prose about the model families, made from the registry when a node is described.

Every description or tooltip that lists families, or each family's rules (size step, frame rule,
defaults), takes the list from here, so a new family, or a family's new variant, cannot leave the
nodes' help stale. A family is named by its title where all its variants agree; a variant that
differs is named by its own title (a family's first variant is its main one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from i2v_nodes.families import registry
from i2v_nodes.families.contract.family import Family
from i2v_nodes.families.contract.spec import Rules


def joined(items: Iterable[str]) -> str:
    """``a, b and c``."""
    items = list(items)
    if len(items) < 2:
        return "".join(items) or "none"
    return f"{', '.join(items[:-1])} and {items[-1]}"


def families(where: Callable[[Family], bool] = lambda family: True) -> str:
    """The registered families (each by its long title) that ``where`` accepts."""
    return joined(family.spec.long_title for family in registry.REGISTERED if where(family))


def titles(where: Callable[[Family], bool] = lambda family: True) -> str:
    """The short titles of the families ``where`` accepts (e.g. those a speed setting works on)."""
    return joined(family.title for family in registry.REGISTERED if where(family))


def _variant(family: Family, variant: str) -> str:
    return family.spec.variant_titles.get(variant, variant)


def grouped(read: Callable[[Rules], Any]) -> str:
    """``8 for I2VGen-XL and SVD; 16 for Wan 2.1 ...``: each value of a rule and who has it."""
    groups: dict[Any, list[str]] = {}
    for family in registry.REGISTERED:
        values = {variant: read(rules) for variant, rules in family.spec.rules.items()}
        if len(set(values.values())) == 1:
            groups.setdefault(next(iter(values.values())), []).append(family.title)
        else:
            for variant, value in values.items():
                groups.setdefault(value, []).append(_variant(family, variant))
    return "; ".join(f"{value} for {joined(who)}" for value, who in groups.items())


def frame_rules() -> str:
    """Each family's frame rule and trained length: ``Wan 4k+1 (trained on 81; Wan 2.2 TI2V-5B: 121)``."""
    entries = []
    for family in registry.REGISTERED:
        (_, first), *rest = family.spec.rules.items()
        rule = "any count" if first.frame_step == 1 else f"{first.frame_step}k+1"
        if first.max_frames <= 64:
            rule += f" up to {first.max_frames}"
        trained = [f"trained on {first.trained_frames}"]
        trained += [f"{_variant(family, variant)}: {rules.trained_frames}" for variant, rules in rest
                    if rules.trained_frames != first.trained_frames]
        entries.append(f"{family.title} {rule} ({'; '.join(trained)})")
    return "; ".join(entries)


def defaults(read: Callable[[Rules], Any]) -> str:
    """Each family's own value of a default: ``Wan 40 (Wan 2.2 TI2V-5B: 50)``."""
    entries = []
    for family in registry.REGISTERED:
        (_, first), *rest = family.spec.rules.items()
        others = [f"{_variant(family, variant)}: {read(rules):g}" for variant, rules in rest
                  if read(rules) != read(first)]
        entries.append(f"{family.title} {read(first):g}" + (f" ({'; '.join(others)})" if others else ""))
    return "; ".join(entries)


def per_variant(read: Callable[[Family, str], Any], show: Callable[[Any], str] = str) -> str:
    """``Wan: a; LTX-Video 0.9.5+: b; LTX-Video 0.9.1: c``: what ``read`` gives each family, by variant
    where its variants differ."""
    entries = []
    for family in registry.REGISTERED:
        values = {variant: read(family, variant) for variant in family.spec.rules}
        if len(set(values.values())) == 1:
            entries.append(f"{family.title}: {show(next(iter(values.values())))}")
        else:
            entries += [f"{_variant(family, variant)}: {show(value)}" for variant, value in values.items()]
    return "; ".join(entries)
