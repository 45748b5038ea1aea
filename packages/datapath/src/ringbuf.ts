/**
 * RingBufferReader: drains a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) with
 * ring_buffer__consume, which never blocks, on a coarse timer; the event loop
 * never waits on epoll. Each record is copied out of the shared pages before
 * the callback sees it, since the kernel reuses that memory as soon as the
 * consumer position moves past it.
 *
 * Invariants: the ring buffer is freed only when no consume is running on it
 * (stop() from inside a record callback is deferred to the end of the drain),
 * and a record callback that throws stops that drain after the record (later
 * records wait for the next one) and the error reaches the caller of consume()
 * or the onError of start().
 */
import type { BpfMap } from './bpf-map.js';
import { BpfSyscallError } from './errors.js';
import {
  captureLibbpfMessages,
  copyNative,
  lastErrno,
  libbpf,
  registerSampleCallback,
  unregisterCallback,
  type CallbackHandle,
  type RingBufferHandle,
} from './libbpf.js';

export type RecordHandler = (data: Buffer) => void;

export interface RingBufferStartOptions {
  /** Milliseconds between drains; 20 by default. */
  intervalMs?: number;
  /**
   * Receives what a drain throws (the record handler's errors, a failed
   * consume). Without it the error is thrown from the timer, as an uncaught
   * exception, like an 'error' event nobody listens to.
   */
  onError?: (err: unknown) => void;
}

export class RingBufferReader {
  readonly mapFd: number;
  readonly name: string;
  private rb: RingBufferHandle | undefined;
  private callback: CallbackHandle | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The handler of the drain running now, and of start(). */
  private sink: RecordHandler | undefined;
  private handler: RecordHandler | undefined;
  private failure: { error: unknown } | undefined;
  private consuming = false;
  private freeAfterConsume = false;

  /** `map` is a ringbuf map (or its descriptor), which must stay open while the reader runs. */
  constructor(map: BpfMap | number) {
    this.mapFd = typeof map === 'number' ? map : map.fd;
    this.name = typeof map === 'number' ? `ring buffer (fd ${map})` : `ring buffer ${map.name}`;
  }

  get running(): boolean {
    return this.timer !== undefined;
  }

  /** Drains every record there now into `onRecord` (default: the handler given to start); returns how many. */
  consume(onRecord?: RecordHandler): number {
    const sink = onRecord ?? this.handler;
    if (!sink) throw new TypeError(`${this.name}: consume() needs a record handler when the reader is not started`);
    const rb = this.open();
    this.sink = sink;
    this.consuming = true;
    let r: number;
    try {
      r = libbpf().ringBufferConsume(rb);
    } finally {
      this.consuming = false;
      this.sink = undefined;
      if (this.freeAfterConsume) this.release();
    }
    const failure = this.failure;
    this.failure = undefined;
    if (failure) throw failure.error;
    if (r < 0) throw new BpfSyscallError(`consume ${this.name}`, -r);
    return r;
  }

  /** Drains every `intervalMs` into `onRecord` until stop(). The timer does not keep the process alive. */
  start(onRecord: RecordHandler, options: RingBufferStartOptions = {}): void {
    if (this.timer) throw new Error(`${this.name}: the reader is already started`);
    const intervalMs = options.intervalMs ?? 20;
    this.open();
    this.handler = onRecord;
    const { onError } = options;
    this.timer = setInterval(() => {
      try {
        this.consume();
      } catch (err) {
        if (!onError) throw err;
        onError(err);
      }
    }, intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and frees the ring buffer; start() or consume() may open it again. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.handler = undefined;
    if (this.consuming) this.freeAfterConsume = true;
    else this.release();
  }

  private open(): RingBufferHandle {
    if (this.rb) return this.rb;
    const lib = libbpf();
    const callback = registerSampleCallback((_ctx, data, size) => this.deliver(data, Number(size)));
    let errno = 0;
    const { result: rb, messages } = captureLibbpfMessages(() => {
      const h = lib.ringBufferNew(this.mapFd, callback, null, null);
      if (!h) errno = lastErrno();
      return h;
    });
    if (!rb) {
      unregisterCallback(callback);
      throw new BpfSyscallError(`open ${this.name}`, errno, messages.join('; ') || undefined);
    }
    this.rb = rb;
    this.callback = callback;
    return rb;
  }

  /** The sample callback: 0 continues the drain, a negative value ends it after this record. */
  private deliver(data: bigint, size: number): number {
    const sink = this.sink;
    if (!sink || this.failure) return -1;
    try {
      sink(copyNative(data, size));
      return 0;
    } catch (error) {
      this.failure = { error };
      return -1;
    }
  }

  private release(): void {
    this.freeAfterConsume = false;
    const lib = libbpf();
    if (this.rb) lib.ringBufferFree(this.rb);
    this.rb = undefined;
    // Only after ring_buffer__free: libbpf holds the callback pointer until then.
    if (this.callback) unregisterCallback(this.callback);
    this.callback = undefined;
  }
}
