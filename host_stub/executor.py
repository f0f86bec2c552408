"""Running a validated prompt: ComfyUI's execution loop, with its cache, lazy inputs and errors.

Only the validated output nodes and their ancestors run, each once its inputs are ready; a
node with cached outputs does not run. A node may expand into more nodes
(:mod:`host_stub.expansion`), block its dependents with an ``ExecutionBlocker``, or be async:
its work then runs as a task on the run's event loop while other nodes go on, so independent
async nodes overlap. The first failing node stops the run; what was already computed stays
cached and files already written stay. Execution errors and interrupts are reported in
ComfyUI's ``execution_error`` / ``execution_interrupted`` shapes, and the run's status messages
are kept for the history entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sys
import time
from typing import Any

from host_stub import expansion, memory, shim
from host_stub.cache import OutputCache
from host_stub.dynprompt import DynamicPrompt
from host_stub.graph import ExecutionList
from host_stub.node_async import map_calls, pending_tasks, resolve
from host_stub.node_call import CallContext, gather_inputs, hidden_values, run_sync
from host_stub.registry import NodeRegistry
from host_stub.returns import merge_outputs, read_returns
from host_stub.run_report import (
    NodeRecord,
    Outcome,
    ProgressReporter,
    RunReporting,
    SilentReporter,
    blocked_error,
    optional_call,
)
from host_stub.shim import graph_utils
from host_stub.shim.execution_utils import get_executing_context
from host_stub.v3 import optional_function

__all__ = ["NodeRecord", "Outcome", "ProgressReporter", "Run", "SilentReporter"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _inference_mode() -> Any:
    # ComfyUI runs every node under torch.inference_mode(); packs must behave the same here.
    import torch

    with torch.inference_mode():
        yield


def _set_graph_prefix(node_id: str, call_index: int) -> None:
    """GraphBuilders made during this call get ids under ``<node_id>.<call_index>.``."""
    module = sys.modules.get("comfy_execution.graph_utils")
    builder = getattr(module, "GraphBuilder", None) or graph_utils.GraphBuilder
    builder.set_default_prefix(node_id, call_index, 0)


class Run(RunReporting):
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
        self.dynprompt = DynamicPrompt(prompt)
        self.outcome = Outcome("success")
        self.current_node: str | None = None
        self.finished: list[str] = []
        self.pending_async: dict[str, list[Any]] = {}
        self.async_since: dict[str, float] = {}
        self.pending_expansion: dict[str, Any] = {}
        self.watchers: list[asyncio.Task[Any]] = []

    def execute(self, outputs: list[str]) -> Outcome:
        return run_sync(self.execute_async(outputs))

    async def execute_async(self, outputs: list[str]) -> Outcome:
        self.mm.interrupt_current_processing(False)
        self._message("execution_start", {"prompt_id": self.prompt_id})
        with _inference_mode(), shim.progress_hook(self._progress):
            self.cache.start_run(self.dynprompt, self.registry)
            self.outcome.cached = [n for n in self.prompt if self.cache.get(n) is not None]
            getattr(self.mm, "cleanup_models_gc", lambda: None)()
            self._message("execution_cached", {"nodes": self.outcome.cached, "prompt_id": self.prompt_id})
            self._make_records(outputs)
            try:
                success = await self._loop(outputs)
            finally:
                await self._stop_pending()
            if success:
                self._message("execution_success", {"prompt_id": self.prompt_id})
        for node_id in [*self.prompt, *self.dynprompt.ephemeral_prompt]:
            entry = self.cache.get_ui(node_id)
            if entry is not None:
                self.outcome.outputs[node_id] = entry["output"]
                self.outcome.meta[node_id] = entry["meta"]
        # Summary order: nodes in the order they finished, then those that did not run.
        records = self.outcome.records
        order = self.finished + [n for n in records if n not in self.finished]
        self.outcome.records = {n: records[n] for n in order}
        return self.outcome

    async def _loop(self, outputs: list[str]) -> bool:
        plan = ExecutionList(self.dynprompt, self.registry, lambda n: self.cache.get(n) is not None)
        for node_id in outputs:
            plan.add_node(node_id)
        while not plan.is_empty():
            try:
                await plan.wait_for_ready(self._before_call)
            except (self.mm.InterruptProcessingException, KeyboardInterrupt):
                self._interrupted(next(iter(plan.external)))
                return False
            node_id = plan.next_node()
            if node_id is None:
                self._cycle_error(plan)
                return False
            status = await self._execute(node_id, plan)
            if status in ("failed", "interrupted"):
                return False
            if status != "pending":
                plan.complete(node_id)
        return True

    async def _stop_pending(self) -> None:
        """Cancel async work a failed or interrupted run leaves behind, and wait until it stopped."""
        tasks = [t for results in self.pending_async.values() for t in pending_tasks(results)]
        tasks += [t for t in self.watchers if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- one node -------------------------------------------------------------------------------

    async def _execute(self, node_id: str, plan: ExecutionList) -> str:
        record = self._record(node_id)
        if self.cache.get(node_id) is not None:
            record.status = "cached"
            return "cached"
        node = self.dynprompt.get_node(node_id)
        cls = self.registry.classes[node["class_type"]]
        resuming = node_id in self.pending_async or node_id in self.pending_expansion
        if not resuming:
            self.reporter.node_started(node_id, record.class_type, record.title)
            memory.reset_cuda_peak()
        started = time.perf_counter()
        waited = started - self.async_since.pop(node_id, started)
        data: dict[str, list[Any]] | None = None
        self.current_node = node_id
        try:
            if node_id in self.pending_async:
                status = self._finish_call(node_id, cls, await resolve(self.pending_async.pop(node_id)), plan)
            elif node_id in self.pending_expansion:
                calls = expansion.resolve(self.pending_expansion.pop(node_id), self.cache.get)
                self.cache.set(node_id, merge_outputs(calls, cls))
                status = self._ran(node_id)
            else:
                ctx = CallContext(node_id, self.prompt, self.extra_data, self.dynprompt)
                data, missing = gather_inputs(node["inputs"], cls.INPUT_TYPES(), ctx, self.cache.get)
                status = await self._call(node_id, cls, data, missing, hidden_values(cls, ctx), plan)
        except (self.mm.InterruptProcessingException, KeyboardInterrupt):
            log.info("Processing interrupted")
            status = self._interrupted(node_id)
        except Exception as exc:  # noqa: BLE001 - a node's failure is reported, not raised
            status = self._failed(node_id, exc, data)
        finally:
            self.current_node = None
        record.seconds += time.perf_counter() - started + waited
        if status != "pending":
            record.status = status
            record.peak_rss_bytes = memory.peak_rss_bytes()
            record.peak_cuda_bytes = memory.cuda_peak_bytes()
            self.finished.append(node_id)
            self.reporter.node_finished(node_id, status, record.seconds)
        return status

    async def _call(
        self,
        node_id: str,
        cls: type,
        data: dict[str, list[Any]],
        missing: set[str],
        hidden: dict[str, Any] | None,
        plan: ExecutionList,
    ) -> str:
        obj = self.cache.instance(node_id, self.dynprompt.get_node(node_id)["class_type"], cls)
        if await self._wait_for_lazy_inputs(node_id, obj, data, missing, hidden, plan):
            return "pending"
        results = await map_calls(
            obj,
            data,
            cls.FUNCTION,
            self.prompt_id,
            node_id,
            hidden,
            self._before_call,
            functools.partial(self._blocked, node_id),
            functools.partial(_set_graph_prefix, node_id),
        )
        tasks = pending_tasks(results)
        if not tasks:
            return self._finish_call(node_id, cls, results, plan)
        # Async work still running: the node waits for it (an external block) while others run.
        self.pending_async[node_id] = results
        self.async_since[node_id] = time.perf_counter()
        release = plan.add_external_block(node_id)

        async def watch() -> None:
            await asyncio.gather(*tasks, return_exceptions=True)
            release()

        self.watchers.append(asyncio.create_task(watch()))
        return "pending"

    def _finish_call(self, node_id: str, cls: type, results: list[Any], plan: ExecutionList) -> str:
        returns = read_returns(results, cls)
        if returns.ui:
            self.cache.set_ui(node_id, {"meta": self._meta(node_id), "output": returns.ui})
        if not returns.expands:
            self.cache.set(node_id, merge_outputs([values for _graph, values in returns.calls], cls))
            return self._ran(node_id)
        new_ids, output_ids = expansion.add_graphs(node_id, returns, self.dynprompt, self.registry)
        for child in new_ids:
            child_record = self._record(child)
            display = self.dynprompt.get_display_node_id(child)
            optional_call(self.reporter, "node_expanded", child, child_record.class_type, node_id, display)
        self.cache.expanded(node_id, new_ids)
        expansion.queue(node_id, returns, output_ids, plan)
        self.pending_expansion[node_id] = returns
        return "pending"

    def _ran(self, node_id: str) -> str:
        self.outcome.executed.append(node_id)
        return "ran"

    async def _wait_for_lazy_inputs(
        self,
        node_id: str,
        obj: Any,
        data: dict[str, list[Any]],
        missing: set[str],
        hidden: dict[str, Any] | None,
        plan: ExecutionList,
    ) -> bool:
        """Ask ``check_lazy_status`` which inputs it needs; True if the node must wait for some."""
        function = optional_function(obj, "check_lazy_status")
        if function is None:
            return False
        calls = await map_calls(obj, data, function, self.prompt_id, node_id, hidden, self._before_call)
        answers = await resolve(calls)
        wanted = {name for answer in answers if isinstance(answer, list) for name in answer}
        wanted = {n for n in wanted if isinstance(n, str) and (n not in data or n in missing)}
        waits_before = len(plan.waits_on[node_id])
        for name in sorted(wanted):
            plan.make_input_strong_link(node_id, name)
        # If nothing new can be waited for (e.g. the source is cached but short), run now rather than loop.
        return len(plan.waits_on[node_id]) > waits_before

    def _blocked(self, node_id: str, blocker: Any) -> Any:
        """A call of ``node_id`` got a blocker: skip it; a message is reported once, then blocks silently."""
        record = self._record(node_id)
        record.blocked = True
        if blocker.message is None:
            return blocker
        class_type = record.class_type
        error = blocked_error(self.prompt_id, node_id, class_type, self.outcome.executed, blocker.message)
        record.error = error["exception_message"]
        log.warning("Node %s (%s): %s", node_id, class_type, record.error)
        optional_call(self.reporter, "node_blocked", node_id, error)
        return type(blocker)(None)

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
        if node_id is None:
            context = get_executing_context()
            node_id = context.node_id if context is not None else self.current_node
        if node_id is not None:
            self.reporter.node_progress(str(node_id), value, total)
