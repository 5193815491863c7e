"""mlx.launch, as its console script runs it (mlx._distributed_utils.launch.main), without its busy wait.

Usage: python mlx_launch.py <mlx.launch's arguments>

mlx 0.32's launcher relays each rank's output from a thread that loops on
select([rank's stdout, rank's stderr], [rank's stdin], [], 1.0). A pipe is writable nearly always, so that
select returns at once and the thread spins; the main loop's select on the launcher's own stdin (/dev/null
here: always readable) spins as well. Two local ranks that only sleep 4 s cost the launcher 5.6 core-seconds,
taken from the ranks it launched. The pipeline sends its ranks no input, so here select is asked about
reading only, and never about this process's stdin: each thread sleeps until its rank prints (or 1 s), the
main loop 0.1 s. Everything else is mlx.launch's own code.
"""

import select
import sys

from mlx._distributed_utils import launch

_STDIN = sys.stdin.fileno()


def _select(rlist, wlist, xlist, timeout=None):
    readable, _, exceptional = select.select([fd for fd in rlist if fd != _STDIN], [], xlist, timeout)
    return readable, [], exceptional


launch.select = _select

if __name__ == "__main__":
    sys.argv[0] = "mlx.launch"  # its usage and error messages name the command users know
    sys.exit(launch.main())
