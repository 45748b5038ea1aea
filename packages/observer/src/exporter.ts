/**
 * FlowExporter: a node's flows to a file, one JSON object per line, for a log shipper to carry to a
 * SIEM (Hubble's static exporter is the model). Flows pass allow/deny filters (FlowFilter, Hubble's
 * semantics), keep the fields of a field mask, and go to `filePath`; when the next line would take
 * the file past `maxSizeBytes`, the file is renamed to a backup named as lumberjack (Hubble's
 * rotation library) names them, `<name>-<UTC time>.<ext>` (flows-2026-12-04T10-11-12.345.json),
 * and a new file is started; the newest `maxBackups` backups are kept. With `compress` (Hubble's
 * fileCompress), each backup is gzipped to `<backup>.gz` after its rotation, away from the writer.
 *
 * export() runs on the agent's hot path, once per flow: a compiled predicate, a compiled
 * serializer, and an append to an in-memory queue. Nothing waits for the disk there. The queue is
 * written by one asynchronous writer (libuv's threads), a batch per write: on a coarse timer, and at
 * once when `flushBytes` are waiting. The queue is bounded (`maxQueueBytes`): when the disk does not
 * keep up, flows beyond it are dropped and counted, and a line
 * `{"time":…,"lostEvents":{"source":"EXPORT_QUEUE","numEventsLost":N,…}}` in the file says how many
 * were lost, where they would have been. Memory never grows with a slow or failing disk.
 *
 * Invariants: a line is never split across files (where a line goes is decided when it is queued,
 * against the bytes already bound for the file); a file never exceeds `maxSizeBytes`; the file is
 * checked before each write, so one removed (or replaced) under the exporter is started again,
 * directory and all, rather than written to unseen; every flow that passed the filters is either
 * in a file (`exported`) or counted as `lost`.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { basename, dirname, extname, isAbsolute, join } from 'node:path';
import { silentLogger, type Logger } from '@weft/common';
import { FlowExportError } from './errors.js';
import { compileFieldMask, type FlowSerializer } from './field-mask.js';
import { compileFlowFilters, type FlowPredicate } from './filter.js';
import { formatTimestamp, timestampFromMs } from './time.js';
import type { Flow, FlowFilterInput, LostEvent } from './types.js';

export interface FlowExporterOptions {
  /** The file flows are appended to (absolute); its directory is made if missing. */
  filePath: string;
  /** Flows pass when they match an allow filter (or there is none) and no deny filter. */
  allow?: readonly FlowFilterInput[];
  deny?: readonly FlowFilterInput[];
  /** Fields each line keeps ("time", "verdict", "source.pod", ...); empty: every field. */
  fieldMask?: readonly string[];
  /** A file is rotated before a line would take it past this size (default 10 MiB; at least 4 KiB). */
  maxSizeBytes?: number;
  /** Rotated files kept, the newest (default 5; 0 keeps none). */
  maxBackups?: number;
  /** Rotated files are gzipped, `<backup>.gz` (default false). */
  compress?: boolean;
  /** Bytes queued in memory at most; flows beyond are lost and counted (default 16 MiB). */
  maxQueueBytes?: number;
  /** How often the queue is written without reaching flushBytes (default 1000 ms). */
  flushIntervalMs?: number;
  /** Queued bytes that start a write at once (default 256 KiB). */
  flushBytes?: number;
  /** Named in the lost-flows line. */
  cluster?: string;
  node?: string;
  log?: Logger;
  /** The clock of backup names and lost-flows lines (tests). */
  now?: () => number;
}

/** What the exporter has done since it started (the metrics read these). */
export interface FlowExporterStats {
  /** Flows written to a file. */
  exported: number;
  /** Flows the allow and deny lists left out. */
  filtered: number;
  /** Flows that passed the filters and are in no file: the queue was full, or their write failed. */
  lost: number;
  /** Files renamed to a backup. */
  rotations: number;
  /** Bytes written (flows and lost-flows lines). */
  bytes: number;
  /** Bytes waiting in memory or being written. */
  queuedBytes: number;
}

export const EXPORT_DEFAULTS = { maxSizeBytes: 10 << 20, maxBackups: 5, maxQueueBytes: 16 << 20, flushIntervalMs: 1000, flushBytes: 256 << 10 } as const;
/** The smallest file size accepted: a few flows' lines. */
export const MIN_EXPORT_FILE_BYTES = 4096;

