"""Validation: ComfyUI's error types and shapes, and value coercion."""

from __future__ import annotations

import pytest


def only_error(result, node_id):
    (error,) = result.node_errors[node_id]["errors"]
    return error


def test_a_valid_prompt(host, chain):
    result = host.validate(chain)
    assert result.ok and result.error is None
    assert result.outputs == ["3"] and result.node_errors == {}
    assert result.response() == {"node_errors": {}}


def test_required_input_missing(host, node):
    result = host.validate({"1": node("IntConst"), "2": node("Show", value=["1", 0])})
    assert not result.ok
    assert result.error == {
        "type": "prompt_outputs_failed_validation",
        "message": "Prompt outputs failed validation",
        "details": "",
        "extra_info": {},
    }
    assert result.node_errors == {
        "1": {
            "errors": [
                {
                    "type": "required_input_missing",
                    "message": "Required input is missing",
                    "details": "value",
                    "extra_info": {"input_name": "value"},
                }
            ],
            "dependent_outputs": ["2"],
            "class_type": "IntConst",
        }
    }
    assert result.response() == {"error": result.error, "node_errors": result.node_errors}


def test_bad_linked_input(host, node):
    result = host.validate({"1": node("IntConst", value=1), "2": node("Show", value=["1", 0, 9])})
    error = only_error(result, "2")
    assert error["type"] == "bad_linked_input"
    assert error["extra_info"] == {
        "input_name": "value",
        "input_config": ["INT", {"forceInput": True}],
        "received_value": ["1", 0, 9],
    }
    assert "Bad linked input" in result.error["details"]


def test_return_type_mismatch(host, node):
    result = host.validate(
        {
            "1": node("IntConst", value=1),
            "2": node("ToFloat", value=["1", 0]),
            "3": node("Show", value=["2", 0]),
        }
    )
    error = only_error(result, "3")
    assert error["type"] == "return_type_mismatch"
    assert error["details"] == "value, received_type(FLOAT) mismatch input_type(INT)"
    assert error["extra_info"]["received_type"] == "FLOAT" and error["extra_info"]["linked_node"] == ["2", 0]


@pytest.mark.parametrize(
    ("value", "kind", "message"),
    [
        (-101, "value_smaller_than_min", "Value -101 smaller than min of -100"),
        (101, "value_bigger_than_max", "Value 101 bigger than max of 100"),
        ("many", "invalid_input_type", "Failed to convert an input value to a INT value"),
    ],
)
def test_constant_values(host, node, value, kind, message):
    result = host.validate({"1": node("IntConst", value=value), "2": node("Show", value=["1", 0])})
    error = only_error(result, "1")
    assert (error["type"], error["message"], error["extra_info"]["input_name"]) == (kind, message, "value")
    assert error["extra_info"]["received_value"] == value
    assert result.node_errors["1"]["dependent_outputs"] == ["2"]


def test_value_not_in_list(host, node):
    result = host.validate(
        {
            "1": node("ModelSource", name="m"),
            "2": node(
                "Sampler",
                model=["1", 0],
                seed=1,
                steps=1,
                cfg=1.0,
                sampler="heun",
                variation=1,
                frames=["1", 1],
                prompt="p",
            ),
        }
    )
    error = only_error(result, "2")
    assert error["type"] == "value_not_in_list"
    assert error["details"] == "sampler: 'heun' not in ['euler', 'ddim', 'dpm']"
    assert error["extra_info"]["input_config"] == [["euler", "ddim", "dpm"], {"control_after_generate": True}]


def test_custom_validation_failed_and_it_replaces_the_range_check(host, node):
    def prompt(value):
        return {"1": node("Checked", value=value), "2": node("Show", value=["1", 0])}

    error = only_error(host.validate(prompt(13)), "1")
    assert error == {
        "type": "custom_validation_failed",
        "message": "Custom validation failed for node",
        "details": "value - 13 is unlucky",
        "extra_info": {"input_name": "value"},
    }
    # `value` is listed in VALIDATE_INPUTS, so its min/max (0..10) is not checked by the host.
    assert host.validate(prompt(50)).ok


