"""``python -m host_stub``: run, validate, convert and describe workflows without ComfyUI, or serve them.

Exit codes: 0 ok, 1 execution error, 2 invalid workflow (or unreadable input), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from host_stub.api import Host
from host_stub.cli_progress import ConsoleProgress
from host_stub.errors import WorkflowError
from host_stub.results import RunResult
from host_stub.validation import ValidationResult

EXIT_OK, EXIT_ERROR, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130
_RUN_EXIT = {
    "success": EXIT_OK,
    "error": EXIT_ERROR,
    "interrupted": EXIT_INTERRUPTED,
    "invalid": EXIT_INVALID,
}

log = logging.getLogger("host_stub")


def build_parser() -> argparse.ArgumentParser:
    host = argparse.ArgumentParser(add_help=False)
    host.add_argument(
        "--packs",
        action="append",
        default=[],
        metavar="DIR",
        help="a pack folder (with __init__.py) or a folder of packs; repeat for more",
    )
    host.add_argument("--input-dir", help="LoadImage's folder (default ./input)")
    host.add_argument("--output-dir", help="where outputs go (default ./output)")
    host.add_argument("--models-dir", help="models root for folder_paths (default ./models)")
    host.add_argument("--temp-dir", help="PreviewImage's folder (default OUTPUT_DIR/temp)")
    host.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    flow = argparse.ArgumentParser(add_help=False)
    flow.add_argument("workflow", help="workflow JSON file, API or UI format")
    flow.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="NODE.input=VALUE",
        help="change an input; NODE is a node id, title or class name",
    )

    parser = argparse.ArgumentParser(prog="python -m host_stub", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", parents=[host, flow], help="validate and run a workflow")
    run.add_argument("--json", action="store_true", help="print the summary and history as JSON")
    run.add_argument("--history", metavar="FILE", help="write the history entry ({prompt_id: entry}) here")
    run.add_argument("--prompt-id", help="use this prompt id instead of a random one")
    validate = commands.add_parser("validate", parents=[host, flow], help="validate a workflow")
    validate.add_argument("--json", action="store_true", help="print ComfyUI's /prompt response body")
    convert = commands.add_parser("convert", parents=[host], help="convert a UI workflow to API format")
    convert.add_argument("workflow", help="workflow JSON file")
    convert.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    info = commands.add_parser("info", parents=[host], help="print /object_info")
    info.add_argument("classes", nargs="*", metavar="CLASS", help="only these node classes")
    serve = commands.add_parser("serve", help="ComfyUI's HTTP and websocket API, with a persistent queue")
    from host_stub.server import config as serve_config  # no aiohttp needed to build the parser

    serve_config.add_arguments(serve)
    batch = commands.add_parser("batch", parents=[host], help="run a sweep of jobs, over 1..N processes")
    from host_stub import batch as batch_command

    batch_command.add_arguments(batch)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from host_stub.server.app import main as serve

        return serve(args)
    if args.command == "batch":
        from host_stub import batch as batch_command

        return batch_command.main(args)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        host = Host(
            packs=args.packs,
            input_dir=args.input_dir,
            output_dir=args.output_dir,
            models_dir=args.models_dir,
            temp_dir=args.temp_dir,
        )
        return _COMMANDS[args.command](host, args)
    except WorkflowError as exc:
        if args.verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - one clear line unless --verbose
        if args.verbose:
            raise
        print(f"error: {type(exc).__name__}: {exc} (run with --verbose for the traceback)", file=sys.stderr)
        return EXIT_ERROR


def _dump(data: Any, path: str | None = None) -> None:
    text = json.dumps(data, indent=2, default=str)
    if path is None:
        print(text)
    else:
        Path(path).write_text(text + "\n", encoding="utf-8")


# --- commands -------------------------------------------------------------------------------------


def cmd_run(host: Host, args: argparse.Namespace) -> int:
    progress = ConsoleProgress(sys.stderr, live=sys.stderr.isatty())
    with _ctrl_c_interrupts(host):
        result = host.run(
            args.workflow, overrides=args.overrides, prompt_id=args.prompt_id, progress=progress
        )
    if args.history and result.history is not None:
        _dump(result.history_response(), args.history)
    if args.json:
        _dump({**result.summary(), "history": result.history_response()})
    elif result.status == "invalid":
        _print_validation(result.validation)
    else:
        _print_run(result, args.verbose)
    return _RUN_EXIT[result.status]


def cmd_validate(host: Host, args: argparse.Namespace) -> int:
    result = host.validate(args.workflow, overrides=args.overrides)
    if args.json:
        _dump(result.response())
    else:
        _print_validation(result)
    return EXIT_OK if result.ok else EXIT_INVALID


def cmd_convert(host: Host, args: argparse.Namespace) -> int:
    _dump(host.convert(args.workflow), args.output)
    return EXIT_OK


def cmd_info(host: Host, args: argparse.Namespace) -> int:
    info = host.object_info()
    missing = [c for c in args.classes if c not in info]
    if missing:
        print(f"error: unknown node class: {', '.join(missing)}", file=sys.stderr)
        return EXIT_INVALID
    _dump({c: info[c] for c in args.classes} if args.classes else info)
    return EXIT_OK


_COMMANDS = {"run": cmd_run, "validate": cmd_validate, "convert": cmd_convert, "info": cmd_info}


@contextlib.contextmanager
def _ctrl_c_interrupts(host: Host) -> Iterator[None]:
    """First Ctrl-C: stop at the next step, as ComfyUI's cancel does. Second: stop now."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    asked = False

    def on_sigint(_signum: int, _frame: object) -> None:
        nonlocal asked
        if not host.running or asked:
            raise KeyboardInterrupt
        asked = True
        host.interrupt()
        print("\ninterrupting at the next step (Ctrl-C again to stop at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# --- output -------------------------------------------------------------------------------------


def _print_validation(result: ValidationResult) -> None:
    if result.ok:
        listed = ", ".join("#" + o for o in result.outputs)
        print(f"valid: {len(result.outputs)} output node(s) to run: {listed}")
    else:
        print(f"invalid workflow: {result.error['message']}", file=sys.stderr)
        if result.error["details"] and not result.node_errors:
            print(f"  {result.error['details']}", file=sys.stderr)
    for node_id, entry in result.node_errors.items():
        for reason in entry["errors"]:
            print(
                f"  #{node_id} {entry['class_type']}: {reason['message']}: {reason['details']}",
                file=sys.stderr,
            )


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MiB"


def _print_run(result: RunResult, verbose: bool) -> None:
    print(f"prompt {result.prompt_id}: {result.status} in {result.seconds:.3f}s")
    rows = [("node", "class", "title", "status", "time", "peak RSS", "peak CUDA")]
    rows += [
        (
            f"#{r.node_id}",
            r.class_type,
            r.title,
            r.status,
            f"{r.seconds:.3f}s",
            _mib(r.peak_rss_bytes),
            _mib(r.peak_cuda_bytes),
        )
        for r in result.nodes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    if result.files:
        print("files written:")
        for path in result.files:
            print(f"  {path}")
    if result.status == "error" and result.error is not None:
        error = result.error
        print(
            f"execution error in #{error['node_id']} {error['node_type']}: {error['exception_type']}: "
            f"{error['exception_message'].strip()}",
            file=sys.stderr,
        )
        if verbose:
            print("".join(error["traceback"]), file=sys.stderr)
    elif result.status == "interrupted" and result.error is not None:
        print(f"interrupted in #{result.error['node_id']} {result.error['node_type']}", file=sys.stderr)