/**
 * Lines bound for one file, written in one go (one writev); `rotateBefore`: they start a new file.
 * Its buffers are views of the chunks lines are encoded into, so a line is encoded once, where it
 * is queued, and never copied again.
 */
interface Segment {
  buffers: Buffer[];
  bytes: number;
  flows: number;
  rotateBefore: boolean;
}

/** Lines are encoded into chunks of this size (one more when a line is longer). */
const CHUNK_BYTES = 256 << 10;
const NEWLINE = Buffer.from('\n');

type State = 'new' | 'running' | 'stopping' | 'stopped';

/** Room kept for a lost-flows line when deciding whether a flow fits in the queue. */
const NOTICE_ROOM = 512;

export class FlowExporter {
  readonly filePath: string;
  private readonly dir: string;
  private readonly match: FlowPredicate;
  private readonly serialize: FlowSerializer;
  private readonly maxSizeBytes: number;
  private readonly maxBackups: number;
  private readonly maxQueueBytes: number;
  private readonly flushIntervalMs: number;
  private readonly flushBytes: number;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly cluster: string;
  private readonly node: string;
  /** lumberjack's backup names, and a pattern that finds them (compressed or not: group 2 is `.gz`). */
  private readonly backupName: (ms: number) => string;
  private readonly backupPattern: RegExp;
  private readonly compress: boolean;
  /** Compressing and pruning backups, one at a time, behind the writer (stop() waits for it). */
  private housekeeping: Promise<void> = Promise.resolve();
  private state: State = 'new';
  private stopping: Promise<void> | undefined;
  private readonly counts = { exported: 0, filtered: 0, lost: 0, rotations: 0, bytes: 0 };
  /** Queued segments, oldest first; the last is `open`, where new lines go. */
  private segments: Segment[];
  private open: Segment;
  /** The chunk lines are encoded into; the open segment's bytes not yet in its buffers start at `openStart`. */
  private chunk = Buffer.allocUnsafeSlow(CHUNK_BYTES);
  private chunkUsed = 0;
  private openStart = 0;
  private queuedBytes = 0;
  /** Bytes bound for the current file: written plus queued for it. Decides rotation. */
  private planned = 0;
  /** Lost flows not yet recorded by a lost-flows line. */
  private unreported = 0;
  private file: { handle: FileHandle; ino: number; dev: number } | undefined;
  /** Bytes in the current file, as far as the exporter wrote them. */
  private fileSize = 0;
  /** The file ends in a partial line (a crash, a failed write): the next write starts a new line. */
  private needsNewline = false;
  private lastBackupMs = 0;
  private draining: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The error of the failing streak of writes, logged once. */
  private failing: string | undefined;

  constructor(options: FlowExporterOptions) {
    const bad = (problem: string): never => {
      throw new FlowExportError('configure the flow exporter', problem);
    };
    const { filePath } = options;
    if (typeof filePath !== 'string' || !isAbsolute(filePath) || filePath.endsWith('/') || /[\0\n]/.test(filePath)) bad(`filePath ${JSON.stringify(filePath)} must be an absolute file path`);
    const int = (name: keyof typeof EXPORT_DEFAULTS, min: number): number => {
      const v = options[name] ?? EXPORT_DEFAULTS[name];
      return Number.isInteger(v) && v >= min ? v : bad(`${name} ${JSON.stringify(v)} must be an integer >= ${min}`);
    };
    this.filePath = filePath;
    this.dir = dirname(filePath);
    this.maxSizeBytes = int('maxSizeBytes', MIN_EXPORT_FILE_BYTES);
    this.maxBackups = int('maxBackups', 0);
    this.maxQueueBytes = int('maxQueueBytes', 64 << 10);
    this.flushIntervalMs = int('flushIntervalMs', 1);
    this.flushBytes = int('flushBytes', 1);
    this.match = compileFlowFilters(options.allow, options.deny);
    this.serialize = compileFieldMask(options.fieldMask);
    this.cluster = options.cluster ?? '';
    this.node = options.node ?? '';
    this.log = options.log ?? silentLogger();
    this.now = options.now ?? Date.now;
    const ext = extname(filePath);
    const stem = basename(filePath).slice(0, basename(filePath).length - ext.length);
    this.backupPattern = new RegExp(`^${escapeRegExp(stem)}-(\\d{4}-\\d\\d-\\d\\dT\\d\\d-\\d\\d-\\d\\d\\.\\d{3})${escapeRegExp(ext)}(\\.gz)?$`);
    this.compress = options.compress ?? false;
    this.backupName = (ms) => join(this.dir, `${stem}-${new Date(ms).toISOString().slice(0, 23).replace(/:/g, '-')}${ext}`);
    this.open = newSegment(false);
    this.segments = [this.open];
  }

