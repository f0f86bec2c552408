"""Error types the runtime raises; nodes add the node id and class before they reach the user.
(The sampler's out-of-memory error, a torch error too, is ``runtime.sampling.DeviceOutOfMemory``: this
module needs no torch.)"""

from __future__ import annotations


class I2VError(Exception):
    """Base of every error the pack raises on purpose (bad input, no memory, bad model)."""


class InputError(I2VError, ValueError):
    """An input value is wrong. ``input_name`` names the input, the message says what was expected."""

    def __init__(self, input_name: str, message: str):
        super().__init__(f"input '{input_name}': {message}")
        self.input_name = input_name
        self.detail = message


class ModelError(I2VError):
    """A model cannot be found, is unsafe to load, or failed to load."""


class MemoryGuardError(I2VError, RuntimeError):
    """The run would not fit in device memory under the chosen options (raised before work)."""


class NonFiniteError(I2VError, RuntimeError):
    """NaN or Inf values appeared; the message says where."""
