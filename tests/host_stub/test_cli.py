"""The command line: commands, messages and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_stub.cli import main

PACKS = Path(__file__).parent / "packs"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(tmp_path):
    """Run the CLI in-process with the test packs and temporary folders; returns the exit code."""
    (tmp_path / "input").mkdir(exist_ok=True)

    def run(*args: str) -> int:
        command, rest = args[0], list(args[1:])
        folders = [
            "--packs",
            str(PACKS / "arith"),
            "--packs",
            str(PACKS / "features"),
            "--input-dir",
            str(tmp_path / "input"),
            "--output-dir",
            str(tmp_path / "output"),
            "--models-dir",
            str(tmp_path / "models"),
        ]
        return main([command, *rest, *folders])

    return run


@pytest.fixture
def workflow(tmp_path, chain):
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(chain))
    return path


def test_run_prints_a_summary(cli, workflow, capsys):
    assert cli("run", str(workflow)) == 0
    out = capsys.readouterr().out
    assert ": success in " in out
    assert "#3    Show      Show Value  ran" in out


def test_run_json_and_history_file(cli, workflow, tmp_path, capsys):
    history = tmp_path / "history.json"
    assert cli("run", str(workflow), "--json", "--history", str(history), "--prompt-id", "pid") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "success" and data["prompt_id"] == "pid"
    assert [n["node_id"] for n in data["nodes"]] == ["1", "2", "3"]
    assert {"seconds", "peak_rss_bytes", "peak_cuda_bytes", "status"} <= set(data["nodes"][0])
    saved = json.loads(history.read_text())
    assert list(saved) == ["pid"] and saved["pid"]["outputs"] == {"3": {"values": [8]}}
    assert saved == data["history"]


def test_set_overrides_by_id_title_and_class(cli, workflow, capsys):
    assert cli("run", str(workflow), "--json", "--set", "1.value=10", "--set", "Add.b=-4") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["history"][data["prompt_id"]]["outputs"]["3"] == {"values": [6]}


def test_an_ambiguous_set_lists_the_candidates(cli, tmp_path, node, capsys):
    path = tmp_path / "two.json"
    path.write_text(
        json.dumps(
            {
                "1": node("IntConst", "N", value=1),
                "2": node("IntConst", "N", value=2),
                "3": node("Add", a=["1", 0], b=["2", 0]),
                "4": node("Show", value=["3", 0]),
            }
        )
    )
    assert cli("run", str(path), "--set", "N.value=3") == 2
    err = capsys.readouterr().err
    assert "'N' matches 2 nodes: #1 IntConst ('N'), #2 IntConst ('N')" in err
    assert "Traceback" not in err
    assert cli("run", str(path), "--set", "IntConst.value=3") == 2
    assert cli("run", str(path), "--set", "Add.nope=3") == 2
    assert "has no input 'nope'; inputs: a, b" in capsys.readouterr().err
    assert cli("run", str(path), "--set", "1.value=abc") == 2
    assert "'abc' is not a valid INT" in capsys.readouterr().err


def test_validate_reports_errors_and_exits_2(cli, tmp_path, node, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"1": node("IntConst", value=500), "2": node("Show", value=["1", 0])}))
    assert cli("validate", str(path)) == 2
    assert "#1 IntConst: Value 500 bigger than max of 100: value" in capsys.readouterr().err
    assert cli("validate", str(path), "--json") == 2
    body = json.loads(capsys.readouterr().out)
    assert body["error"]["type"] == "prompt_outputs_failed_validation" and "1" in body["node_errors"]
    assert cli("run", str(path)) == 2


def test_validate_ok(cli, workflow, capsys):
    assert cli("validate", str(workflow)) == 0
    assert "valid: 1 output node(s) to run: #3" in capsys.readouterr().out


def test_execution_error_exits_1(cli, tmp_path, node, capsys):
    path = tmp_path / "boom.json"
    path.write_text(
        json.dumps(
            {
                "1": node("IntConst", value=5),
                "2": node("Boom", value=["1", 0]),
                "3": node("Show", value=["2", 0]),
            }
        )
    )
    assert cli("run", str(path)) == 1
    assert "execution error in #2 Boom: ValueError: boom at 5" in capsys.readouterr().err


def test_interrupted_run_exits_130(cli, tmp_path, node, capsys):
    path = tmp_path / "stop.json"
    path.write_text(
        json.dumps(
            {
                "1": node("IntConst", value=5),
                "2": node("Steps", value=["1", 0], steps=4, delay=0.0, interrupt_at=1),
                "3": node("Show", value=["2", 0]),
            }
        )
    )
    assert cli("run", str(path)) == 130
    assert "interrupted in #2 Steps" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "{not json",
            "is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2",
        ),
        ("[1, 2]", "a workflow must be a JSON object"),
        ('{"1": 5}', "not a workflow: expected the API format"),
        ('{"1": {"class_type": "Show"}}', "node '1' has no 'inputs' object"),
    ],
)
def test_bad_input_gets_one_clear_message(cli, tmp_path, capsys, content, message):
    path = tmp_path / "broken.json"
    path.write_text(content)
    assert cli("validate", str(path)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_an_unknown_file(cli, tmp_path, capsys):
    assert cli("run", str(tmp_path / "missing.json")) == 2
    assert capsys.readouterr().err == f"error: workflow file not found: {tmp_path / 'missing.json'}\n"


def test_verbose_shows_the_traceback(cli, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("[]")
    with pytest.raises(Exception, match="must be a JSON object"):
        cli("validate", str(path), "--verbose")


def test_convert_and_info(cli, tmp_path, capsys):
    ui = {
        "nodes": [
            {
                "id": 1,
                "type": "IntConst",
                "mode": 0,
                "widgets_values": [4],
                "inputs": [],
                "outputs": [{"name": "INT", "type": "INT", "links": [1]}],
            },
            {"id": 2, "type": "Show", "mode": 0, "inputs": [{"name": "value", "type": "INT", "link": 1}]},
        ],
        "links": [[1, 1, 0, 2, 0, "INT"]],
        "version": 0.4,
    }
    path = tmp_path / "ui.json"
    path.write_text(json.dumps(ui))
    assert cli("convert", str(path)) == 0
    assert json.loads(capsys.readouterr().out) == {
        "1": {"inputs": {"value": 4}, "class_type": "IntConst", "_meta": {"title": "Integer"}},
        "2": {"inputs": {"value": ["1", 0]}, "class_type": "Show", "_meta": {"title": "Show Value"}},
    }
    out_file = tmp_path / "api.json"
    assert cli("convert", str(path), "-o", str(out_file)) == 0
    assert json.loads(out_file.read_text())["2"]["class_type"] == "Show"
    assert cli("info", "Show") == 0
    assert json.loads(capsys.readouterr().out)["Show"]["output_node"] is True
    assert cli("info", "Nope") == 2


def test_ctrl_c_stops_at_the_next_step_and_exits_cleanly(tmp_path, node):
    path = tmp_path / "slow.json"
    path.write_text(
        json.dumps(
            {
                "1": node("IntConst", value=5),
                "2": node("Steps", value=["1", 0], steps=1000, delay=0.01, interrupt_at=-1),
                "3": node("Show", value=["2", 0]),
            }
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "host_stub",
            "run",
            str(path),
            "--packs",
            str(PACKS / "arith"),
            "--output-dir",
            str(tmp_path / "out"),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Non-TTY progress prints a line when a node finishes: IntConst done means Steps is running.
    for line in proc.stderr:
        if line.startswith("#1 IntConst"):
            break
    time.sleep(0.2)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 5
    assert "interrupting at the next step" in err and "interrupted in #2 Steps" in err
    assert "Traceback" not in err
    assert "#2    Steps     Steps       interrupted" in out


def test_progress_on_a_terminal_redraws_one_line_per_node():
    import io

    from host_stub.cli_progress import ConsoleProgress

    stream = io.StringIO()
    progress = ConsoleProgress(stream, live=True)
    progress.node_started("2", "Steps", "Slow steps")
    for step in range(1, 101):
        progress.node_progress("2", step, 100)
    progress.node_finished("2", "ran", 0.25)
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("#2 Steps (Slow steps): ran in 0.250s\n")
    assert text.count("\r") <= 30  # redrawn when the bar moves, not on every one of the 100 steps
    assert "[########################] 100/100" in text
