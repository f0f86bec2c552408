"""``serve``'s command-line flags, ComfyUI's own server flags among them, and the host they build."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

log = logging.getLogger("host_stub.server")

DEFAULT_PORT = 8188
TOKEN_ENV = "HOST_STUB_TOKEN"

# ComfyUI flags that mean nothing here: accepted so that tools written for ComfyUI can start
# `serve`, and named once in the log.
IGNORED_WITH_VALUE = (
    "--base-directory", "--database-url", "--cuda-device", "--default-device", "--reserve-vram",
    "--preview-method", "--preview-size", "--default-hashing-function", "--oneapi-device-selector",
    "--directml", "--front-end-version", "--comfy-api-base", "--tls-keyfile",
    "--tls-certfile", "--enable-cors-header", "--fast",
)
IGNORED_SWITCHES = (
    "--auto-launch", "--disable-auto-launch", "--cuda-malloc", "--disable-cuda-malloc", "--force-fp32",
    "--force-fp16", "--fp32-unet", "--fp64-unet", "--bf16-unet", "--fp16-unet", "--fp16-vae", "--fp32-vae",
    "--bf16-vae", "--cpu-vae", "--fp16-text-enc", "--fp32-text-enc", "--bf16-text-enc",
    "--force-channels-last",
    "--disable-ipex-optimize", "--use-split-cross-attention", "--use-quad-cross-attention",
    "--use-pytorch-cross-attention", "--use-sage-attention", "--use-flash-attention", "--disable-xformers",
    "--force-upcast-attention", "--dont-upcast-attention", "--gpu-only", "--highvram", "--normalvram",
    "--lowvram", "--novram", "--disable-smart-memory", "--deterministic", "--dont-print-server",
    "--quick-test-for-ci", "--windows-standalone-build", "--disable-metadata", "--disable-all-custom-nodes",
    "--disable-api-nodes", "--multi-user", "--log-stdout", "--enable-compress-response-body",
    "--cache-classic", "--cache-none", "--async-offload", "--force-non-blocking", "--disable-mmap",
    "--mmap-torch-files", "--supports-fp8-compute",
)


# --- values: each flag's value is checked as it is read; a bad one is one line and exit status 2 ---


def _checked(kind: str, convert: Callable[[str], Any], ok: Callable[[Any], bool]) -> Callable[[str], Any]:
    def read(text: str) -> Any:
        try:
            value = convert(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"must be {kind}, not {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {kind}, not {text!r}")
        return value

    read.__name__ = kind  # what argparse names in its message
    return read


PORT = _checked("a port number from 0 to 65535", int, lambda v: 0 <= v <= 65535)
COUNT = _checked("a whole number of at least 1", int, lambda v: v >= 1)
NON_NEGATIVE = _checked("a whole number of at least 0", int, lambda v: v >= 0)
MEGABYTES = _checked("a size in MB above 0", float, lambda v: math.isfinite(v) and v > 0)
TEXT = _checked("not empty", str, lambda v: bool(v.strip()))
LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
HOST_NAME = re.compile(rf"(?=.{{1,253}}$){LABEL}(\.{LABEL})*\.?", re.IGNORECASE)


def _one_line_error(message: str) -> NoReturn:
    """argparse's errors for ``serve``: one line, exit status 2 (no usage dump)."""
    print(f"error: {message} (python -m host_stub serve --help)", file=sys.stderr)
    raise SystemExit(2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.error = _one_line_error  # type: ignore[method-assign]
    _server_flags(parser.add_argument)
    _folder_flags(parser.add_argument)
    _comfyui_flags(parser.add_argument)


def _server_flags(add: Callable[..., Any]) -> None:
    add("--listen", default="127.0.0.1", nargs="?", const="0.0.0.0,::", metavar="IP",
        help="address(es) to listen on, comma separated (default 127.0.0.1; bare --listen: all)")
    add("--port", type=PORT, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free one)")
    add("--allow-host", action="append", default=[], metavar="NAME", type=TEXT,
        help="a host name clients may use for this server besides its addresses and localhost "
             "(checked without a token, against DNS rebinding); repeatable; '*' accepts any")
    add("--token", type=TEXT, help=f"bearer token clients must send (or ${TOKEN_ENV})")
    add("--insecure", action="store_true", help="allow listening beyond loopback without a token")
    add("--on-restart", choices=("rerun", "fail"), default="rerun",
        help="a prompt that was running when the server stopped: run it again (default) or mark it failed")
    add("--max-history", type=COUNT, default=10000, help="history entries kept (default 10000)")
    add("--max-upload-size", type=MEGABYTES, default=100.0, metavar="MB",
        help="largest upload (default 100 MB)")
    add("--max-body-size", type=MEGABYTES, default=32.0, metavar="MB",
        help="largest JSON body (default 32 MB)")
    add("-v", "--verbose", nargs="?", const="DEBUG", default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), help="log level (bare -v: DEBUG)")


