/**
 * ConntrackGc: when the conntrack table is swept (conntrack.ts). The
 * datapath never needs a sweep to be right (a dead entry is absent to it);
 * sweeps give the room back: dead entries would otherwise hold the table and
 * their endpoints' quotas. So the interval follows the pressure:
 *
 *   - halved (down to gcMinIntervalSec) after a sweep that found the table
 *     or some endpoint's quota at least half used, or a quarter of what it
 *     read dead;
 *   - grown by half (up to gcMaxIntervalSec) after a sweep that found both
 *     under a tenth and little dead;
 *   - and a sweep comes at once (at most one per gcMinIntervalSec) when the
 *     datapath refused a new connection for want of room (CT_FULL, CT_QUOTA
 *     flow events, `nudge()`).
 *
 * Each sweep is logged (at info when it deleted something) and its result
 * kept for `weft status`.
 */
import type { Logger } from '@weft/common';
import type { ConntrackConfig } from './config.js';
import type { ConntrackSweep, Datapath } from './datapath-port.js';

export interface ConntrackGcRun {
  /** When it finished (ISO time). */
  at: string;
  scanned: number;
  expired: number;
  flushed: number;
  live: number;
  recounted: number;
  durationMs: number;
  /** The table's use after it, 0-1. */
  tableUse: number;
  /** The busiest endpoint's use of its quota after it, 0-1. */
  quotaUse: number;
  /** The interval chosen for the next one. */
  nextInMs: number;
}

export interface ConntrackGcStatus {
  runs: number;
  intervalMs: number;
  /** When the next sweep is due, from now (undefined while one runs). */
  nextInMs?: number;
  deletedTotal: number;
  last?: ConntrackGcRun;
  lastError?: string;
}

export class ConntrackGc {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private intervalMs: number;
  private readonly minMs: number;
  private readonly maxMs: number;
  private lastStart = -Infinity;
  private runs = 0;
  private deletedTotal = 0;
  private last: ConntrackGcRun | undefined;
  private lastError: string | undefined;

  constructor(
    private readonly datapath: Pick<Datapath, 'sweepConntrack'>,
    private readonly config: Pick<ConntrackConfig, 'gcMinIntervalSec' | 'gcMaxIntervalSec' | 'maxEntriesPerEndpoint'>,
    private readonly capacity: () => number,
    private readonly log: Logger,
    /** For tests: the clock of the minimum interval between nudged sweeps. */
    private readonly nowMs: () => number = () => performance.now(),
  ) {
    this.minMs = config.gcMinIntervalSec * 1000;
    this.maxMs = config.gcMaxIntervalSec * 1000;
    // Start in the middle: the first sweep tells which way to go.
    this.intervalMs = Math.min(this.maxMs, Math.max(this.minMs, 60_000));
  }

  /** The first sweep now (a restarted agent finds what expired while it was away), then on the interval. */
  start(): void {
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** The datapath refused a connection for want of room: sweep soon, not sooner than the minimum interval after the last. */
  nudge(): void {
    if (this.stopped || this.running) return;
    const wait = Math.max(0, this.lastStart + this.minMs - this.nowMs());
    if (this.timer && this.dueAt <= this.nowMs() + wait) return;
    this.schedule(wait);
  }

  /** Sweeps now (also what the timer calls); resolves when done. */
  async runOnce(): Promise<ConntrackGcRun | undefined> {
    if (this.running) {
      await this.running;
      return this.last;
    }
    this.running = this.sweep();
    try {
      await this.running;
    } finally {
      this.running = undefined;
    }
    return this.last;
  }

  status(): ConntrackGcStatus {
    const nextInMs = this.timer ? Math.max(0, Math.round(this.dueAt - this.nowMs())) : undefined;
    return { runs: this.runs, intervalMs: this.intervalMs, ...(nextInMs !== undefined ? { nextInMs } : {}), deletedTotal: this.deletedTotal, ...(this.last ? { last: this.last } : {}), ...(this.lastError ? { lastError: this.lastError } : {}) };
  }

  private dueAt = 0;

  private schedule(ms: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.dueAt = this.nowMs() + ms;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.runOnce().finally(() => this.schedule(this.intervalMs));
    }, ms);
    this.timer.unref();
  }

  private async sweep(): Promise<void> {
    this.lastStart = this.nowMs();
    let r: ConntrackSweep;
    try {
      r = await this.datapath.sweepConntrack();
    } catch (err) {
      // Kept trying on the interval: a failed sweep costs room, never correctness.
      this.lastError = (err as Error).message;
      this.log.error({ err: this.lastError }, 'conntrack sweep failed');
      return;
    }
    this.lastError = undefined;
    this.runs++;
    this.deletedTotal += r.expired + r.flushed;
    let live = 0;
    let busiest = 0;
    for (const n of r.live.values()) {
      live += n;
      busiest = Math.max(busiest, n);
    }
    const tableUse = this.capacity() > 0 ? live / this.capacity() : 0;
    const quotaUse = busiest / this.config.maxEntriesPerEndpoint;
    const pressure = Math.max(tableUse, quotaUse);
    const deadShare = r.scanned > 0 ? r.expired / r.scanned : 0;
    if (pressure >= 0.5 || deadShare >= 0.25) this.intervalMs = Math.max(this.minMs, Math.round(this.intervalMs / 2));
    else if (pressure < 0.1 && deadShare < 0.05) this.intervalMs = Math.min(this.maxMs, Math.round(this.intervalMs * 1.5));
    this.last = {
      at: new Date().toISOString(),
      scanned: r.scanned,
      expired: r.expired,
      flushed: r.flushed,
      live,
      recounted: r.recounted,
      durationMs: r.durationMs,
      tableUse: round3(tableUse),
      quotaUse: round3(quotaUse),
      nextInMs: this.intervalMs,
    };
    const fields = { scanned: r.scanned, expired: r.expired, live, recounted: r.recounted, durationMs: r.durationMs, tableUse: this.last.tableUse, quotaUse: this.last.quotaUse, nextInMs: this.intervalMs };
    if (r.expired > 0 || r.recounted > 0) this.log.info(fields, 'conntrack swept');
    else this.log.debug(fields, 'conntrack swept');
  }
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}
