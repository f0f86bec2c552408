"""Running a validated prompt: ComfyUI's execution loop, with its cache, lazy inputs and errors.

Only the validated output nodes and their ancestors run, each once its inputs are ready; a
node with cached outputs does not run. The first failing node stops the run; what was already
computed stays cached and files already written stay. Execution errors and interrupts are
reported in ComfyUI's ``execution_error`` / ``execution_interrupted`` shapes, and the run's
status messages are kept for the history entry.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Protocol

from host_stub import memory, shim
from host_stub.cache import OutputCache
from host_stub.graph import DependencyCycleError, ExecutionList, linked_sources
from host_stub.node_call import CallContext, call_over_lists, gather_inputs, merge_returns
from host_stub.registry import NodeRegistry
from host_stub.validation import full_type_name

log = logging.getLogger(__name__)

OOM_TIP = (
    "This error means you ran out of memory on your GPU.\n\nTIPS: If the workflow worked before you "
    "might have accidentally set the batch_size to a large number."
)


class ProgressReporter(Protocol):
    def node_started(self, node_id: str, class_type: str, title: str) -> None: ...
    def node_progress(self, node_id: str, value: float, total: float) -> None: ...
    def node_finished(self, node_id: str, status: str, seconds: float) -> None: ...


class SilentReporter:
    def node_started(self, node_id: str, class_type: str, title: str) -> None:
        pass

    def node_progress(self, node_id: str, value: float, total: float) -> None:
        pass

    def node_finished(self, node_id: str, status: str, seconds: float) -> None:
        pass


@dataclass
class NodeRecord:
    """One node's part in a run, for the summary."""

    node_id: str
    class_type: str
    title: str
    status: str = "skipped"  # "ran", "cached", "failed", "interrupted" or "skipped"
    seconds: float = 0.0
    peak_rss_bytes: int | None = None  # the process's RSS high-water mark when the node ended
    peak_cuda_bytes: int | None = None  # torch's CUDA peak during the node, when CUDA is in use


@dataclass
class Outcome:
    status: str  # "success", "error" or "interrupted"
    messages: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None
    records: dict[str, NodeRecord] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


class PromptView:
    """What a DYNPROMPT hidden input receives: read access to the running prompt."""

    def __init__(self, prompt: dict[str, Any]):
        self.original_prompt = prompt

    def get_node(self, node_id: str) -> dict[str, Any]:
        return self.original_prompt[node_id]

    def has_node(self, node_id: str) -> bool:
        return node_id in self.original_prompt

    def get_original_prompt(self) -> dict[str, Any]:
        return self.original_prompt

    def all_node_ids(self) -> set[str]:
        return set(self.original_prompt)

    def get_real_node_id(self, node_id: str) -> str:
        return node_id

    def get_display_node_id(self, node_id: str) -> str:
        return node_id

    def get_parent_node_id(self, node_id: str) -> None:
        return None


def format_value(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, bool, str)):
        return value
    return str(value)


def _stamp(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "timestamp": int(time.time() * 1000)}


@contextlib.contextmanager
def _inference_mode() -> Any:
    # ComfyUI runs every node under torch.inference_mode(); packs must behave the same here.
    import torch

    with torch.inference_mode():
        yield


