/**
 * RingBufferReader: drains a BPF ring buffer on a coarse timer with
 * ring_buffer__consume (never blocks the event loop). Records are copied out
 * before the callback returns, since libbpf reuses the memory.
 */
import { koffi, libbpf } from './libbpf.js';

export class RingBufferReader {
  private rb: unknown;
  private callback: unknown;
  private timer: NodeJS.Timeout | undefined;
  private onRecord: ((data: Buffer) => void) | undefined;

  constructor(private readonly mapFd: number) {}

  private open(): void {
    if (this.rb) return;
    const l = libbpf();
    this.callback = koffi.register((_ctx: unknown, data: unknown, size: number) => {
      const copy = Buffer.from(koffi.view(data, Number(size))).subarray(0, Number(size));
      this.onRecord?.(Buffer.from(copy));
      return 0;
    }, koffi.pointer(l.types.RingCallback));
    this.rb = l.ringbuf_new(this.mapFd, this.callback, null, null);
    if (!this.rb) throw new Error('Cannot open ring buffer: ring_buffer__new failed');
  }

  /** Drains what is there now; returns the number of records. */
  consume(onRecord: (data: Buffer) => void): number {
    this.open();
    this.onRecord = onRecord;
    return libbpf().ringbuf_consume(this.rb) as number;
  }

  start(onRecord: (data: Buffer) => void, options: { intervalMs?: number } = {}): void {
    this.open();
    this.onRecord = onRecord;
    this.timer = setInterval(() => libbpf().ringbuf_consume(this.rb), options.intervalMs ?? 20);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.rb) libbpf().ringbuf_free(this.rb);
    this.rb = undefined;
    if (this.callback) koffi.unregister(this.callback as bigint);
    this.callback = undefined;
  }
}
