"""The Python API: a host that loads packs, converts, validates and runs workflows.

Example::

    host = Host(packs=["path/to/pack"], input_dir="in", output_dir="out")
    result = host.run("workflow.json", overrides=["KSampler.seed=5"])
    assert result.ok, result.error
    result.ui["9"]  # {"images": [...]}

One host keeps ComfyUI's output cache between its runs. The ComfyUI module surface
(``folder_paths``, ``comfy.utils``, ``comfy.model_management``) is installed only while a host
method runs.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from host_stub import core_nodes, files, shim, ui_format, workflow
from host_stub import overrides as override_rules
from host_stub import packs as pack_loader
from host_stub.cache import OutputCache
from host_stub.executor import ProgressReporter, Run
from host_stub.object_info import node_info, object_info
from host_stub.packs import PackLoad
from host_stub.registry import NodeRegistry
from host_stub.results import RunResult, history_entry
from host_stub.validation import ValidationResult, validate_prompt
from host_stub.workflow import Submission

log = logging.getLogger(__name__)

Workflow = str | Path | dict[str, Any]
_prompt_numbers = itertools.count()


def _folder(path: str | Path | None, default: str) -> str:
    return str(Path(path if path is not None else default).expanduser().resolve())


class Host:
    """A headless ComfyUI-compatible host: its node registry, folders and output cache."""

    def __init__(
        self,
        packs: Iterable[str | Path] = (),
        input_dir: str | Path | None = None,
        output_dir: str | Path | None = None,
        models_dir: str | Path | None = None,
        temp_dir: str | Path | None = None,
        cache_lru: int | None = None,
        scan_outputs: bool = True,
    ):
        """``scan_outputs``: list every file a run writes by walking the output and temp folders
        before and after it. That walk grows with the folders, so a long-running server turns it
        off and lists the files the output nodes report."""
        output = _folder(output_dir, "output")
        self.scan_outputs = scan_outputs
        self.folders = shim.FolderConfig.create(
            models_dir=_folder(models_dir, "models"),
            input_dir=_folder(input_dir, "input"),
            output_dir=output,
            temp_dir=_folder(temp_dir, str(Path(output, "temp"))),
        )
        self.registry = NodeRegistry()
        self.registry.add_core(core_nodes.NODE_CLASS_MAPPINGS, core_nodes.NODE_DISPLAY_NAME_MAPPINGS)
        self.cache = OutputCache(lru_size=cache_lru)  # ComfyUI's --cache-lru N (0 or None: classic)
        self.pack_loads: list[PackLoad] = []
        self.running = False
        self.load_packs(packs)

    # --- setup ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """The ComfyUI modules, pointed at this host's folders, for the duration of the block."""
        with shim.activated(self.folders):
            yield

    def load_packs(self, paths: Iterable[str | Path]) -> list[PackLoad]:
        """Import the packs at ``paths``; failures are reported in the returned list, not raised."""
        loads = []
        with self.active():
            for path in pack_loader.discover(paths):
                loads.append(pack_loader.load_pack(path, self.registry))
        self.pack_loads += loads
        return loads

    @property
    def failed_packs(self) -> list[PackLoad]:
        return [load for load in self.pack_loads if not load.ok]

    # --- node definitions and formats -------------------------------------------------------

    def object_info(self, node_class: str | None = None) -> dict[str, Any]:
        """``GET /object_info`` (or ``/object_info/<node_class>``) as ComfyUI serves it."""
        with self.active():
            if node_class is None:
                return object_info(self.registry)
            if node_class not in self.registry:
                return {}
            return {node_class: node_info(self.registry, node_class)}

    def submission(self, source: Workflow) -> Submission:
        """The API prompt (and extra data) for a workflow file or dict in either format."""
        with self.active():
            return workflow.load(source, lambda: object_info(self.registry))

    def convert(self, source: Workflow) -> dict[str, Any]:
        """The API prompt for a UI-format (or API-format) workflow."""
        return self.submission(source).prompt

    def apply_overrides(
        self, prompt: dict[str, Any], items: Iterable[str | override_rules.Override]
    ) -> dict[str, Any]:
        """A copy of ``prompt`` with ``NODE.input=VALUE`` overrides applied."""
        prompt = copy.deepcopy(prompt)
        with self.active():
            override_rules.apply(prompt, list(items), self.registry)
        return prompt

    def _prepare(self, source: Workflow, items: Iterable[str | override_rules.Override]) -> Submission:
        sub = self.submission(source)
        items = list(items)
        if items:
            with self.active():
                applied = override_rules.apply(sub.prompt, items, self.registry)
            if sub.ui is not None:
                patched = ui_format.embed_overrides(sub.ui, sub.widget_index, applied)
                sub.extra_data["extra_pnginfo"] = {"workflow": patched}
        return sub

    # --- validating and running -------------------------------------------------------------

    def validate(
        self,
        source: Workflow,
        overrides: Iterable[str | override_rules.Override] = (),
        partial_execution_targets: list[str] | None = None,
    ) -> ValidationResult:
        sub = self._prepare(source, overrides)
        with self.active():
            return validate_prompt(self.registry, sub.prompt, partial_execution_targets)

    def run(
        self,
        source: Workflow,
        overrides: Iterable[str | override_rules.Override] = (),
        prompt_id: str | None = None,
        progress: ProgressReporter | None = None,
        extra_data: dict[str, Any] | None = None,
        partial_execution_targets: list[str] | None = None,
    ) -> RunResult:
        """Validate and run a workflow. Invalid prompts come back with status ``"invalid"``.

        ``partial_execution_targets`` runs only those output nodes (``POST /prompt``'s field). A
        ``progress`` object with a ``message(event, data)`` method also gets the run's status
        messages (``execution_start`` ... ``execution_success``) as they happen.
        """
        sub = self._prepare(source, overrides)
        if extra_data:
            sub.extra_data.update(extra_data)
        prompt_id = prompt_id or str(uuid.uuid4())
        started = time.perf_counter()
        with self.active():
            validation = validate_prompt(self.registry, sub.prompt, partial_execution_targets)
            if not validation.ok:
                return RunResult(
                    prompt_id, "invalid", sub.prompt, validation, seconds=time.perf_counter() - started
                )
            result = self._execute(sub, prompt_id, validation, progress)
        result.seconds = time.perf_counter() - started
        return result

    def _execute(
        self, sub: Submission, prompt_id: str, validation: ValidationResult, progress: ProgressReporter | None
    ) -> RunResult:
        folders = [self.folders.output_directory, self.folders.temp_directory]
        Path(self.folders.output_directory).mkdir(parents=True, exist_ok=True)
        before = files.snapshot(folders) if self.scan_outputs else None
        run = Run(self.registry, self.cache, sub.prompt, prompt_id, sub.extra_data, progress)
        self.running = True
        try:
            outcome = run.execute(validation.outputs)
        finally:
            self.running = False
        written = files.changed(before, files.snapshot(folders)) if before is not None else []
        named = files.reported(
            outcome.outputs, {"output": self.folders.output_directory, "temp": self.folders.temp_directory}
        )
        entry = history_entry(
            next(_prompt_numbers), prompt_id, sub.prompt, sub.extra_data, validation.outputs, outcome
        )
        return RunResult(
            prompt_id,
            outcome.status,
            sub.prompt,
            validation,
            history=entry,
            ui=outcome.outputs,
            node_outputs={n: out for n in sub.prompt if (out := self.cache.get(n)) is not None},
            nodes=list(outcome.records.values()),
            files=sorted(set(written) | set(named)),
            error=outcome.error,
            executed=outcome.executed,
            cached=outcome.cached,
        )

    def interrupt(self) -> None:
        """Ask the running prompt to stop at its next node or progress step (callable from any thread)."""
        mm = sys.modules.get("comfy.model_management") or shim.model_management
        mm.interrupt_current_processing(True)

    def free(self, unload_models: bool | None = None, free_memory: bool = False) -> None:
        """``POST /free``: ``free_memory`` drops the output cache; ``unload_models`` (default: the same)
        asks the model manager to unload everything."""
        if free_memory if unload_models is None else unload_models:
            with self.active():
                shim.module("comfy.model_management").unload_all_models()
        if free_memory:
            self.cache.clear()
