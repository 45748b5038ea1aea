/**
 * `weft probe --http URL | --tcp HOST:PORT | --udp HOST:PORT [--timeout MS] [--size BYTES]`:
 * one connection attempt from wherever it runs (the connectivity test runs it
 * inside pods). Prints JSON; exit 0 when the peer answered, 1 when not.
 *
 * `--size` (TCP, UDP) sends that many bytes and succeeds only when all of them
 * come back from the echo server: a UDP datagram larger than the path's MTU
 * leaves in IP fragments, a TCP write larger than it needs path-MTU discovery.
 *
 * For probes run as Kubernetes pods (`weft connectivity test --context`):
 * `--attempts N` tries up to N times, 500 ms apart, and stops at the first
 * answer (a new pod's identity may take a moment to reach the peer's node; a
 * denied case then gets N chances to leak); `--expect-clusters a,b` (HTTP)
 * succeeds only once answers came from each named cluster (the echo server
 * names its cluster); `--termination-log FILE` also writes the JSON there, so
 * it becomes the container's termination message.
 *
 * `--stream SECONDS` (TCP) keeps one connection to the echo server for that long, writing 1 KiB
 * every 20 ms, and succeeds only when every byte came back, in order and unchanged, on that one
 * connection: what a rolling upgrade of the agents must not break. It reports the bytes and the
 * longest wait for an echo (the stall a restart caused). SIGTERM ends the writing early (a test
 * that knows when what it watches is over), the outstanding bytes still checked.
 */
import { writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { request } from 'node:http';
import { connect } from 'node:net';
import { COMMANDS } from '../command-table.js';
import { UsageError } from '../output.js';
import { parseCommandArgs } from '../parse-command-args.js';

function hostPort(v: string): { host: string; port: number } {
  const i = v.lastIndexOf(':');
  const port = Number(v.slice(i + 1));
  if (i < 1 || !Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`Invalid target ${JSON.stringify(v)}: use HOST:PORT`);
  return { host: v.slice(0, i), port };
}

interface Target {
  http?: string | undefined;
  tcp?: string | undefined;
  udp?: string | undefined;
}

/** The largest UDP payload over IPv4 (65535 - 20 - 8); TCP streams are capped only to bound memory. */
const MAX_UDP_SIZE = 65_507;
const MAX_TCP_SIZE = 16 << 20;

/** `size` bytes starting with the marker, so an echo from an older probe cannot pass for this one. */
function payload(marker: string, size: number | undefined): Buffer {
  if (size === undefined) return Buffer.from(marker);
  const b = Buffer.alloc(size, '.');
  b.write(marker.slice(0, size));
  for (let i = marker.length; i < size; i++) b[i] = 0x30 + (i % 10);
  return b;
}

export async function probe(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS.probe, argv);
  const timeout = Number(values.timeout);
  const attempts = Number(values.attempts);
  if (!Number.isInteger(attempts) || attempts < 1) throw new UsageError(`Invalid --attempts ${JSON.stringify(values.attempts)}: use a positive integer`);
  const want = values['expect-clusters']?.split(',').filter(Boolean);
  if (want && !values.http) throw new UsageError('--expect-clusters needs --http');
  const size = values.size === undefined ? undefined : Number(values.size);
  if (size !== undefined && values.http) throw new UsageError('--size needs --tcp or --udp');
  const maxSize = values.udp ? MAX_UDP_SIZE : MAX_TCP_SIZE;
  if (size !== undefined && (!Number.isInteger(size) || size < 1 || size > maxSize)) throw new UsageError(`Invalid --size ${JSON.stringify(values.size)}: use 1-${maxSize} bytes`);
  const stream = values.stream === undefined ? undefined : Number(values.stream);
  if (stream !== undefined && (!values.tcp || size !== undefined || attempts > 1)) throw new UsageError('--stream needs --tcp, without --size or --attempts');
  if (stream !== undefined && (!Number.isFinite(stream) || stream <= 0 || stream > 3600)) throw new UsageError(`Invalid --stream ${JSON.stringify(values.stream)}: use 1-3600 seconds`);
  const t0 = Date.now();
  let result: { ok: boolean; detail: string } = { ok: false, detail: '' };
  if (stream !== undefined) {
    const r = await streamOnce(values.tcp!, timeout, stream * 1000);
    const out = JSON.stringify({ ...r, ms: Date.now() - t0 });
    process.stdout.write(out + '\n');
    if (values['termination-log']) writeFileSync(values['termination-log'], out);
    process.exitCode = r.ok ? 0 : 1;
    return;
  }
  const answered = new Set<string>();
  let n = 0;
  while (n < attempts) {
    if (n > 0) await new Promise((r) => setTimeout(r, 500));
    n++;
    result = await once(values, timeout, size);
    if (want && result.ok) {
      try {
        answered.add((JSON.parse(result.detail) as { cluster?: string }).cluster ?? '?');
      } catch {
        answered.add('?');
      }
      result = { ok: want.every((c) => answered.has(c)), detail: `answered by ${[...answered].sort().join(', ')}` };
    }
    if (result.ok) break;
  }
  if (want && !result.ok) result = { ok: false, detail: `answered by ${[...answered].sort().join(', ') || 'none'} (expected ${want.join(', ')})` };
  const out = JSON.stringify({ ...result, ms: Date.now() - t0, ...(attempts > 1 ? { attempts: n } : {}), ...(want ? { clusters: [...answered].sort() } : {}) });
  process.stdout.write(out + '\n');
  if (values['termination-log']) writeFileSync(values['termination-log'], out);
  process.exitCode = result.ok ? 0 : 1;
}

