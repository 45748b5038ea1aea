/**
 * Coalescer: runs an async job soon after a change, once for a burst of
 * changes, never twice at the same time, and again if changes arrived while
 * it ran. The shape of every "state changed -> resync" loop in the agent.
 * After an expensive run (100 ms or more: a cold sync of 100k records) the
 * next one waits as long as that run took, so the job takes at most half of
 * a core while changes keep coming, instead of all of it; cheap runs keep
 * the short debounce (propagation latency).
 */
const HEAVY_RUN_MS = 100;

export class Coalescer {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private dirty = false;
  private stopped = false;
  private lastRunMs = 0;

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
      const started = Date.now();
      this.running = this.job()
        .catch((err: Error) => this.onError(err))
        .finally(() => {
          this.lastRunMs = Date.now() - started;
          this.running = undefined;
          if (this.dirty) this.schedule();
        });
    }, this.lastRunMs >= HEAVY_RUN_MS ? Math.max(this.delayMs, this.lastRunMs) : this.delayMs);
  }

  /** Cancels a pending run and waits for a running one. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