def _folder_flags(add: Callable[..., Any]) -> None:
    add("--packs", action="append", default=[], metavar="DIR", type=TEXT,
        help="a pack or a folder of packs; repeatable")
    add("--input-dir", "--input-directory", dest="input_dir", type=TEXT,
        help="input folder (default ./input)")
    add("--output-dir", "--output-directory", dest="output_dir", type=TEXT,
        help="output folder (default ./output)")
    add("--models-dir", type=TEXT, help="models root (default ./models)")
    add("--temp-dir", type=TEXT, help="temp folder (default OUTPUT/temp)")
    add("--temp-directory", type=TEXT, help="ComfyUI's flag: the temp folder is TEMP_DIRECTORY/temp")
    add("--user-directory", type=TEXT,
        help="user folder: holds the queue database by default (default ./user)")
    add("--queue-db", metavar="PATH", type=TEXT,
        help="the queue and history database (default USER/host_stub/queue.sqlite3)")
    add("--front-end-root", metavar="DIR", type=TEXT,
        help="serve the editor from DIR (default: the installed wheel)")


def _comfyui_flags(add: Callable[..., Any]) -> None:
    add("--extra-model-paths-config", action="append", nargs="+", default=[], metavar="PATH",
        help="ComfyUI's extra_model_paths.yaml; custom_nodes entries load as packs")
    add("--cpu", action="store_true",
        help="hide the GPUs (CUDA_VISIBLE_DEVICES='') so everything runs on the CPU")
    add("--cache-lru", type=NON_NEGATIVE, default=0, metavar="N",
        help="ComfyUI's LRU cache of N node results")
    for flag in IGNORED_WITH_VALUE:
        add(flag, dest=f"ignored_{flag[2:]}", nargs="?", const="", help=argparse.SUPPRESS)
    for flag in IGNORED_SWITCHES:
        add(flag, dest=f"ignored_{flag[2:]}", action="store_true", help=argparse.SUPPRESS)
    add("--whitelist-custom-nodes", dest="ignored_whitelist-custom-nodes", nargs="+", help=argparse.SUPPRESS)


def ignored_flags(args: argparse.Namespace) -> list[str]:
    return sorted("--" + key[len("ignored_"):] for key, value in vars(args).items()
                  if key.startswith("ignored_") and value not in (None, False))


