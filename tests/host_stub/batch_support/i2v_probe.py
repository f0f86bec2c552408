"""``python -m host_stub batch ...`` that then logs how often this process loaded an i2v model.

Run under torchrun by the i2v batch test: ``SWEEP_TEST_LOG/i2v-loads-<rank>.json`` gets the i2v
pack's model cache ``loads`` counter and the process's torch thread count.
"""

import json
import os
import sys

import torch

from host_stub.batch import dist
from host_stub.cli import main

dist.HARD_EXIT = False  # this process goes on after the batch: it ends itself below
code = main(["batch", *sys.argv[1:]])
from i2v_nodes.runtime import sampling  # noqa: E402 - the pack's own copy, imported by the run above

rank = int(os.environ.get("RANK", 0))
stats = sampling.default_cache().stats()
found = {"rank": rank, "pid": os.getpid(), "loads": stats.loads, "threads": torch.get_num_threads()}
with open(os.path.join(os.environ["SWEEP_TEST_LOG"], f"i2v-loads-{rank}.json"), "w", encoding="utf-8") as fh:
    json.dump(found, fh)
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)  # as the batch command itself ends a launched process (see host_stub.batch.dist)