  /** Opens (or creates) the file and its directory; a FlowExportError says why it cannot. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new FlowExportError('start the flow exporter', `it is ${this.state}`);
    try {
      await this.openFile();
      const backups = await this.backups();
      const newest = backups[backups.length - 1];
      if (newest) this.lastBackupMs = Date.parse(`${this.backupPattern.exec(newest)![1]!.replace(/T(\d\d)-(\d\d)-(\d\d)/, 'T$1:$2:$3')}Z`);
    } catch (err) {
      await this.closeFile();
      throw new FlowExportError(`open the flow export file ${this.filePath}`, (err as Error).message, { cause: err });
    }
    this.planned = this.fileSize + (this.needsNewline ? 1 : 0);
    // Backups a stopped exporter left uncompressed are compressed now.
    await this.tidy();
    this.timer = setInterval(() => void this.kick(), this.flushIntervalMs);
    this.timer.unref();
    this.state = 'running';
    this.log.info({ file: this.filePath, maxSizeBytes: this.maxSizeBytes, maxBackups: this.maxBackups }, 'exporting flows');
  }

  /** The hot path: filter, serialize, queue. Flows before start() or after stop() are ignored. */
  export(flow: Flow): void {
    if (this.state !== 'running') return;
    if (!this.match(flow)) {
      this.counts.filtered++;
      return;
    }
    const line = `${this.serialize(flow)}\n`;
    // line.length is at most its bytes: the queue is full whatever they are.
    if (this.queuedBytes + line.length + (this.unreported > 0 ? NOTICE_ROOM : 0) > this.maxQueueBytes || !this.append(line, 1)) {
      this.counts.lost++;
      this.unreported++;
      return;
    }
    if (this.open.bytes >= this.flushBytes) void this.kick();
  }

  /** Writes everything queued (the file is written on its own; this waits for it, and for the backups' compression). */
  async flush(): Promise<void> {
    while (this.hasWork() || this.draining) await this.kick();
    await this.housekeeping;
  }

  /** Writes what is queued, records any loss not yet recorded, and closes the file. */
  async stop(): Promise<void> {
    if (this.state === 'new') this.state = 'stopped';
    if (this.state === 'running') {
      this.state = 'stopping';
      clearInterval(this.timer);
      if (this.unreported > 0) this.reportLost();
      this.stopping = this.flush().then(async () => {
        // Flows of the last writes, if they failed: one more try to say so in the file.
        if (this.unreported > 0) {
          this.reportLost();
          await this.flush();
        }
        await this.closeFile();
        await this.housekeeping;
        this.state = 'stopped';
        this.log.info({ ...this.stats }, 'flow export stopped');
      });
    }
    await this.stopping;
  }

  get stats(): FlowExporterStats {
    return { ...this.counts, queuedBytes: this.queuedBytes };
  }

  /** Encodes a line into the queue; false (nothing queued) when it does not fit in the queue or in a file. */
  private append(line: string, flows: number): boolean {
    if (flows > 0 && this.unreported > 0) this.reportLost();
    // UTF-8 takes at most 3 bytes per UTF-16 unit: room for that, and the line is never cut.
    const room = line.length * 3;
    if (this.chunkUsed + room > this.chunk.length) this.newChunk(room);
    const bytes = this.chunk.write(line, this.chunkUsed);
    if (bytes > this.maxSizeBytes || (flows > 0 && this.queuedBytes + bytes > this.maxQueueBytes)) return false;
    if (this.planned + bytes > this.maxSizeBytes) {
      // The line would take the file past its bound: it starts the next file.
      this.seal();
      this.open = newSegment(true);
      this.segments.push(this.open);
      this.planned = 0;
    }
    this.chunkUsed += bytes;
    this.open.bytes += bytes;
    this.open.flows += flows;
    this.planned += bytes;
    this.queuedBytes += bytes;
    return true;
  }