/** One attempt. */
async function once(values: Target, timeout: number, size: number | undefined): Promise<{ ok: boolean; detail: string }> {
  let result: { ok: boolean; detail: string };
  if (values.http) {
    result = await new Promise((resolve) => {
      // A connection of its own (no keep-alive agent): a Service's backend is picked per connection.
      const req = request(values.http!, { timeout, agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ ok: res.statusCode === 200, detail: body.trim() }));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => resolve({ ok: false, detail: e.message }));
      req.end();
    });
  } else if (values.tcp) {
    const { host, port } = hostPort(values.tcp);
    result = await new Promise((resolve) => {
      const s = connect({ host, port, timeout });
      const sent = payload(`weft-probe-${process.pid}`, size);
      const got: Buffer[] = [];
      let n = 0;
      s.on('connect', () => s.write(sent));
      s.on('data', (d) => {
        got.push(d);
        n += d.length;
        if (n < sent.length) return;
        s.destroy();
        resolve({ ok: Buffer.concat(got).subarray(0, sent.length).equals(sent), detail: 'echoed' });
      });
      s.on('timeout', () => {
        s.destroy();
        resolve({ ok: false, detail: n ? `timeout after ${n} of ${sent.length} bytes echoed` : 'timeout' });
      });
      s.on('error', (e) => resolve({ ok: false, detail: e.message }));
    });
  } else if (values.udp) {
    const { host, port } = hostPort(values.udp);
    result = await new Promise((resolve) => {
      const s = createSocket('udp4');
      const marker = payload(`weft-probe-${process.pid}`, size);
      const timer = setTimeout(() => {
        s.close();
        resolve({ ok: false, detail: 'timeout' });
      }, timeout);
      s.on('message', (m) => {
        clearTimeout(timer);
        s.close();
        resolve({ ok: m.equals(marker), detail: 'echoed' });
      });
      s.on('error', (e) => resolve({ ok: false, detail: e.message }));
      s.send(marker, port, host);
    });
  } else {
    throw new UsageError('weft probe needs --http URL, --tcp HOST:PORT or --udp HOST:PORT');
  }
  return result;
}

/** The stream's byte at `offset`: a sequence an echo of any other offset cannot match. */
const streamByte = (offset: number): number => offset % 251;

/** `--stream`: one TCP connection for `ms`, every byte echoed back in order. */
async function streamOnce(target: string, connectTimeout: number, ms: number): Promise<{ ok: boolean; detail: string; sent: number; echoed: number; longestStallMs: number }> {
  const { host, port } = hostPort(target);
  return new Promise((resolve) => {
    const s = connect({ host, port, timeout: connectTimeout });
    let sent = 0;
    let echoed = 0;
    let lastEcho = Date.now();
    let longestStallMs = 0;
    let writer: NodeJS.Timeout | undefined;
    let stopped = false;
    let done = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (ok: boolean, detail: string): void => {
      if (done) return;
      done = true;
      clearInterval(writer);
      for (const t of timers) clearTimeout(t);
      s.destroy();
      process.removeListener('SIGTERM', stop);
      resolve({ ok, detail, sent, echoed, longestStallMs: Math.max(longestStallMs, echoed < sent ? Date.now() - lastEcho : 0) });
    };
    // After `ms` (or SIGTERM), writing stops; what is outstanding has 30 s to come back.
    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      clearInterval(writer);
      if (echoed === sent) return finish(true, 'every byte echoed');
      timers.push(setTimeout(() => finish(false, `${sent - echoed} of ${sent} bytes never came back`), 30_000));
    };
    s.once('connect', () => {
      s.setTimeout(0);
      lastEcho = Date.now();
      writer = setInterval(() => {
        const chunk = Buffer.alloc(1024);
        for (let i = 0; i < chunk.length; i++) chunk[i] = streamByte(sent + i);
        sent += chunk.length;
        s.write(chunk);
      }, 20);
      timers.push(setTimeout(stop, ms));
      process.once('SIGTERM', stop);
    });
    s.on('data', (d: Buffer) => {
      const now = Date.now();
      if (echoed < sent) longestStallMs = Math.max(longestStallMs, now - lastEcho);
      lastEcho = now;
      for (let i = 0; i < d.length; i++) {
        if (d[i] !== streamByte(echoed + i)) return finish(false, `byte ${echoed + i} came back changed`);
      }
      echoed += d.length;
      if (echoed > sent) return finish(false, `${echoed - sent} bytes came back that were never sent`);
      if (stopped && echoed === sent) finish(true, 'every byte echoed');
    });
    s.on('timeout', () => finish(false, 'connect timeout'));
    s.on('error', (e) => finish(false, `${e.message} after ${echoed} of ${sent} bytes echoed`));
    s.on('close', () => finish(false, `the connection closed after ${echoed} of ${sent} bytes echoed`));
  });
}
