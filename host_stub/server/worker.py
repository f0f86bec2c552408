"""The one worker thread: it runs queued prompts back to back on one host (a warm model cache).

The worker keeps the host active (the ComfyUI module surface installed) for the server's whole
life, as ComfyUI's modules always are, so that the event loop's threads can validate prompts
and list node definitions while a prompt runs; nothing but this thread calls the host's own
methods. Messages for websocket clients go through the hub, which hands them to the event loop.

The worker cannot die of a prompt or of the store: whatever a prompt raises becomes an
``execution_error`` in its history and the next prompt runs; ComfyUI's interrupt, wherever it
surfaces, becomes ``execution_interrupted``. A history entry the store cannot write (a full disk,
a read-only database) is kept in memory and written as soon as the store can write again; until
then no new prompt starts, and the server goes on answering.
"""

from __future__ import annotations

import copy
import logging
import sys
import threading
import time
import traceback
from typing import Any

from host_stub.api import Host
from host_stub.server.hub import Hub
from host_stub.server.reporter import PromptReporter
from host_stub.server.store import QueueItem, QueueStore, StoreUnwritable

log = logging.getLogger(__name__)

SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")  # kept out of the database
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)  # waits between tries while the store cannot be written


def error_entry(
    item: QueueItem, exception_type: str, message: str, node_id: str | None = None
) -> dict[str, Any]:
    """A history entry for a prompt that failed outside any node (restart, host failure)."""
    now = int(time.time() * 1000)
    error = {
        "prompt_id": item.prompt_id,
        "node_id": node_id,
        "node_type": item.prompt.get(node_id, {}).get("class_type") if node_id else None,
        "executed": [],
        "exception_message": message,
        "exception_type": exception_type,
        "traceback": [],
        "current_inputs": {},
        "current_outputs": [],
        "timestamp": now,
    }
    return {
        "prompt": item.as_list(),
        "outputs": {},
        "status": {
            "status_str": "error",
            "completed": False,
            "messages": [["execution_start", {"prompt_id": item.prompt_id, "timestamp": now}],
                         ["execution_error", error]],
        },
        "meta": {},
    }


def _interrupt_types() -> tuple[type[BaseException], ...]:
    """ComfyUI's interrupt exception, as the host has installed it (a ``BaseException`` in newer
    ComfyUI, which ``except Exception`` would not even see)."""
    mm = sys.modules.get("comfy.model_management")
    found = getattr(mm, "InterruptProcessingException", None)
    return (found,) if isinstance(found, type) and issubclass(found, BaseException) else ()


def _interrupted_entry(item: QueueItem, node_id: str | None) -> dict[str, Any]:
    """A history entry for a prompt that ComfyUI's interrupt stopped outside the executor."""
    entry = error_entry(item, "InterruptProcessingException", "interrupted", node_id)
    data = {key: entry["status"]["messages"][-1][1][key] for key in
            ("prompt_id", "node_id", "node_type", "executed", "timestamp")}
    entry["status"]["messages"][-1] = ["execution_interrupted", data]
    return entry


