/**
 * RingBufferReader: drains a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) from its
 * own memory, as libbpf's ring_buffer__consume does, on a coarse timer; the
 * event loop never waits on epoll. The map's pages are mapped once: the
 * consumer page read-write, the producer page and the data area (mapped twice
 * back to back by the kernel, so a record that wraps is contiguous) read-only.
 * A drain crosses no FFI boundary per record: at 50k records/s a callback from
 * native code and a fresh external buffer per record cost the agent more than
 * everything it then does with the record.
 *
 * Protocol (kernel/bpf/ringbuf.c): each record starts with an 8-byte header,
 * a 32-bit length whose top bits are BUSY (still being written) and DISCARD
 * (dropped by its producer); records are 8-byte aligned. The reader loads the
 * producer position, walks records up to it, stops at a BUSY one, and stores
 * its consumer position after each pass, which frees the room.
 *
 * Invariants: the callback gets a view of the record in the shared pages,
 * valid only during the call (the kernel reuses that memory once the consumer
 * position moves past it; a handler that keeps a record copies it); the
 * pages are unmapped only when no drain is running (stop() from inside a
 * record callback is deferred to the end of the drain); a record callback
 * that throws stops that drain after the record (later records wait for the
 * next one) and the error reaches the caller of consume() or the onError of
 * start(); a header that cannot be (a length beyond the ring) stops the
 * reader with an error instead of reading past it.
 */
import { mapInfoOf, type BpfMap } from './bpf-map.js';
import { BpfSyscallError, RingBufferCorruptError } from './errors.js';
import { lastErrno, libbpf, nativeView, type MappedMemory } from './libbpf.js';

/** Gets each record as a view of the ring's memory, valid only until it returns. */
export type RecordHandler = (data: Buffer) => void;

export interface RingBufferStartOptions {
  /**
   * Milliseconds between drains; 100 by default: fewer, larger drains cost less per record (a
   * 1 MiB ring of 80-byte records still holds 130,000 records a second at that pace).
   */
  intervalMs?: number;
  /**
   * Receives what a drain throws (the record handler's errors, a corrupt
   * ring). Without it the error is thrown from the timer, as an uncaught
   * exception, like an 'error' event nobody listens to.
   */
  onError?: (err: unknown) => void;
}

/** linux/bpf.h. */
const BPF_RINGBUF_BUSY_BIT = 0x80000000;
const BPF_RINGBUF_DISCARD_BIT = 0x40000000;
const BPF_RINGBUF_HDR_SZ = 8;
const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const MAP_FAILED = 0xffffffffffffffffn;

/** The mapped pages of one ring buffer. */
interface Ring {
  consumer: MappedMemory;
  producer: MappedMemory;
  page: number;
  /** The data area's size (the map's max_entries, a power of two). */
  size: number;
  consumerPos: BigUint64Array;
  producerPos: BigUint64Array;
  /** The data area twice, as bytes and as 32-bit words (headers). */
  bytes: Uint8Array;
  words: Uint32Array;
}

export class RingBufferReader {
  readonly mapFd: number;
  readonly name: string;
  private readonly maxEntries: number | undefined;
  private ring: Ring | undefined;
  private timer: NodeJS.Timeout | undefined;
  private handler: RecordHandler | undefined;
  private consuming = false;
  private releaseAfterConsume = false;

  /** `map` is a ringbuf map (or its descriptor), which must stay open while the reader runs. */
  constructor(map: BpfMap | number) {
    this.mapFd = typeof map === 'number' ? map : map.fd;
    this.name = typeof map === 'number' ? `ring buffer (fd ${map})` : `ring buffer ${map.name}`;
    this.maxEntries = typeof map === 'number' ? undefined : map.maxEntries;
  }

  get running(): boolean {
    return this.timer !== undefined;
  }

