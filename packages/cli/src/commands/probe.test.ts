import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { probe } from './probe.js';

describe('weft probe --http', () => {
  let server: Server;
  let connections = 0;

  before(async () => {
    // Answers as cluster "a" on its first connection and "b" on any later one, keeping connections open as servers do.
    server = createServer({ keepAliveTimeout: 60_000 }, (_req, res) => res.end(JSON.stringify({ cluster: connections === 1 ? 'a' : 'b' })));
    server.on('connection', () => (connections += 1));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('opens a new connection for every attempt, as a Service picks its backend per connection', async () => {
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => out.push(chunk) > 0) as typeof process.stdout.write;
    try {
      await probe(['--http', `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, '--attempts', '3', '--expect-clusters', 'a,b']);
    } finally {
      process.stdout.write = write;
      process.exitCode = undefined;
    }
    const result = JSON.parse(out.join('')) as { ok: boolean; clusters: string[]; attempts: number };
    assert.deepEqual({ ok: result.ok, clusters: result.clusters, attempts: result.attempts }, { ok: true, clusters: ['a', 'b'], attempts: 2 });
    assert.equal(connections, 2);
  });
});

describe('weft probe --tcp --stream', () => {
  /** A TCP echo server that passes `alter` over what it echoes. */
  const echo = async (alter: (d: Buffer, socket: Socket) => Buffer | undefined): Promise<NetServer> => {
    const server = createNetServer((socket) => socket.on('data', (d) => {
      const out = alter(d, socket);
      if (out) socket.write(out);
    }));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return server;
  };
  const run = async (server: NetServer, seconds: string): Promise<{ ok: boolean; detail: string; sent: number; echoed: number }> => {
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => out.push(chunk) > 0) as typeof process.stdout.write;
    try {
      await probe(['--tcp', `127.0.0.1:${(server.address() as AddressInfo).port}`, '--stream', seconds]);
    } finally {
      process.stdout.write = write;
      process.exitCode = undefined;
      await new Promise((r) => server.close(r));
    }
    return JSON.parse(out.join('')) as { ok: boolean; detail: string; sent: number; echoed: number };
  };

  it('succeeds when every byte comes back on the one connection', async () => {
    const r = await run(await echo((d) => d), '0.3');
    assert.equal(r.ok, true, r.detail);
    assert.ok(r.sent > 0 && r.echoed === r.sent);
  });

  it('fails on a changed byte, and on a connection that closes midway', async () => {
    let n = 0;
    const changed = await run(await echo((d) => (++n === 3 ? Buffer.concat([d.subarray(0, 10), Buffer.from([255]), d.subarray(11)]) : d)), '0.3');
    assert.equal(changed.ok, false);
    assert.match(changed.detail, /came back changed/);
    let m = 0;
    const closed = await run(await echo((d, socket) => (++m === 3 ? void socket.destroy() : d)), '0.3');
    assert.equal(closed.ok, false);
    assert.match(closed.detail, /closed after|ECONNRESET/);
  });

  it('stops writing at SIGTERM and still checks every byte (a test that knows when to end it)', async () => {
    const server = await echo((d) => d);
    try {
      const child = spawn(process.execPath, [join(__dirname, '..', '..', 'bin', 'weft.js'), 'probe', '--tcp', `127.0.0.1:${(server.address() as AddressInfo).port}`, '--stream', '600'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d));
      await new Promise((r) => setTimeout(r, 1000));
      const t0 = Date.now();
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.ok(Date.now() - t0 < 5000, 'it ends at once, not after 600 s');
      assert.equal(code, 0);
      const r = JSON.parse(out) as { ok: boolean; sent: number; echoed: number };
      assert.equal(r.ok, true);
      assert.ok(r.sent > 0 && r.echoed === r.sent);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
