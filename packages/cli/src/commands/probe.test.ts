import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
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