  /** The open segment's bytes of the chunk become one of its buffers. */
  private seal(): void {
    if (this.chunkUsed > this.openStart) this.open.buffers.push(this.chunk.subarray(this.openStart, this.chunkUsed));
    this.openStart = this.chunkUsed;
  }

  private newChunk(room: number): void {
    this.seal();
    this.chunk = Buffer.allocUnsafeSlow(Math.max(CHUNK_BYTES, room));
    this.chunkUsed = 0;
    this.openStart = 0;
  }

  /** Queues the line that records the flows lost since the last one (one line: NOTICE_ROOM is kept for it). */
  private reportLost(): void {
    const lost: LostEvent = { source: 'EXPORT_QUEUE', numEventsLost: this.unreported, cluster: this.cluster, node: this.node };
    const line = `${JSON.stringify({ time: formatTimestamp(timestampFromMs(this.now())), lostEvents: lost })}\n`;
    this.log.warn({ lost: this.unreported, lostTotal: this.counts.lost, file: this.filePath }, 'flows lost to the export: the disk did not keep up or writes failed');
    this.unreported = 0;
    this.append(line, 0);
  }

  private hasWork(): boolean {
    return this.segments.length > 1 || this.open.bytes > 0 || this.open.rotateBefore;
  }

  /** Starts the writer if there is work and it is not running; resolves when it is done. */
  private kick(): Promise<void> {
    if (!this.draining && this.hasWork()) {
      this.draining = this.drain()
        .catch((err: Error) => this.log.error({ err: err.message }, 'flow export writer failed'))
        .finally(() => {
          this.draining = undefined;
        });
    }
    return this.draining ?? Promise.resolve();
  }

  private async drain(): Promise<void> {
    while (this.hasWork()) {
      const segment = this.segments.shift()!;
      if (segment === this.open) {
        this.seal();
        this.open = newSegment(false);
        this.segments.push(this.open);
      }
      try {
        await this.write(segment);
      } finally {
        this.queuedBytes -= segment.bytes;
      }
    }
  }

  private async write(segment: Segment): Promise<void> {
    if (segment.rotateBefore) await this.rotate();
    if (segment.bytes === 0) return;
    let written = 0;
    try {
      const { handle } = await this.current();
      const buffers = this.needsNewline ? [NEWLINE, ...segment.buffers] : segment.buffers;
      const total = segment.bytes + (this.needsNewline ? 1 : 0);
      while (written < total) written += (await handle.writev(written === 0 ? buffers : after(buffers, written))).bytesWritten;
      this.fileSize += total;
      this.needsNewline = false;
      this.counts.exported += segment.flows;
      this.counts.bytes += total;
      if (this.failing !== undefined) this.log.info({ file: this.filePath }, 'flow export writes succeed again');
      this.failing = undefined;
    } catch (err) {
      this.counts.lost += segment.flows;
      this.unreported += segment.flows;
      const message = (err as Error).message;
      if (this.failing !== message) this.log.error({ err: message, file: this.filePath, lost: segment.flows }, 'cannot write flows to the export file; they are counted as lost');
      this.failing = message;
      if (written > 0) await this.undoPartialWrite(written);
      await this.closeFile();
    }
  }

  /** A write failed part way: cut the partial line off, or at least start the next write on a new line. */
  private async undoPartialWrite(written: number): Promise<void> {
    try {
      await this.file?.handle.truncate(this.fileSize);
    } catch {
      this.fileSize += written;
      this.needsNewline = true;
    }
  }

  /** The open file, after checking it is still the file at filePath (opened again, directory and all, if not). */
  private async current(): Promise<{ handle: FileHandle }> {
    if (this.file) {
      let reason: string;
      try {
        const st = await stat(this.filePath);
        if (st.ino === this.file.ino && st.dev === this.file.dev) return this.file;
        reason = 'replaced';
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        reason = 'removed';
      }
      this.log.warn({ file: this.filePath, reason }, 'the flow export file was removed or replaced; starting it again');
      await this.closeFile();
    }
    await this.openFile();
    return this.file!;
  }