  /** Drains every record there now into `onRecord` (default: the handler given to start); returns how many. */
  consume(onRecord?: RecordHandler): number {
    const sink = onRecord ?? this.handler;
    if (!sink) throw new TypeError(`${this.name}: consume() needs a record handler when the reader is not started`);
    const ring = this.open();
    this.consuming = true;
    try {
      return this.drain(ring, sink);
    } finally {
      this.consuming = false;
      if (this.releaseAfterConsume) this.release();
    }
  }

  /** Drains every `intervalMs` into `onRecord` until stop(). The timer does not keep the process alive. */
  start(onRecord: RecordHandler, options: RingBufferStartOptions = {}): void {
    if (this.timer) throw new Error(`${this.name}: the reader is already started`);
    const intervalMs = options.intervalMs ?? 100;
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

  /** Stops the timer and unmaps the ring buffer; start() or consume() may map it again. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.handler = undefined;
    if (this.consuming) this.releaseAfterConsume = true;
    else this.release();
  }

  /**
   * libbpf's ringbuf_process_ring: records up to the producer position, again while new ones came.
   * The consumer position is stored once per pass over what was there (and when a handler throws,
   * just past its record), not after every record.
   */
  private drain(ring: Ring, sink: RecordHandler): number {
    const mask = ring.size - 1;
    let stored = Number(Atomics.load(ring.consumerPos, 0));
    let cons = stored;
    let count = 0;
    try {
      for (let more = true; more; ) {
        more = false;
        const prod = Number(Atomics.load(ring.producerPos, 0));
        while (cons < prod) {
          const off = cons & mask;
          const header = Atomics.load(ring.words, off >>> 2);
          if (header & BPF_RINGBUF_BUSY_BIT) return count;
          const len = header & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
          if (len + BPF_RINGBUF_HDR_SZ > ring.size) throw new RingBufferCorruptError(this.name, cons, len, ring.size);
          more = true;
          cons += (len + BPF_RINGBUF_HDR_SZ + 7) & ~7;
          if (!(header & BPF_RINGBUF_DISCARD_BIT)) {
            count++;
            // A view of the shared pages: the kernel reuses them only once the consumer position moves past.
            sink(Buffer.from(ring.bytes.buffer, ring.bytes.byteOffset + off + BPF_RINGBUF_HDR_SZ, len));
          }
        }
        Atomics.store(ring.consumerPos, 0, BigInt(cons));
        stored = cons;
      }
      return count;
    } finally {
      // A throwing handler's record is consumed too; the records after it wait for the next drain.
      if (cons !== stored) Atomics.store(ring.consumerPos, 0, BigInt(cons));
    }
  }

  private open(): Ring {
    if (this.ring) return this.ring;
    const lib = libbpf();
    const size = this.maxEntries ?? mapInfoOf(this.mapFd, this.name).max_entries;
    const page = lib.getpagesize();
    const consumer = lib.mmap(null, page, PROT_READ | PROT_WRITE, MAP_SHARED, this.mapFd, 0);
    if (BigInt(consumer) === MAP_FAILED) throw new BpfSyscallError(`map the consumer page of ${this.name}`, lastErrno());
    const producer = lib.mmap(null, page + 2 * size, PROT_READ, MAP_SHARED, this.mapFd, page);
    if (BigInt(producer) === MAP_FAILED) {
      const errno = lastErrno();
      lib.munmap(consumer, page);
      throw new BpfSyscallError(`map the producer page and data of ${this.name}`, errno);
    }
    const data = nativeView(producer, page + 2 * size);
    this.ring = {
      consumer,
      producer,
      page,
      size,
      consumerPos: new BigUint64Array(nativeView(consumer, 8)),
      producerPos: new BigUint64Array(data, 0, 1),
      bytes: new Uint8Array(data, page, 2 * size),
      words: new Uint32Array(data, page, (2 * size) / 4),
    };
    return this.ring;
  }

  private release(): void {
    this.releaseAfterConsume = false;
    const ring = this.ring;
    this.ring = undefined;
    if (!ring) return;
    const lib = libbpf();
    lib.munmap(ring.producer, ring.page + 2 * ring.size);
    lib.munmap(ring.consumer, ring.page);
  }
}
