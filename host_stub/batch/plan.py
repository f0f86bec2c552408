"""Grouping jobs into calls: runs of consecutive seeds that share everything else become one call.

This works on any workflow whose sampler-like node has a ``seed`` and a ``batch_size`` input,
where clip ``i`` of a call gets ``seed + i`` (the usual convention). The node is found by those
two inputs, or named with ``--seed-input NODE.input``; ``batch_size`` is set on the node itself
or, when it arrives by a link, on the linked node's own ``batch_size`` input (a pass-through such
as a memory guard), or where ``--batch-size-input NODE.input`` says.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

from host_stub.api import Host
from host_stub.batch.jobs import Job, job_identity
from host_stub.errors import OverrideError
from host_stub.overrides import find_node

log = logging.getLogger(__name__)

Unit = list[Job]  # the jobs of one call


@dataclass(frozen=True)
class BatchTarget:
    seed: tuple[str, str]  # (node id, input name)
    size: tuple[str, str]
    max_size: int

    def overrides(self, unit: Unit) -> list[str]:
        """What turns the first job's prompt into the call for the whole unit."""
        first_seed = self.seed_of(unit[0])
        return [f"{self.seed[0]}.{self.seed[1]}={first_seed}", f"{self.size[0]}.{self.size[1]}={len(unit)}"]

    def seed_of(self, job: Job) -> Any:
        return job.prompt[self.seed[0]]["inputs"].get(self.seed[1])

    def eligible(self, job: Job) -> bool:
        seed = self.seed_of(job)
        size = job.prompt[self.size[0]]["inputs"].get(self.size[1])
        return isinstance(seed, int) and not isinstance(seed, bool) and size == 1


def _inputs_of(host: Host, class_type: str) -> dict[str, Any]:
    info = host.object_info(class_type).get(class_type, {}).get("input", {})
    return {**(info.get("required") or {}), **(info.get("optional") or {})}


def _ref(prompt: dict[str, Any], text: str) -> tuple[str, str]:
    node, _dot, name = text.rpartition(".")
    node_id = find_node(prompt, node)
    if name not in prompt[node_id].get("inputs", {}):
        raise OverrideError(f"node #{node_id} has no input {name!r}")
    return node_id, name


def find_target(
    host: Host, base: dict[str, Any], seed_ref: str | None, size_ref: str | None, max_batch: int
) -> BatchTarget | None:
    """Where to put the seed and the clip count of a batched call, or None (one call per row)."""
    if seed_ref:
        seed = _ref(base, seed_ref)
    else:
        found = [
            n
            for n, node in base.items()
            if {"seed", "batch_size"} <= set(_inputs_of(host, node["class_type"]))
        ]
        if len(found) != 1:
            log.info("seed batching off: %d nodes have both seed and batch_size inputs", len(found))
            return None
        seed = (found[0], "seed")
    size = _ref(base, size_ref) if size_ref else _linked_size(base, seed[0])
    if size is None:
        log.info("seed batching off: no batch_size input to set for node #%s", seed[0])
        return None
    spec = _inputs_of(host, base[size[0]]["class_type"]).get(size[1])
    options = (
        spec[1] if isinstance(spec, (list, tuple)) and len(spec) > 1 and isinstance(spec[1], dict) else {}
    )
    limit = min(max_batch, int(options.get("max", max_batch)))
    return BatchTarget(seed, size, max(limit, 1))


def _linked_size(prompt: dict[str, Any], node_id: str) -> tuple[str, str] | None:
    value = prompt[node_id]["inputs"].get("batch_size")
    if not isinstance(value, list):
        return (node_id, "batch_size") if value is not None else None
    source = prompt.get(str(value[0]), {})
    if not isinstance(source.get("inputs", {}).get("batch_size", []), list):
        return str(value[0]), "batch_size"  # a pass-through: its own batch_size input feeds the link
    return None


def plan_units(jobs: list[Job], target: BatchTarget | None) -> list[Unit]:
    """Calls in a fixed order: rows that differ only in seed stay together, by first row, then seed;
    each run of consecutive seeds (up to the target's size) is one call; the rest one call per row."""
    if target is None or target.max_size < 2:
        return [[job] for job in jobs]
    families: dict[str, list[Job]] = {}
    for job in jobs:
        key = _family(job, target) if target.eligible(job) else f"single:{job.job_id}"
        families.setdefault(key, []).append(job)
    units: list[Unit] = []
    for members in families.values():
        members = sorted(members, key=target.seed_of) if len(members) > 1 else members
        units += _runs(members, target)
    return units


def _family(job: Job, target: BatchTarget) -> str:
    prompt = copy.deepcopy(job.prompt)
    prompt[target.seed[0]]["inputs"].pop(target.seed[1], None)
    return job_identity(prompt)


def _runs(members: list[Job], target: BatchTarget) -> list[Unit]:
    runs: list[Unit] = []
    for job in members:
        last = runs[-1] if runs else None
        if (
            last is not None
            and len(last) < target.max_size
            and target.eligible(job)
            and target.seed_of(job) == target.seed_of(last[-1]) + 1
        ):
            last.append(job)
        else:
            runs.append([job])
    return runs