class Run:
    """One execution of a prompt on a host's registry and cache."""

    def __init__(
        self,
        registry: NodeRegistry,
        cache: OutputCache,
        prompt: dict[str, Any],
        prompt_id: str,
        extra_data: dict[str, Any],
        reporter: ProgressReporter | None = None,
    ):
        self.registry = registry
        self.cache = cache
        self.prompt = prompt
        self.prompt_id = prompt_id
        self.extra_data = extra_data
        self.reporter = reporter or SilentReporter()
        self.mm = shim.module("comfy.model_management")
        self.view = PromptView(prompt)
        self.outcome = Outcome("success")
        self.current_node: str | None = None
        self.finished: list[str] = []

    def execute(self, outputs: list[str]) -> Outcome:
        self.mm.interrupt_current_processing(False)
        self._message("execution_start", {"prompt_id": self.prompt_id})
        with _inference_mode(), shim.progress_hook(self._progress):
            self.cache.start_run(self.prompt, self.registry)
            self.outcome.cached = [n for n in self.prompt if self.cache.get(n) is not None]
            getattr(self.mm, "cleanup_models_gc", lambda: None)()
            self._message("execution_cached", {"nodes": self.outcome.cached, "prompt_id": self.prompt_id})
            self._make_records(outputs)
            if self._loop(outputs):
                self._message("execution_success", {"prompt_id": self.prompt_id})
        for node_id in self.prompt:
            entry = self.cache.get_ui(node_id)
            if entry is not None:
                self.outcome.outputs[node_id] = entry["output"]
                self.outcome.meta[node_id] = entry["meta"]
        # Summary order: nodes in the order they finished, then those that did not run.
        records = self.outcome.records
        order = self.finished + [n for n in records if n not in self.finished]
        self.outcome.records = {n: records[n] for n in order}
        return self.outcome

    def _loop(self, outputs: list[str]) -> bool:
        plan = ExecutionList(self.prompt, self.registry, lambda n: self.cache.get(n) is not None)
        for node_id in outputs:
            plan.add_node(node_id)
        while not plan.is_empty():
            node_id = plan.next_node()
            if node_id is None:
                self._cycle_error(plan)
                return False
            status = self._execute(node_id, plan)
            if status in ("failed", "interrupted"):
                return False
            if status != "pending":
                plan.complete(node_id)
        return True

    # --- one node -------------------------------------------------------------------------------

    def _execute(self, node_id: str, plan: ExecutionList) -> str:
        record = self.outcome.records[node_id]
        if self.cache.get(node_id) is not None:
            record.status = "cached"
            return "cached"
        node = self.prompt[node_id]
        cls = self.registry.classes[node["class_type"]]
        self.current_node = node_id
        self.reporter.node_started(node_id, record.class_type, record.title)
        memory.reset_cuda_peak()
        started = time.perf_counter()
        data: dict[str, list[Any]] | None = None
        try:
            ctx = CallContext(node_id, self.prompt, self.extra_data, self.view)
            data, missing = gather_inputs(node["inputs"], cls.INPUT_TYPES(), ctx, self.cache.get)
            obj = self.cache.instance(node_id, node["class_type"], cls)
            if self._wait_for_lazy_inputs(node_id, obj, data, missing, plan):
                status = "pending"
            else:
                results = call_over_lists(obj, data, cls.FUNCTION, self._before_call)
                outputs, ui = merge_returns(results, cls)
                if ui:
                    meta = {
                        "node_id": node_id,
                        "display_node": node_id,
                        "parent_node": None,
                        "real_node_id": node_id,
                    }
                    self.cache.set_ui(node_id, {"meta": meta, "output": ui})
                self.cache.set(node_id, outputs)
                self.outcome.executed.append(node_id)
                status = "ran"
        except (self.mm.InterruptProcessingException, KeyboardInterrupt):
            log.info("Processing interrupted")
            status = self._interrupted(node_id)
        except Exception as exc:  # noqa: BLE001 - a node's failure is reported, not raised
            status = self._failed(node_id, exc, data)
        finally:
            self.current_node = None
        seconds = time.perf_counter() - started
        record.seconds += seconds
        if status != "pending":
            record.status = status
            record.peak_rss_bytes = memory.peak_rss_bytes()
            record.peak_cuda_bytes = memory.cuda_peak_bytes()
            self.finished.append(node_id)
            self.reporter.node_finished(node_id, status, record.seconds)
        return status

    def _wait_for_lazy_inputs(
        self, node_id: str, obj: Any, data: dict[str, list[Any]], missing: set[str], plan: ExecutionList
    ) -> bool:
        """Ask ``check_lazy_status`` which inputs it needs; True if the node must wait for some."""
        if getattr(obj, "check_lazy_status", None) is None:
            return False
        answers = call_over_lists(obj, data, "check_lazy_status", self._before_call)
        wanted = {name for answer in answers if isinstance(answer, list) for name in answer}
        wanted = {n for n in wanted if isinstance(n, str) and (n not in data or n in missing)}
        waits_before = len(plan.waits_on[node_id])
        for name in sorted(wanted):
            plan.make_input_strong_link(node_id, name)
        # If nothing new can be waited for (e.g. the source is cached but short), run now rather than loop.
        return len(plan.waits_on[node_id]) > waits_before

    def _before_call(self) -> None:
        self.mm.throw_exception_if_processing_interrupted()

    def _progress(
        self,
        value: float,
        total: float,
        preview: Any = None,
        prompt_id: str | None = None,
        node_id: str | None = None,
    ) -> None:
        # As ComfyUI's server hook does: every progress step is a place where a cancel lands.
        self.mm.throw_exception_if_processing_interrupted()
        target = node_id or self.current_node
        if target is not None:
            self.reporter.node_progress(str(target), value, total)

    # --- reporting ------------------------------------------------------------------------------

    def _message(self, event: str, data: dict[str, Any]) -> None:
        self.outcome.messages.append((event, _stamp(data)))

    def _make_records(self, outputs: list[str]) -> None:
        needed, stack = set(outputs), list(outputs)
        while stack:
            for _name, source in linked_sources(self.prompt[stack.pop()]):
                if source not in needed:
                    needed.add(source)
                    stack.append(source)
        for node_id in self.prompt:
            if node_id in needed:
                node = self.prompt[node_id]
                title = (node.get("_meta") or {}).get("title") or self.registry.display_name(
                    node["class_type"]
                )
                record = NodeRecord(node_id, node["class_type"], title)
                if node_id in self.outcome.cached:
                    record.status = "cached"
                self.outcome.records[node_id] = record

    def _interrupted(self, node_id: str) -> str:
        self.outcome.status = "interrupted"
        self.outcome.error = {
            "prompt_id": self.prompt_id,
            "node_id": node_id,
            "node_type": self.prompt[node_id]["class_type"],
            "executed": list(self.outcome.executed),
        }
        self._message("execution_interrupted", self.outcome.error)
        return "interrupted"

    def _failed(self, node_id: str, exc: Exception, data: dict[str, list[Any]] | None) -> str:
        # Kept at debug level: the error travels in the result, and the CLI prints it once.
        log.debug("Exception during processing of node %s: %s\n%s", node_id, exc, traceback.format_exc())
        tips = ""
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
            tips = OOM_TIP
            log.error("Got an OOM, unloading all loaded models.")
            self.mm.unload_all_models()
        inputs = {name: [format_value(v) for v in values] for name, values in (data or {}).items()}
        self._error(
            node_id, f"{exc}\n{tips}", full_type_name(exc), traceback.format_tb(exc.__traceback__), inputs
        )
        return "failed"

    def _cycle_error(self, plan: ExecutionList) -> None:
        blamed = plan.nodes_in_cycle()[0]
        self._error(
            blamed,
            str(DependencyCycleError("Dependency cycle detected")),
            DependencyCycleError.type_name,
            [],
            [],
        )
        self.outcome.records[blamed].status = "failed"

    def _error(self, node_id: str, message: str, exc_type: str, tb: list[str], inputs: Any) -> None:
        self.outcome.status = "error"
        self.outcome.error = {
            "prompt_id": self.prompt_id,
            "node_id": node_id,
            "node_type": self.prompt[node_id]["class_type"],
            "executed": list(self.outcome.executed),
            "exception_message": message,
            "exception_type": exc_type,
            "traceback": tb,
            "current_inputs": inputs,
            "current_outputs": list(self.prompt),
        }
        self._message("execution_error", self.outcome.error)
