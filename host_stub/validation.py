"""Prompt validation with ComfyUI's error shapes, type names and value coercion.

Only output nodes and their ancestors are validated. Constant values are coerced in place
(``int()``, ``float()``, ``str()``, ``bool()``), so the prompt that runs holds the coerced values,
as in ComfyUI. Where ComfyUI fails by accident (a link to a missing node raises a KeyError, a
cycle recurses without end), the stub reports the same situation deliberately: a dangling link
that leaves no output to run is an ``invalid_prompt`` error (outputs it does not reach still run,
as in ComfyUI, with the KeyError in ``node_errors``) and a cycle an
``exception_during_inner_validation`` of type ``graph.DependencyCycleError``.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from typing import Any

from host_stub.graph import DependencyCycleError, is_output_node, linked_sources
from host_stub.node_call import CallContext, call_over_lists, gather_inputs, hidden_values, input_info
from host_stub.registry import NodeRegistry
from host_stub.v3 import optional_function
from host_stub.validation_rules import Reasons, check_value, full_type_name, types_match  # noqa: F401
from host_stub.validation_rules import exception_reason as _exception_reason
from host_stub.validation_rules import reason as _reason

log = logging.getLogger(__name__)


@dataclass
class ValidationResult:
    ok: bool
    error: dict[str, Any] | None = None
    outputs: list[str] = field(default_factory=list)
    node_errors: dict[str, Any] = field(default_factory=dict)

    def response(self) -> dict[str, Any]:
        """The body ComfyUI answers ``POST /prompt`` with (status 400 when not ok)."""
        if self.ok:
            return {"node_errors": self.node_errors}
        return {"error": self.error, "node_errors": self.node_errors}


def _prompt_error(kind: str, message: str, details: str = "") -> ValidationResult:
    return ValidationResult(False, {"type": kind, "message": message, "details": details, "extra_info": {}})


def validate_prompt(
    registry: NodeRegistry, prompt: dict[str, Any], partial: list[str] | None = None
) -> ValidationResult:
    outputs = []
    for node_id, node in prompt.items():
        if "class_type" not in node:
            return _prompt_error(
                "invalid_prompt",
                "Cannot execute because a node is missing the class_type property.",
                f"Node ID '#{node_id}'",
            )
        cls = registry.get(node["class_type"])
        if cls is None:
            return _prompt_error(
                "invalid_prompt",
                f"Cannot execute because node {node['class_type']} does not exist.",
                f"Node ID '#{node_id}'",
            )
        if is_output_node(cls) and (partial is None or node_id in partial):
            outputs.append(node_id)
    if not outputs:
        return _prompt_error("prompt_no_outputs", "Prompt has no outputs")
    result = _Validator(registry, prompt).run(outputs)
    dangling = _dangling_link(prompt, outputs)
    # As in ComfyUI, the outputs a missing node does not reach still run (its KeyError is in
    # node_errors); when none can, the prompt is refused naming the link.
    return dangling if dangling is not None and not result.ok else result


def _dangling_link(prompt: dict[str, Any], outputs: list[str]) -> ValidationResult | None:
    seen, stack = set(outputs), list(outputs)
    while stack:
        node_id = stack.pop()
        for name, source in linked_sources(prompt[node_id]):
            if source not in prompt:
                return _prompt_error(
                    "invalid_prompt",
                    f"Cannot execute because node #{node_id} input '{name}' is "
                    f"linked to node {source!r}, which does not exist.",
                    f"Node ID '#{node_id}'",
                )
            if source not in seen:
                seen.add(source)
                stack.append(source)
    return None


class _Validator:
    def __init__(self, registry: NodeRegistry, prompt: dict[str, Any]):
        self.registry = registry
        self.prompt = prompt
        self.validated: dict[str, tuple[bool, Reasons]] = {}
        self.in_progress: set[str] = set()

    def run(self, outputs: list[str]) -> ValidationResult:
        good, failed = [], []
        node_errors: dict[str, Any] = {}
        for output in outputs:
            try:
                valid, reasons = self.node(output)
            except Exception as exc:  # noqa: BLE001 - reported as ComfyUI reports it
                valid, reasons = (
                    False,
                    [_exception_reason("exception_during_validation", "Exception when validating node", exc)],
                )
                self.validated[output] = (False, reasons)
            if valid:
                good.append(output)
                continue
            failed.append((output, reasons))
            # As in ComfyUI, every node with errors so far lists this output as dependent.
            for node_id, (node_valid, node_reasons) in self.validated.items():
                if not node_valid and node_reasons:
                    entry = node_errors.setdefault(
                        node_id,
                        {
                            "errors": node_reasons,
                            "dependent_outputs": [],
                            "class_type": self.prompt[node_id]["class_type"],
                        },
                    )
                    entry["dependent_outputs"].append(output)
        if not good:
            details = "\n".join(f"{r['message']}: {r['details']}" for _, reasons in failed for r in reasons)
            error = {
                "type": "prompt_outputs_failed_validation",
                "message": "Prompt outputs failed validation",
                "details": details,
                "extra_info": {},
            }
            return ValidationResult(False, error, [], node_errors)
        return ValidationResult(True, None, good, node_errors)

    def node(self, node_id: str) -> tuple[bool, Reasons]:
        if node_id in self.validated:
            return self.validated[node_id]
        if node_id in self.in_progress:
            raise DependencyCycleError(f"Dependency cycle detected at node #{node_id}")
        self.in_progress.add(node_id)
        try:
            valid, reasons = self._check(node_id)
        finally:
            self.in_progress.discard(node_id)
        # A cycle found below this node was recorded against it while it was in progress.
        earlier = self.validated.get(node_id, (True, []))[1]
        result = (valid and not earlier and not reasons, earlier + reasons)
        self.validated[node_id] = result
        return result

    def _check(self, node_id: str) -> tuple[bool, Reasons]:
        node = self.prompt[node_id]
        inputs = node["inputs"]
        cls = self.registry.classes[node["class_type"]]
        input_types = cls.INPUT_TYPES()
        names = list(input_types.get("required") or {})
        names += [n for n in input_types.get("optional") or {} if n not in names]
        validate_name = optional_function(cls, "VALIDATE_INPUTS")  # V3: validate_inputs
        validate_fn = getattr(cls, validate_name) if validate_name is not None else None
        fn_args: list[str] = []
        fn_kwargs = False
        if validate_fn is not None:
            spec = inspect.getfullargspec(validate_fn)
            fn_args, fn_kwargs = spec.args, spec.varkw is not None
        errors: Reasons = []
        valid = True
        received: dict[str, Any] = {}
        for name in names:
            kind, category, options = input_info(input_types, name)
            if name not in inputs:
                if category == "required":
                    errors.append(
                        _reason(
                            "required_input_missing", "Required input is missing", name, {"input_name": name}
                        )
                    )
                continue
            config = [kind, options]
            if isinstance(inputs[name], list):
                ok = self._check_link(node_id, name, config, "input_types" in fn_args, received, errors)
                valid = valid and ok
            else:
                skip_ranges = name in fn_args or fn_kwargs
                check_value(inputs, name, config, skip_ranges, errors)
        if validate_fn is not None and (fn_args or fn_kwargs):
            errors += self._custom_validation(
                node_id, cls, input_types, validate_name, fn_args, fn_kwargs, received
            )
        return valid, errors

    def _check_link(
        self,
        node_id: str,
        name: str,
        config: list[Any],
        custom_types: bool,
        received: dict[str, Any],
        errors: Reasons,
    ) -> bool:
        value = self.prompt[node_id]["inputs"][name]
        if len(value) != 2:
            errors.append(
                _reason(
                    "bad_linked_input",
                    "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    name,
                    {"input_name": name, "input_config": config, "received_value": value},
                )
            )
            return True
        source_id, slot = value
        source_cls = self.registry.classes[self.prompt[source_id]["class_type"]]
        received_type = source_cls.RETURN_TYPES[slot]
        received[name] = received_type
        if not custom_types and not types_match(received_type, config[0]):
            errors.append(
                _reason(
                    "return_type_mismatch",
                    "Return type mismatch between linked nodes",
                    f"{name}, received_type({received_type}) mismatch input_type({config[0]})",
                    {
                        "input_name": name,
                        "input_config": config,
                        "received_type": received_type,
                        "linked_node": value,
                    },
                )
            )
            return True
        try:
            return self.node(source_id)[0]
        except Exception as exc:  # noqa: BLE001 - reported against the linked node, as ComfyUI does
            reason = _exception_reason(
                "exception_during_inner_validation", "Exception when validating inner node", exc
            )
            reason["extra_info"] = {
                "input_name": name,
                "input_config": config,
                **reason["extra_info"],
                "exception_message": str(exc),
                "linked_node": value,
            }
            previous = self.validated.get(source_id, (False, []))[1]
            self.validated[source_id] = (False, previous + [reason])
            return False

    def _custom_validation(
        self,
        node_id: str,
        cls: type,
        input_types: dict[str, Any],
        name: str,
        fn_args: list[str],
        fn_kwargs: bool,
        received: dict[str, Any],
    ) -> Reasons:
        ctx = CallContext(node_id)
        data, _missing = gather_inputs(self.prompt[node_id]["inputs"], input_types, ctx, None)
        selected = {k: v for k, v in data.items() if fn_kwargs or k in fn_args}
        if "input_types" in fn_args:
            selected["input_types"] = [received]
        results = call_over_lists(cls, selected, name, hidden=hidden_values(cls, ctx))
        errors = []
        # ComfyUI reports one error per validated input for each failing call.
        for name in selected:
            for result in results:
                if result is not True:
                    details = name if result is False else f"{name} - {result}"
                    errors.append(
                        _reason(
                            "custom_validation_failed",
                            "Custom validation failed for node",
                            details,
                            {"input_name": name},
                        )
                    )
        return errors
