# Runs stages/py/lora_train.py (i.e. `mlx_lm lora` with @@metrics lines) in this process and, on
# exit, prints one more line with what the whole run peaked at:
#   @@peak {"mlx_peak": bytes (mx.get_peak_memory, never reset, so loading and validation count),
#           "max_rss": bytes (getrusage: includes the Python/mlx runtime mlx's counter does not see)}
# Usage: python guard/calibration/lora_peak.py -c config.yaml
import json
import resource
import runpy
import sys
from pathlib import Path

import mlx.core as mx

SCRIPT = Path(__file__).resolve().parents[2] / "stages/py/lora_train.py"

if __name__ == "__main__":
    sys.argv = [str(SCRIPT), *sys.argv[1:]]
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    finally:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
        print("@@peak " + json.dumps({"mlx_peak": mx.get_peak_memory(), "max_rss": rss}), flush=True)
