/**
 * FlowRing: the last `capacity` flows in arrival order, in a fixed array (adding is O(1) and
 * allocates nothing; the oldest flow is overwritten, which is the buffer's purpose, not a loss).
 * `seen` counts every flow ever added.
 */
import type { Flow } from './types.js';

export class FlowRing {
  private readonly slots: Array<Flow | undefined>;
  private next = 0;
  private count = 0;
  seen = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`A flow ring holds at least 1 flow, not ${capacity}`);
    this.slots = new Array<Flow | undefined>(capacity);
  }

  get size(): number {
    return this.count;
  }

  push(flow: Flow): void {
    this.slots[this.next] = flow;
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
    this.seen++;
  }

  /** The last `limit` flows that `match`, oldest first, walking back from the newest. */
  last(limit: number, match: (f: Flow) => boolean): Flow[] {
    const out: Flow[] = [];
    for (let i = 1; i <= this.count && out.length < limit; i++) {
      const f = this.slots[(this.next - i + this.capacity) % this.capacity]!;
      if (match(f)) out.push(f);
    }
    return out.reverse();
  }
}
