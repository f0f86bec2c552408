"""Errors about the input a user gave the host (as opposed to a workflow that fails validation).

Each carries one clear message; the CLI prints it without a traceback unless ``--verbose``.
"""

from __future__ import annotations


class WorkflowError(Exception):
    """The workflow cannot be read: bad JSON, wrong top-level shape, missing file."""


class ConversionError(WorkflowError):
    """A UI-format workflow cannot be turned into an API prompt (e.g. a link to a missing node)."""


class OverrideError(WorkflowError):
    """A ``--set NODE.input=VALUE`` override names no node, several nodes, or a bad value."""
