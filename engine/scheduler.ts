// How many nodes a build works on at once (job slots), and the one heavy slot: two nodes that declare
// themselves heavy (training, compiling) never run their tools together, whatever -j says.
import { availableParallelism } from "node:os";

/**
 * The default for -j: half the cores, at least 2, at most 4. The heavy slot already keeps the CPU- and
 * memory-hungry nodes apart, so what runs beside one of them is light work that mostly waits on the network
 * or the disk (a download, a pip install, a git clone): even a 2-core machine gains from a second job. More
 * than 4 would only interleave more logs, a pipeline graph is rarely wider than that.
 */
export function defaultJobs(cores = availableParallelism()): number {
  return Math.max(2, Math.min(4, Math.floor(cores / 2)));
}

/** Job slots, taken by a node when it starts and given back when it finishes, and the heavy slot. */
export class Slots {
  private active = 0;
  private heavyHeld = false;
  /** Nodes that hold a job slot and wait for the heavy one; their job slot is lent to others meanwhile. */
  private readonly heavyWaiters: { readonly index: number; readonly resume: () => void }[] = [];
  /** Nodes that were given the heavy slot and wait for a job slot again: served before any new node. */
  private readonly resuming: (() => void)[] = [];

  constructor(
    readonly jobs: number,
    /** Called whenever a job slot may have freed up, for the caller to start the next nodes. */
    private readonly onFree: () => void,
  ) {}

  /** Takes a job slot for a node about to start: false when none is free. */
  tryTake(): boolean {
    if (this.active >= this.jobs || this.resuming.length > 0) return false;
    this.active++;
    return true;
  }

  /** Gives a job slot back. */
  release(): void {
    this.active--;
    this.serve();
    this.onFree();
  }

  private serve(): void {
    while (this.resuming.length > 0 && this.active < this.jobs) {
      this.active++;
      this.resuming.shift()!();
    }
  }

  /**
   * Takes the heavy slot for a node that holds a job slot. While another heavy node runs, the waiting node's
   * job slot goes to light nodes, so a heavy node waiting never blocks a download. Heavy waiters are served in
   * build order (`index`). Resolves true when it had to wait.
   */
  async takeHeavy(index: number): Promise<boolean> {
    if (!this.heavyHeld) {
      this.heavyHeld = true;
      return false;
    }
    await new Promise<void>((resume) => {
      this.heavyWaiters.push({ index, resume });
      this.release();
    });
    return true;
  }

  /** Hands the heavy slot to the first waiting heavy node, which then takes the next free job slot. */
  releaseHeavy(): void {
    this.heavyWaiters.sort((a, b) => a.index - b.index);
    const next = this.heavyWaiters.shift();
    if (!next) {
      this.heavyHeld = false;
      return;
    }
    this.resuming.push(next.resume);
    this.serve();
  }
}
