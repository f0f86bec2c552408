"""Sweeps: one workflow over many rows of overrides, on 1..N processes (accelerate), resumable.

``python -m host_stub batch WORKFLOW --sweep SWEEP``; see the "batch" section of
``host_stub/README.md``. The modules: ``sweep`` reads and expands rows, ``prepare`` checks them,
``jobs`` gives identities and records, ``plan`` groups seeds into calls, ``runner`` runs one
process's share, ``report`` and ``progress`` tell what happened, ``dist`` is accelerate.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from host_stub.batch.command import add_arguments as add

    add(parser)


def main(args: argparse.Namespace) -> int:
    from host_stub.batch.command import main as run

    return run(args)
