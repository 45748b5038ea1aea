/**
 * Coalescer: runs an async job soon after a change, once for a burst of
 * changes, never twice at the same time, and again if changes arrived while
 * it ran. The shape of every "state changed -> resync" loop in the agent.
 * The wait before a run is at least as long as the last run took, so a job
 * that grew expensive (a cold sync of 100k records) takes at most half of a
 * core while changes keep coming, instead of all of it.
 */
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
    }, Math.max(this.delayMs, this.lastRunMs));
  }

  /** Cancels a pending run and waits for a running one. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
