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
 */
import { writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { request } from 'node:http';
import { connect } from 'node:net';
import { parseArgs } from 'node:util';
import { UsageError } from '../output.js';

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
  const { values } = parseArgs({
    args: argv,
    options: { http: { type: 'string' }, tcp: { type: 'string' }, udp: { type: 'string' }, timeout: { type: 'string', default: '2000' }, size: { type: 'string' }, attempts: { type: 'string', default: '1' }, 'expect-clusters': { type: 'string' }, 'termination-log': { type: 'string' } },
  });
  const timeout = Number(values.timeout);
  const attempts = Number(values.attempts);
  if (!Number.isInteger(attempts) || attempts < 1) throw new UsageError(`Invalid --attempts ${JSON.stringify(values.attempts)}: use a positive integer`);
  const want = values['expect-clusters']?.split(',').filter(Boolean);
  if (want && !values.http) throw new UsageError('--expect-clusters needs --http');
  const size = values.size === undefined ? undefined : Number(values.size);
  if (size !== undefined && values.http) throw new UsageError('--size needs --tcp or --udp');
  const maxSize = values.udp ? MAX_UDP_SIZE : MAX_TCP_SIZE;
  if (size !== undefined && (!Number.isInteger(size) || size < 1 || size > maxSize)) throw new UsageError(`Invalid --size ${JSON.stringify(values.size)}: use 1-${maxSize} bytes`);
  const t0 = Date.now();
  let result: { ok: boolean; detail: string } = { ok: false, detail: '' };
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