  private async openFile(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    // 0600 as lumberjack's: flows say who talks to whom; the shipper reads them as root. a+: the
    // last byte is read, to know whether the file ends in a whole line.
    const handle = await open(this.filePath, 'a+', 0o600);
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new Error(`${this.filePath} is not a regular file`);
      this.needsNewline = false;
      if (st.size > 0) {
        const last = Buffer.alloc(1);
        await handle.read(last, 0, 1, st.size - 1);
        this.needsNewline = last[0] !== 0x0a;
      }
      this.file = { handle, ino: st.ino, dev: st.dev };
      this.fileSize = st.size;
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

  private async closeFile(): Promise<void> {
    const file = this.file;
    this.file = undefined;
    await file?.handle.close().catch((err: Error) => this.log.warn({ err: err.message, file: this.filePath }, 'cannot close the flow export file'));
  }

  /** The file becomes the newest backup; the oldest beyond maxBackups go. */
  private async rotate(): Promise<void> {
    await this.closeFile();
    // Unique and in order even for rotations within one millisecond.
    const ms = Math.max(this.now(), this.lastBackupMs + 1);
    this.lastBackupMs = ms;
    const backup = this.backupName(ms);
    try {
      await rename(this.filePath, backup);
      this.counts.rotations++;
    } catch (err) {
      // Gone already (removed under us): the next write starts a new file anyway.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.error({ err: (err as Error).message, file: this.filePath, backup }, 'cannot rotate the flow export file; appending to it');
    }
    void this.tidy();
  }

  /** Compresses (with `compress`) then prunes the backups, after whatever housekeeping runs now. */
  private tidy(): Promise<void> {
    this.housekeeping = this.housekeeping.then(async () => {
      if (this.compress) await this.compressBackups();
      await this.prune();
    });
    return this.housekeeping;
  }

  private async backups(): Promise<string[]> {
    return (await readdir(this.dir)).filter((name) => this.backupPattern.test(name)).sort();
  }

  /** Each backup not compressed yet: gzipped beside it (`.gz.tmp` until whole), then it goes. */
  private async compressBackups(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      return void this.log.warn({ err: (err as Error).message, dir: this.dir }, 'cannot list the flow export backups to compress them');
    }
    for (const name of names) {
      const path = join(this.dir, name);
      // A compression a stop or crash cut short: started again below.
      if (name.endsWith('.gz.tmp') && this.backupPattern.test(name.slice(0, -4))) await unlink(path).catch(() => undefined);
      const m = this.backupPattern.exec(name);
      if (!m || m[2]) continue;
      const gz = `${path}.gz`;
      try {
        await pipeline(createReadStream(path), createGzip(), createWriteStream(`${gz}.tmp`, { mode: 0o600 }));
        await rename(`${gz}.tmp`, gz);
        await unlink(path);
      } catch (err) {
        await unlink(`${gz}.tmp`).catch(() => undefined);
        // Pruned or removed meanwhile: nothing to keep.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.error({ err: (err as Error).message, file: path }, 'cannot compress a flow export backup; it stays uncompressed');
      }
    }
  }

  /** The oldest backups beyond maxBackups go (a backup and its .gz, if both are there, count once). */
  private async prune(): Promise<void> {
    try {
      const byTime = new Map<string, string[]>();
      for (const name of await this.backups()) {
        const time = this.backupPattern.exec(name)![1]!;
        byTime.set(time, [...(byTime.get(time) ?? []), name]);
      }
      const times = [...byTime.keys()].sort();
      for (const time of times.slice(0, Math.max(0, times.length - this.maxBackups))) for (const name of byTime.get(time)!) await unlink(join(this.dir, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ err: (err as Error).message, dir: this.dir }, 'cannot remove old flow export backups');
    }
  }
}

function newSegment(rotateBefore: boolean): Segment {
  return { buffers: [], bytes: 0, flows: 0, rotateBefore };
}

/** What of `buffers` is left after its first `skip` bytes (a short write). */
function after(buffers: readonly Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = [];
  for (const b of buffers) {
    if (skip >= b.length) skip -= b.length;
    else {
      out.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
  }
  return out;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
