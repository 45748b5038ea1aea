/**
 * Coalescer: runs an async job soon after a change, once for a burst of
 * changes, never twice at the same time, and again if changes arrived while
 * it ran. The shape of every "state changed -> resync" loop in the agent.
 *
 * The wait is always the same short debounce. It once grew to as long as the
 * last run took (so a job took at most half a core), which fed on itself: one
 * slow run, from a busy machine or a large batch, made the next change wait as
 * long again, and latency swung from tens of milliseconds to seconds (issue
 * 13). Jobs do work proportional to what changed instead (the ipcache, the
 * policy engine), so a run is short because its batch is.
 */

export class Coalescer {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private dirty = false;
  private stopped = false;

  constructor(
    private readonly job: () => Promise<void>,
    private readonly delayMs: number,
    private readonly onError: (err: Error) => void,
  ) {}

  /** Asks for a run; changes within `delayMs` share it. */
  schedule(): void {
    this.dirty = true;
    if (this.stopped || this.timer || this.running) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.dirty = false;
      this.running = this.job()
        .catch((err: Error) => this.onError(err))
        .finally(() => {
          this.running = undefined;
          if (this.dirty) this.schedule();
        });
    }, this.delayMs);
  }

  /** Resolves once no run is pending or running: changes made before the call are applied (tests). */
  async idle(): Promise<void> {
    while (this.timer || this.running) await (this.running ?? new Promise((r) => setTimeout(r, this.delayMs)));
  }

  /** Cancels a pending run and waits for a running one. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
