"""A small ComfyUI-compatible headless host: load node packs by path, validate and run workflows.

See ``host_stub/README.md``. The public API is :class:`Host`; the CLI is ``python -m host_stub``.
"""

from host_stub.api import Host
from host_stub.errors import ConversionError, OverrideError, WorkflowError
from host_stub.executor import NodeRecord
from host_stub.packs import PackLoad
from host_stub.results import RunResult
from host_stub.validation import ValidationResult

__all__ = [
    "ConversionError",
    "Host",
    "NodeRecord",
    "OverrideError",
    "PackLoad",
    "RunResult",
    "ValidationResult",
    "WorkflowError",
]