def addresses(listen: str) -> list[str]:
    return [a.strip() for a in listen.split(",") if a.strip()]


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with flags that each read well but do not make a server, or None."""
    listen = addresses(args.listen)
    if not listen:
        return "--listen: no address given (e.g. --listen 127.0.0.1, or a bare --listen for all)"
    for address in listen:
        if not _address_ok(address):
            return f"--listen: {address!r} is not an IP address or a host name"
    if args.front_end_root and not (Path(args.front_end_root).expanduser() / "index.html").is_file():
        return f"--front-end-root: {args.front_end_root} has no index.html"
    for path in (p for group in args.extra_model_paths_config for p in group):
        if not Path(path).is_file():
            return f"--extra-model-paths-config: {path} is not a file"
    return None


def _address_ok(address: str) -> bool:
    try:
        ipaddress.ip_address(address.strip("[]"))
        return True
    except ValueError:
        pass
    if re.fullmatch(r"[0-9.]+", address):  # digits and dots: meant as an IPv4 address, and not one
        return False
    return HOST_NAME.fullmatch(address) is not None


def token_from(args: argparse.Namespace) -> str | None:
    """``--token``, else ``$HOST_STUB_TOKEN`` (an empty variable is no token)."""
    return args.token if args.token is not None else (os.environ.get(TOKEN_ENV) or None)


def security_problem(args: argparse.Namespace) -> str | None:
    """Why the server must not start with these flags, or None."""
    exposed = [a for a in addresses(args.listen) if not is_loopback(a)]
    if exposed and not args.token and not args.insecure:
        return (f"listening on {', '.join(exposed)} (beyond loopback) needs --token (or ${TOKEN_ENV}); "
                "pass --insecure to run without one")
    return None


def folders(args: argparse.Namespace) -> dict[str, Any]:
    temp = args.temp_dir
    if temp is None and args.temp_directory is not None:
        temp = str(Path(args.temp_directory).expanduser().resolve() / "temp")  # as ComfyUI does
    return {"input_dir": args.input_dir, "output_dir": args.output_dir, "models_dir": args.models_dir,
            "temp_dir": temp}


def user_directory(args: argparse.Namespace) -> Path:
    return Path(args.user_directory or "user").expanduser().resolve()


def queue_db_path(args: argparse.Namespace) -> Path:
    if args.queue_db:
        return Path(args.queue_db).expanduser().resolve()
    return user_directory(args) / "host_stub" / "queue.sqlite3"


def read_extra_model_paths(path: str) -> tuple[list[tuple[str, str, bool]], list[str]]:
    """ComfyUI's ``extra_model_paths.yaml``: ([(folder name, path, is_default)], custom_nodes paths)."""
    import yaml  # a dependency of transformers; needed only for this flag

    with open(path, encoding="utf-8") as fh:
        config = yaml.safe_load(fh) or {}
    here = Path(path).resolve().parent
    models: list[tuple[str, str, bool]] = []
    custom_nodes: list[str] = []
    for section in config.values():
        if not isinstance(section, dict):
            continue
        section = dict(section)
        base = section.pop("base_path", None)
        if base is not None:
            base = Path(os.path.expandvars(os.path.expanduser(str(base))))
            base = base if base.is_absolute() else here / base
        is_default = bool(section.pop("is_default", False))
        for name, value in section.items():
            for line in str(value).split("\n"):
                if not line.strip():
                    continue
                full_path = os.path.normpath(str((base or here) / line))  # an absolute line stays itself
                if name == "custom_nodes":
                    custom_nodes.append(full_path)
                else:
                    models.append((name, full_path, is_default))
    return models, custom_nodes


def build_host(args: argparse.Namespace) -> Any:
    """The host: folders, extra model paths, then the packs (custom_nodes entries first)."""
    from host_stub.api import Host

    kwargs: dict[str, Any] = folders(args)
    if args.cache_lru:
        kwargs["cache_lru"] = args.cache_lru
    # no walk of the output folders around every prompt (it grows with them): the history lists
    # the files the output nodes report, as ComfyUI's does
    host = Host(**kwargs, scan_outputs=False)
    packs: list[str] = []
    model_paths: list[tuple[str, str, bool]] = []
    for config in (p for group in args.extra_model_paths_config for p in group):
        found, custom_nodes = read_extra_model_paths(config)
        model_paths += found
        packs += custom_nodes
    if model_paths:
        with host.active():
            import folder_paths  # the host's, while it is active

            for name, path, is_default in model_paths:
                log.info("Adding extra search path %s %s", name, path)
                folder_paths.add_model_folder_path(name, path, is_default)
    for load in host.load_packs(packs + list(args.packs)):
        if load.ok:
            log.info("%6.1f seconds: %s (%d nodes)", load.seconds, load.path, len(load.nodes))
        else:
            log.error("%6.1f seconds (IMPORT FAILED): %s: %s", load.seconds, load.path, load.error)
    return host