def test_exception_during_validation(host, node, monkeypatch):
    checked = host.registry.classes["Checked"]
    monkeypatch.setattr(checked, "VALIDATE_INPUTS", classmethod(lambda cls, value: 1 / 0))
    error = only_error(host.validate({"1": node("Checked", value=1), "2": node("Show", value=["1", 0])}), "1")
    assert error["type"] == "exception_during_inner_validation"
    assert error["extra_info"]["exception_type"] == "ZeroDivisionError"
    assert error["extra_info"]["linked_node"] == ["1", 0] and error["extra_info"]["input_name"] == "value"
    show = host.registry.classes["Show"]
    monkeypatch.setattr(show, "VALIDATE_INPUTS", classmethod(lambda cls, value: 1 / 0), raising=False)
    error = only_error(
        host.validate({"1": node("IntConst", value=1), "2": node("Show", value=["1", 0])}), "2"
    )
    assert error["type"] == "exception_during_validation" and error["details"] == "division by zero"


def test_unknown_class_and_missing_class_type_are_invalid_prompts(host, node):
    result = host.validate({"1": node("Nope"), "2": node("Show", value=["1", 0])})
    assert result.error == {
        "type": "invalid_prompt",
        "message": "Cannot execute because node Nope does not exist.",
        "details": "Node ID '#1'",
        "extra_info": {},
    }
    assert result.node_errors == {}
    result = host.validate({"1": {"inputs": {}}})
    assert result.error["type"] == "invalid_prompt" and "class_type" in result.error["message"]


def test_a_dangling_link_is_an_invalid_prompt(host, node):
    result = host.validate({"2": node("Show", value=["9", 0])})
    assert result.error["type"] == "invalid_prompt"
    assert (
        result.error["message"] == "Cannot execute because node #2 input 'value' is linked to node '9', "
        "which does not exist."
    )


def test_prompt_without_outputs(host, node):
    result = host.validate({"1": node("IntConst", value=1)})
    assert result.error == {
        "type": "prompt_no_outputs",
        "message": "Prompt has no outputs",
        "details": "",
        "extra_info": {},
    }


def test_a_dependency_cycle(host, node):
    result = host.validate(
        {
            "1": node("Add", a=["2", 0], b=1),
            "2": node("Add", a=["1", 0], b=1),
            "3": node("Show", value=["1", 0]),
        }
    )
    assert not result.ok
    (error,) = [e for entry in result.node_errors.values() for e in entry["errors"]]
    assert error["type"] == "exception_during_inner_validation"
    assert error["extra_info"]["exception_type"] == "graph.DependencyCycleError"
    assert "Dependency cycle" in error["details"]


def test_values_are_coerced_like_comfyui(host, node):
    prompt = {
        "1": node("IntConst", value="7"),
        "2": node("Add", a=["1", 0], b=2.9),
        "3": node("Show", value=["2", 0]),
        "4": node("Hidden", text=12),
        "5": node("Switch", use_a=0, a=["1", 0], b=["2", 0]),
        "6": node("Show", value=["5", 0]),
    }
    result = host.run(prompt)
    assert result.ok
    inputs = {n: result.prompt[n]["inputs"] for n in result.prompt}
    assert (inputs["1"]["value"], inputs["2"]["b"], inputs["4"]["text"], inputs["5"]["use_a"]) == (
        7,
        2,
        "12",
        False,
    )
    assert result.ui["3"] == {"values": [9]} and result.ui["6"] == {"values": [9]}


def test_one_bad_output_does_not_stop_the_good_one(host, node):
    prompt = {
        "1": node("IntConst", value=1),
        "2": node("Show", value=["1", 0]),
        "3": node("IntConst", value=500),
        "4": node("Show", value=["3", 0]),
    }
    result = host.validate(prompt)
    assert result.ok and result.outputs == ["2"]
    assert result.node_errors["3"]["dependent_outputs"] == ["4"]
    run = host.run(prompt)
    assert run.ok and run.executed == ["1", "2"]


