/**
 * FlowRing: the last `capacity` flows in arrival order, in a fixed array (adding is O(1) and
 * allocates nothing; the oldest flow is overwritten, which is the buffer's purpose, not a loss).
 * `seen` counts every flow ever added.
 *
 * A flow may come deferred (DeferredFlow): what it needs was taken when it happened, its Flow is
 * built the first time it is read and kept in its slot. An agent sees thousands of flows a second
 * and most are overwritten unread; building each as it comes was most of the agent's CPU under
 * many connections (docs/encryption.md).
 */
import type { Flow } from './types.js';

/** A flow whose Flow is built when it is first read. build() must give the same Flow every time. */
export interface DeferredFlow {
  build(): Flow;
}

export type StoredFlow = Flow | DeferredFlow;

export function isDeferred(f: StoredFlow): f is DeferredFlow {
  return typeof (f as Partial<DeferredFlow>).build === 'function';
}

export class FlowRing {
  private readonly slots: Array<StoredFlow | undefined>;
  private next = 0;
  private count = 0;
  seen = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`A flow ring holds at least 1 flow, not ${capacity}`);
    this.slots = new Array<StoredFlow | undefined>(capacity);
  }

  get size(): number {
    return this.count;
  }

  push(flow: StoredFlow): void {
    this.slots[this.next] = flow;
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
    this.seen++;
  }

  /** The last `limit` flows that `match`, oldest first, walking back from the newest. */
  last(limit: number, match: (f: Flow) => boolean): Flow[] {
    const out: Flow[] = [];
    for (let i = 1; i <= this.count && out.length < limit; i++) {
      const at = (this.next - i + this.capacity) % this.capacity;
      let f = this.slots[at]!;
      if (isDeferred(f)) this.slots[at] = f = f.build();
      if (match(f)) out.push(f);
    }
    return out.reverse();
  }
}
