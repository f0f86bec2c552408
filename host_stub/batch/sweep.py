"""Reading a sweep file (JSONL or CSV) into rows of ``--set`` overrides, expanding grids.

A row is one job: keys in ``--set`` syntax (``NODE.input``) with their values, plus an optional
``id``. In JSONL a value may also be a list, ``{"range": [start, stop(, step)]}`` or
``{"glob": "pattern"}`` (regular files in the input folder, as LoadImage lists them); such a row,
or a row with a ``"grid"`` object holding those keys, expands to the product of its values
(images x prompts x seeds), in key order. CSV rows are plain: a header of keys, one job per
line, an empty cell leaves the input as the workflow has it.
"""

from __future__ import annotations

import csv
import fnmatch
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_stub import safe_paths
from host_stub.errors import WorkflowError


class SweepError(WorkflowError):
    """The sweep cannot be used; ``problems`` lists every bad row."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        listed = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{len(problems)} bad sweep row(s):\n{listed}")


@dataclass(frozen=True)
class SweepRow:
    id: str
    overrides: dict[str, str]  # "NODE.input" -> VALUE as --set reads it
    where: str  # "line 3" (of the sweep file), for messages
    index: int = 0  # position among the expanded rows
    labels: dict[str, Any] = field(default_factory=dict, compare=False)  # values as the file gave them

    def override_list(self) -> list[str]:
        return [f"{key}={value}" for key, value in self.overrides.items()]


def read_sweep(path: str | Path, input_dir: str | Path) -> list[SweepRow]:
    """The expanded rows of the sweep at ``path``; raises SweepError listing every bad row."""
    rows, problems = load_rows(path, input_dir)
    if problems:
        raise SweepError(problems)
    return rows


def load_rows(path: str | Path, input_dir: str | Path) -> tuple[list[SweepRow], list[str]]:
    """The good rows of the sweep at ``path``, expanded, and a line for each bad one."""
    path = Path(path)
    if not path.is_file():
        raise WorkflowError(f"sweep file not found: {path}")
    raw = _read_csv(path) if path.suffix.lower() == ".csv" else _read_jsonl(path)
    rows, problems = [], []
    for where, item in raw:
        if isinstance(item, str):
            problems.append(f"{where}: {item}")
            continue
        try:
            rows += _expand(where, item, Path(input_dir))
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    rows, duplicates = _unique_ids(rows)
    if not rows and not problems:
        problems.append(f"{path}: no rows")
    return [
        SweepRow(r.id, r.overrides, r.where, i, r.labels) for i, r in enumerate(rows)
    ], problems + duplicates


def by_line(problems: list[str]) -> list[str]:
    """Problems in the order of the sweep file's lines (those without a line number first)."""

    def line(text: str) -> int:
        head = text.split(":", 1)[0].split(" ")
        return int(head[1]) if len(head) > 1 and head[0] == "line" and head[1].isdigit() else 0

    return sorted(problems, key=line)


def _read_jsonl(path: Path) -> list[tuple[str, dict[str, Any] | str]]:
    items: list[tuple[str, dict[str, Any] | str]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            items.append((f"line {number}", f"not JSON: {exc.msg}"))
            continue
        items.append((f"line {number}", item if isinstance(item, dict) else "a row must be a JSON object"))
    return items


def _read_csv(path: Path) -> list[tuple[str, dict[str, Any] | str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        items: list[tuple[str, dict[str, Any] | str]] = []
        for row in reader:
            where = f"line {reader.line_num}"
            if None in row:
                items.append((where, "more cells than header columns"))
                continue
            items.append((where, {k.strip(): v for k, v in row.items() if v not in (None, "")}))
    return items


def _expand(where: str, item: dict[str, Any], input_dir: Path) -> list[SweepRow]:
    item = dict(item)
    row_id = item.pop("id", None)
    grid = item.pop("grid", {})
    if not isinstance(grid, dict):
        raise ValueError('"grid" must be an object of NODE.input keys')
    for key in [*item, *grid]:
        node, dot, name = key.rpartition(".")
        if not dot or not node or not name:
            raise ValueError(f"key {key!r} is not NODE.input (or id, grid)")
    axes = {k: _axis(k, v, input_dir) for k, v in {**item, **grid}.items() if _is_axis(v) or k in grid}
    fixed = {k: v for k, v in item.items() if k not in axes}
    combos = list(itertools.product(*axes.values()))
    rows = []
    for n, values in enumerate(combos):
        labels = {**fixed, **dict(zip(axes, values, strict=True))}
        suffix = f"-{n:0{len(str(len(combos) - 1))}d}" if axes else ""
        name = f"{row_id}{suffix}" if row_id is not None else f"{where.replace(' ', '')}{suffix}"
        overrides = {k: _text(k, v) for k, v in labels.items()}
        rows.append(SweepRow(str(name), overrides, where, labels=labels))
    return rows


def _is_axis(value: Any) -> bool:
    return isinstance(value, list) or (isinstance(value, dict) and set(value) in ({"range"}, {"glob"}))


def _axis(key: str, value: Any, input_dir: Path) -> list[Any]:
    if isinstance(value, dict) and set(value) == {"range"}:
        bounds = value["range"]
        if not (
            isinstance(bounds, list) and 2 <= len(bounds) <= 3 and all(isinstance(b, int) for b in bounds)
        ):
            raise ValueError(f'{key}: "range" takes [start, stop] or [start, stop, step] integers')
        values: list[Any] = list(range(*bounds))
    elif isinstance(value, dict) and set(value) == {"glob"}:
        # The files LoadImage lists: regular files that stay in the folder (no symlink out of it).
        names = sorted(safe_paths.listed_files(str(input_dir)))
        values = [n for n in names if fnmatch.fnmatch(n, str(value["glob"]))]
        if not values:
            raise ValueError(f"{key}: no file in {input_dir} matches {value['glob']!r}")
    elif isinstance(value, list):
        values = value
    else:
        values = [value]
    if not values:
        raise ValueError(f"{key}: an empty list expands to no jobs")
    return values


def _text(key: str, value: Any) -> str:
    """A JSON value as ``--set`` reads it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        raise ValueError(f"{key}: null is not a value (leave the key out instead)")
    if isinstance(value, (dict, list)):
        raise ValueError(f"{key}: nested lists or objects are not values (give JSON inputs as a string)")
    return json.dumps(value)


def _unique_ids(rows: list[SweepRow]) -> tuple[list[SweepRow], list[str]]:
    seen: dict[str, str] = {}
    unique, problems = [], []
    for row in rows:
        if row.id in seen:
            problems.append(f"{row.where}: id {row.id!r} is already used at {seen[row.id]}")
        else:
            seen[row.id] = row.where
            unique.append(row)
    return unique, problems