def test_custom_any_types_match_through_ne(host):
    from host_stub.validation import types_match

    class AnyType(str):
        def __ne__(self, other):
            return False

    assert types_match("IMAGE", AnyType("*"))
    assert types_match("IMAGE,MASK", "MASK") and not types_match("IMAGE", "MASK")
    assert not types_match("INT", ["a", "b"])


def float_prompt(node, delay):
    """Steps' ``delay`` is a FLOAT with no min or max: nothing but the conversion can refuse a NaN."""
    return {
        "1": node("IntConst", value=1),
        "2": node("Steps", value=["1", 0], steps=1, delay=delay, interrupt_at=-1),
        "3": node("Show", value=["2", 0]),
    }


NOT_FINITE = [float("nan"), float("inf"), float("-inf"), "nan", "NaN", "inf", "-Infinity"]


@pytest.mark.parametrize("value", NOT_FINITE)
def test_float_widgets_refuse_nan_and_infinities_as_int_ones_do(host, node, value):
    result = host.validate(float_prompt(node, value))
    assert not result.ok
    error = only_error(result, "2")
    number = float(value)
    assert error["type"] == "invalid_input_type"
    assert error["message"] == "Failed to convert an input value to a FLOAT value"
    why = f"cannot use {number} as a FLOAT value: it must be a finite number"
    assert error["details"] == f"delay, {value}, {why}"
    assert error["extra_info"]["input_name"] == "delay" and error["extra_info"]["input_config"][0] == "FLOAT"
    assert error["extra_info"]["exception_message"].endswith("it must be a finite number")
    assert result.node_errors["2"]["dependent_outputs"] == ["3"]
    int_result = host.validate({"1": node("IntConst", value=value), "2": node("Show", value=["1", 0])})
    assert only_error(int_result, "1")["type"] == "invalid_input_type"  # the INT rule it follows


def test_a_nan_float_with_a_range_is_refused_too(make_host, node):
    host = make_host("features")
    prompt = {
        "0": node("ModelSource", name="m"),
        "1": node("Sampler", model=["0", 0], seed=1, steps=2, cfg=float("nan"), sampler="euler", variation=1),
    }
    prompt["1"]["inputs"].update(frames=["0", 1], prompt="p")
    error = only_error(host.validate(prompt), "1")
    assert error["type"] == "invalid_input_type" and error["extra_info"]["input_name"] == "cfg"


@pytest.mark.parametrize("value", [0, 0.5, "2.5", 1e300, -1e-300, 7])
def test_finite_floats_still_pass(host, node, value):
    result = host.validate(float_prompt(node, value))
    assert result.ok, result.node_errors


def test_finite_floats_are_still_coerced(host, node):
    for value in (0, "0.01"):
        result = host.run(float_prompt(node, value))
        assert result.ok, result.error
        delay = result.prompt["2"]["inputs"]["delay"]
        assert delay == float(value) and isinstance(delay, float)


@pytest.mark.parametrize("value", NOT_FINITE)
def test_the_error_body_for_a_non_finite_float_is_strict_json(host, node, value):
    import json

    result = host.validate(float_prompt(node, value))
    body = json.loads(json.dumps(result.response(), allow_nan=False))  # raises on a bare NaN
    assert body["node_errors"]["2"]["errors"][0]["extra_info"]["received_value"] == str(value)


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "NaN"])
def test_set_overrides_with_nan_or_infinity_are_refused_at_validation(host, node, raw):
    result = host.validate(float_prompt(node, 0.0), overrides=[f"2.delay={raw}"])
    error = only_error(result, "2")
    assert error["type"] == "invalid_input_type" and error["extra_info"]["input_name"] == "delay"
    assert host.validate(float_prompt(node, 0.0), overrides=["2.delay=0.25"]).ok


def test_a_nan_float_never_reaches_the_node(host, node):
    result = host.run(float_prompt(node, float("nan")))
    assert result.status == "invalid" and result.executed == []