def _warm_up() -> None:
    """Import torch now, while idle, rather than in the first prompt (every run needs it)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        pass


class Worker(threading.Thread):
    def __init__(self, host: Host, store: QueueStore, hub: Hub):
        super().__init__(name="host_stub-worker", daemon=True)
        self.host = host
        self.store = store
        self.hub = hub
        self.secrets: dict[str, dict[str, Any]] = {}  # prompt id -> sensitive extra_data, memory only
        self.wake = threading.Event()
        self.ready = threading.Event()
        self.stopping = False
        self._lock = threading.Lock()
        self.current: QueueItem | None = None
        self._reporter: PromptReporter | None = None
        self._cancel: set[str] = set()
        self._flags: dict[str, Any] = {}
        # finished prompts whose history entry the store refused: id -> (entry, extra_data)
        self.unwritten: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self._failures = 0  # store failures in a row: how long to wait before the next try

    # --- called from the event loop -------------------------------------------------------------

    def queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.store.remaining()}}

    def queue_updated(self) -> None:
        self.hub.send_sync("status", {"status": self.queue_info()})

    def current_node(self) -> str | None:
        reporter = self._reporter
        return None if reporter is None else reporter.current_node

    def notify(self) -> None:
        self.wake.set()

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Stop the running prompt (only if it is ``prompt_id``, when given). True if one was asked."""
        with self._lock:
            current = self.current
            if current is None or (prompt_id is not None and current.prompt_id != prompt_id):
                return False
            self._cancel.add(current.prompt_id)
        log.info("interrupting prompt %s", current.prompt_id)
        self.host.interrupt()
        return True

    def set_flag(self, name: str, value: Any) -> None:
        with self._lock:
            self._flags[name] = value
        self.wake.set()

    def stop(self) -> None:
        """Stop after the running prompt is interrupted; it stays queued as running (see recover)."""
        self.stopping = True
        with self._lock:
            if self.current is not None:
                self._cancel.add(self.current.prompt_id)
        self.host.interrupt()
        self.wake.set()

    # --- the thread -----------------------------------------------------------------------------

    def run(self) -> None:
        with self.host.active():
            self.ready.set()
            _warm_up()
            while not self.stopping:
                try:
                    self._step()
                    self._failures = 0
                except StoreUnwritable as exc:
                    self._failures += 1
                    log.debug("the queue database cannot be written (%s); waiting", exc)
                    self._pause()
                except (Exception, *_interrupt_types()):  # noqa: BLE001 - the worker outlives anything
                    log.exception("the worker's loop failed; it goes on")
                    self._failures += 1
                    self._pause()
        if self.unwritten:
            log.error("the history of %d prompt(s) could not be written; on the next start they are "
                      "handled as --on-restart says: %s", len(self.unwritten), ", ".join(self.unwritten))

    def _pause(self) -> None:
        self.wake.wait(timeout=RETRY_SECONDS[min(self._failures, len(RETRY_SECONDS)) - 1])
        self.wake.clear()

    def _step(self) -> None:
        """Write what is owed to the history, then run the next prompt (or wait for one)."""
        self._apply_flags()
        for prompt_id, (entry, extra_data) in list(self.unwritten.items()):
            self.store.finish(prompt_id, entry)  # StoreUnwritable: try again after a pause
            del self.unwritten[prompt_id]
            log.info("the history of prompt %s is written at last", prompt_id)
            self._finished(prompt_id, extra_data)
        with self._lock:  # claimed and current together: a delete then always finds it
            item = self.current = self.store.claim()
        if item is None:
            self.wake.wait(timeout=1.0)
            self.wake.clear()
            return
        self.queue_updated()
        self._run(item)

    def _apply_flags(self) -> None:
        with self._lock:
            flags, self._flags = self._flags, {}
        if flags:
            unload, free = flags.get("unload_models"), bool(flags.get("free_memory"))
            self.host.free(unload_models=unload, free_memory=free)

    def _run(self, item: QueueItem) -> None:
        reporter = PromptReporter(self.hub.send_sync, item.prompt_id, item.client_id, item.outputs,
                                  self._ui_of, self._reassert_cancel)
        self._reporter = reporter
        started = time.perf_counter()
        try:
            entry = self._execute(item, reporter)
        except _interrupt_types():
            entry = _interrupted_entry(item, reporter.current_node)
            reporter.send("execution_interrupted", entry["status"]["messages"][-1][1])
        except Exception as exc:  # noqa: BLE001 - a prompt must not stop the worker
            entry = self._failed(item, reporter, exc)
        finally:
            with self._lock:
                self.current = self._reporter = None
                self._cancel.discard(item.prompt_id)
        interrupted = any(event == "execution_interrupted" for event, _ in entry["status"]["messages"])
        if self.stopping and interrupted:
            log.info("prompt %s was cut short by the shutdown; it stays queued", item.prompt_id)
            self.store.uncount(item.prompt_id)
            return
        log.info("Prompt %s: %s in %.2f seconds", item.prompt_id, entry["status"]["status_str"],
                 time.perf_counter() - started)
        self._record(item, entry)

    def _record(self, item: QueueItem, entry: dict[str, Any]) -> None:
        """Write the history entry; one the store refuses waits in memory (see ``_step``)."""
        try:
            self.store.finish(item.prompt_id, entry)
        except StoreUnwritable as exc:
            log.error("the history of prompt %s cannot be written (%s); it is kept until the queue "
                      "database can be written again", item.prompt_id, exc)
            self.unwritten[item.prompt_id] = (entry, item.extra_data)
            raise
        except (TypeError, ValueError, RecursionError) as exc:  # an entry JSON cannot hold
            log.error("the history entry of prompt %s cannot be stored: %s", item.prompt_id, exc)
            bare = QueueItem(item.number, item.prompt_id, {}, {}, item.outputs)  # what surely can be
            entry = error_entry(bare, type(exc).__name__, f"the history entry cannot be stored: {exc}")
            self.store.finish(item.prompt_id, entry)
        self._finished(item.prompt_id, item.extra_data)

    def _finished(self, prompt_id: str, extra_data: dict[str, Any]) -> None:
        """What follows a written history entry: ``status``, then ``executing`` with no node."""
        self.secrets.pop(prompt_id, None)
        self.queue_updated()
        client_id = extra_data.get("client_id")
        if client_id is not None:
            self.hub.send_sync("executing", {"node": None, "prompt_id": prompt_id}, client_id)

    def _failed(self, item: QueueItem, reporter: PromptReporter, exc: Exception) -> dict[str, Any]:
        log.error("prompt %s failed in the host: %s\n%s", item.prompt_id, exc, traceback.format_exc())
        entry = error_entry(item, type(exc).__name__, f"{exc}", reporter.current_node)
        reporter.send("execution_error", entry["status"]["messages"][-1][1])
        return entry

    def _execute(self, item: QueueItem, reporter: PromptReporter) -> dict[str, Any]:
        extra = {**copy.deepcopy(item.extra_data), **self.secrets.get(item.prompt_id, {})}
        result = self.host.run(
            {"prompt": item.prompt, "extra_data": extra},
            prompt_id=item.prompt_id,
            progress=reporter,
            partial_execution_targets=item.outputs,
        )
        if result.history is None:  # no longer valid (a file it names is gone, say)
            error = result.validation.error or {}
            message = f"{error.get('message', 'invalid prompt')}: {error.get('details', '')}".rstrip(": ")
            entry = error_entry(item, "ValidationError", message)
            entry["node_errors"] = result.validation.node_errors
            reporter.send("execution_error", entry["status"]["messages"][-1][1])
            return entry
        history = result.history
        return {
            "prompt": item.as_list(),
            "outputs": history["outputs"],
            "status": history["status"],
            "meta": history["meta"],
        }

    def _ui_of(self, node_id: str) -> dict[str, Any] | None:
        get_ui = getattr(self.host.cache, "get_ui", None)
        return get_ui(node_id) if get_ui is not None else None

    def _reassert_cancel(self) -> None:
        # A run clears the interrupt flag as it starts; a cancel asked for just before must survive it.
        with self._lock:
            cancelled = self.current is not None and self.current.prompt_id in self._cancel
        if cancelled:
            self.host.interrupt()
