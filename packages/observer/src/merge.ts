/**
 * TimeMerger: flows from several streams, each in time order, put back in one time order. A flow
 * leaves as soon as every other stream has sent one at least as recent (none of them can still
 * send an earlier one), or once it has waited `windowMs` for a stream that is quiet; a full buffer
 * lets its oldest go at once, so memory stays bounded and nothing is dropped. With busy streams a
 * flow waits only for the slowest of them; Hubble's relay waits its whole sort window instead.
 */
import { compareTimestamps } from './time.js';
import type { Timestamp } from './types.js';

/** What the merger orders: anything with a flow's time (a Flow, an EncodedFlow). */
interface Timed {
  time: Timestamp | null;
}

interface Pending<T extends Timed> {
  flow: T;
  at: number;
  /** The flow's time as numbers, for the heap's comparisons (a missing time sorts first). */
  seconds: number;
  nanos: number;
}

export class TimeMerger<T extends Timed> {
  private heap: Array<Pending<T>> = [];
  private timer: NodeJS.Timeout | undefined;
  /** The latest flow time each open stream has sent (null: none yet). */
  private readonly latest = new Map<string, Timestamp | null>();
  /** How late each open stream's flows may arrive, when more than the window. */
  private readonly lags = new Map<string, number>();
  private maxLag: number;
  /** A lower bound of every stream's latest time, recomputed only when a flow waits on it. */
  private floor: Timestamp | null = null;

  constructor(
    private readonly emit: (flow: T) => void,
    private readonly windowMs = 200,
    private readonly maxBuffered = 10_000,
  ) {
    this.maxLag = windowMs;
  }

  /** Flows waiting. */
  get size(): number {
    return this.heap.length;
  }

  /** A stream opened: until it sends, flows wait for it (at most its lag, default the window). */
  open(source: string, lagMs = this.windowMs): void {
    if (!this.latest.has(source)) this.latest.set(source, null);
    if (lagMs > this.windowMs) this.lags.set(source, lagMs);
    this.maxLag = Math.max(this.windowMs, ...this.lags.values());
    this.floor = null;
  }

  /** A stream ended: nothing waits for it any more. */
  end(source: string): void {
    this.latest.delete(source);
    this.lags.delete(source);
    this.maxLag = Math.max(this.windowMs, ...this.lags.values());
    this.floor = null;
    this.drain(false);
  }

  push(flow: T, source: string): void {
    const prev = this.latest.get(source);
    if (flow.time && (prev === undefined || prev === null || compareTimestamps(flow.time, prev) > 0)) this.latest.set(source, flow.time);
    const t = flow.time;
    heapPush(this.heap, { flow, at: Date.now(), seconds: t ? Number(t.seconds) : -Infinity, nanos: t?.nanos ?? 0 });
    if (this.heap.length > this.maxBuffered) this.emit(heapPop(this.heap)!.flow);
    this.drain(false);
    if (this.heap.length > 0) this.timer ??= setInterval(() => this.drain(false), Math.max(5, this.windowMs / 4)).unref();
  }

  /** Emits what no stream can precede any more, or has waited its window (everything with `all`). */
  drain(all: boolean): void {
    const cutoff = Date.now() - this.maxLag;
    while (this.heap.length > 0) {
      const top = this.heap[0]!;
      if (!all && top.at > cutoff && !this.safe(top.flow.time)) break;
      this.emit(heapPop(this.heap)!.flow);
    }
    if (this.heap.length === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** Every open stream has sent a flow at least as recent as `t`. */
  private safe(t: Timestamp | null): boolean {
    if (this.floor && compareTimestamps(t, this.floor) <= 0) return true;
    let min: Timestamp | null = null;
    for (const latest of this.latest.values()) {
      if (latest === null) return false;
      if (min === null || compareTimestamps(latest, min) < 0) min = latest;
    }
    this.floor = min;
    return min !== null && compareTimestamps(t, min) <= 0;
  }

  /** Emits everything left (the follow ended). */
  finish(): void {
    this.drain(true);
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

const less = <T extends Timed>(a: Pending<T>, b: Pending<T>): boolean => a.seconds < b.seconds || (a.seconds === b.seconds && a.nanos < b.nanos);

function heapPush<T extends Timed>(h: Array<Pending<T>>, v: Pending<T>): void {
  h.push(v);
  let i = h.length - 1;
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (!less(h[i]!, h[p]!)) break;
    [h[i], h[p]] = [h[p]!, h[i]!];
    i = p;
  }
}

function heapPop<T extends Timed>(h: Array<Pending<T>>): Pending<T> | undefined {
  const top = h[0];
  const last = h.pop();
  if (h.length > 0 && last) {
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && less(h[l]!, h[m]!)) m = l;
      if (r < h.length && less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
  return top;
}
