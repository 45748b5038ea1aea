/**
 * TimeMerger: flows from several streams, put back in time order. Each stream is in order; between
 * streams a flow may arrive late by up to the window. Flows wait `windowMs` (by arrival) and leave
 * oldest first; a full buffer lets its oldest go at once, so memory stays bounded and nothing is
 * dropped. Hubble's relay does the same with its sort buffer and drain timeout.
 */
import { compareTimestamps } from './time.js';
import type { Flow } from './types.js';

interface Pending {
  flow: Flow;
  at: number;
}

export class TimeMerger {
  private heap: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly emit: (flow: Flow) => void,
    private readonly windowMs = 200,
    private readonly maxBuffered = 10_000,
  ) {}

  push(flow: Flow): void {
    heapPush(this.heap, { flow, at: Date.now() });
    if (this.heap.length > this.maxBuffered) this.emit(heapPop(this.heap)!.flow);
    this.timer ??= setInterval(() => this.drain(false), Math.max(10, this.windowMs / 2)).unref();
  }

  /** Emits what has waited its window (everything with `all`). */
  drain(all: boolean): void {
    const cutoff = Date.now() - this.windowMs;
    // The heap is ordered by flow time; a flow that arrived recently holds back the later ones.
    while (this.heap.length > 0 && (all || this.heap[0]!.at <= cutoff)) this.emit(heapPop(this.heap)!.flow);
    if (this.heap.length === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  close(): void {
    this.drain(true);
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

const less = (a: Pending, b: Pending): boolean => compareTimestamps(a.flow.time, b.flow.time) < 0;

function heapPush(h: Pending[], v: Pending): void {
  h.push(v);
  let i = h.length - 1;
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (!less(h[i]!, h[p]!)) break;
    [h[i], h[p]] = [h[p]!, h[i]!];
    i = p;
  }
}

function heapPop(h: Pending[]): Pending | undefined {
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
