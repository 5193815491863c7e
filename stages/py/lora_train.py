"""`mlx_lm lora` with machine-readable metrics.

Usage: python lora_train.py -c config.yaml [any other `mlx_lm lora` flag]

Every train and validation report is printed to stderr as one line
    @@metrics {"type": "train", "iteration": ..., "train_loss": ..., ...}
    @@metrics {"type": "val", "iteration": ..., "val_loss": ..., "val_time": ...}
while mlx-lm's own screen UI (rich, format changed in 0.32) goes to stdout and can be ignored.

Under mlx.launch every rank runs this script: each line carries its "rank" (MLX_RANK; 0 alone).
With MLX_PIPELINE_PIDS set, each rank writes its pid there (rank-N.pid) so the pipeline can stop
ranks on every host, and a rank whose parent (mlx.launch, or the ssh session) is gone stops itself.

mlx_lm.lora.run() obtains its callback by calling the module-level name
`get_reporting_callbacks` at call time (checked in mlx-lm 0.26.4 to 0.32.2), so replacing that
name is enough; the original is still called so `report_to` (wandb, swanlab) keeps working.
"""

import json
import math
import os
import sys
import threading
import time

import mlx_lm.lora as lora
from mlx_lm.tuner.callbacks import TrainingCallback

PREFIX = "@@metrics "
RANK = int(os.environ.get("MLX_RANK", "0"))


def _plain(value):
    # Reports hold Python floats today; mx/np scalars are unwrapped in case that changes.
    if hasattr(value, "item"):
        value = value.item()
    # JSON has no NaN/Infinity: a diverged loss is sent as null rather than breaking the line.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class JsonLinesCallback(TrainingCallback):
    def __init__(self, wrapped):
        self.wrapped = wrapped

    def _emit(self, kind, info):
        line = json.dumps({"type": kind, "rank": RANK, **{k: _plain(v) for k, v in info.items()}})
        # stderr, one write + flush per line: mlx-lm's rich UI owns stdout and may wrap or recolour it.
        sys.stderr.write(PREFIX + line + "\n")
        sys.stderr.flush()

    def on_train_loss_report(self, train_info):
        self._emit("train", train_info)
        if self.wrapped is not None:
            self.wrapped.on_train_loss_report(train_info)

    def on_val_loss_report(self, val_info):
        self._emit("val", val_info)
        if self.wrapped is not None:
            self.wrapped.on_val_loss_report(val_info)


_original = lora.get_reporting_callbacks


def _reporting_callbacks(*args, **kwargs):
    return JsonLinesCallback(_original(*args, **kwargs))


def _watch_parent(parent):
    # Killing mlx.launch (or dropping the ssh connection) reparents the rank: a rank alone would wait
    # forever in all_sum for peers that are gone.
    while True:
        time.sleep(1)
        if os.getppid() != parent:
            os._exit(1)


def _register_rank(folder):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"rank-{RANK}.pid"), "w") as f:
        f.write(str(os.getpid()))
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()


if __name__ == "__main__":
    if os.environ.get("MLX_PIPELINE_PIDS"):
        _register_rank(os.environ["MLX_PIPELINE_PIDS"])
    lora.get_reporting_callbacks = _reporting_callbacks
    # argparse in lora.main() reads sys.argv[1:], i.e. everything after this script's name.
    lora.main()
