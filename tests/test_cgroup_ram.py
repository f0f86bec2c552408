"""System RAM is what this process may use: its memory cgroup's limit (v1 or v2, the tightest up the
hierarchy) caps the machine's memory, less what the cgroup already uses. The planner and VRAMGuard
see that figure, not the host's."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from i2v_nodes.runtime.memory import devices

GiB = 2**30
REPO = Path(__file__).resolve().parents[1]


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_takes_the_tightest_limit_up_the_tree_and_the_usage_without_dropable_cache(tmp_path):
    write(tmp_path, "proc/self/cgroup", "0::/pods/job\n")
    write(tmp_path, "sys/fs/cgroup/pods/memory.max", f"{12 * GiB}\n")  # the parent is tighter
    write(tmp_path, "sys/fs/cgroup/pods/memory.current", f"{3 * GiB}\n")
    write(tmp_path, "sys/fs/cgroup/pods/memory.stat", f"anon 1\ninactive_file {GiB}\n")
    write(tmp_path, "sys/fs/cgroup/pods/job/memory.max", "max\n")
    write(tmp_path, "sys/fs/cgroup/pods/job/memory.current", f"{GiB}\n")
    limit = devices.cgroup_limit(tmp_path)
    assert (limit.limit, limit.used) == (12 * GiB, 2 * GiB) and limit.where.endswith("pods")


def test_cgroup_v1_reads_the_memory_controller_and_ignores_its_no_limit_value(tmp_path):
    write(tmp_path, "proc/self/cgroup", "5:cpu,cpuacct:/x\n4:memory:/small\n0::/\n")
    write(tmp_path, "sys/fs/cgroup/memory/small/memory.limit_in_bytes", f"{16 * GiB}\n")
    write(tmp_path, "sys/fs/cgroup/memory/small/memory.usage_in_bytes", f"{5 * GiB}\n")
    write(tmp_path, "sys/fs/cgroup/memory/small/memory.stat", f"total_inactive_file {2 * GiB}\n")
    write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
    limit = devices.cgroup_limit(tmp_path)
    assert (limit.limit, limit.used) == (16 * GiB, 3 * GiB)


def test_no_limit_anywhere_is_none(tmp_path):
    write(tmp_path, "proc/self/cgroup", "4:memory:/\n")
    write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
    assert devices.cgroup_limit(tmp_path) is None
    assert devices.cgroup_limit(tmp_path / "nowhere") is None


PLAN = ("from i2v_nodes import cli; "
        "cli.main(['plan', 'tiny-wan2.1-i2v', '--width', '64', '--height', '48', '--frames', '9', "
        "'--device', 'cpu', '--no-search'])")


def test_inside_a_12_gib_memory_cgroup_the_planner_sees_12_gib_of_ram():
    parent = Path("/sys/fs/cgroup/memory")
    if not os.access(parent, os.W_OK):
        pytest.skip("making a memory cgroup needs root and cgroup v1 here")
    group = parent / f"i2v-test-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(12 * GiB))
        join = lambda: (group / "cgroup.procs").write_text(str(os.getpid()))  # noqa: E731 - in the child
        run = subprocess.run([sys.executable, "-c", PLAN], cwd=REPO, capture_output=True, text=True,
                             timeout=300, preexec_fn=join)
    finally:
        group.rmdir()
    assert run.returncode == 0, run.stderr[-2000:]
    assert "12 GiB system RAM" in run.stdout
