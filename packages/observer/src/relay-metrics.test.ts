import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@weft/common';
import { checkDocumented, documentedMetrics, parseExposition, sampleValue, scrape, type Family } from '@weft/metrics/testing';
import { ObserverClient } from './client.js';
import { LocalObserver } from './local.js';
import { Relay } from './relay.js';
import { RelayMetrics } from './relay-metrics.js';
import { ObserverServer } from './server.js';
import { makeFlow } from './testing.js';
import type { GetFlowsResponse, ObserverNode } from './types.js';

/**
 * The relay's metrics over HTTP, read from a real Relay over two agents' real gRPC servers (unix
 * sockets), as `weft relay` wires them: what it serves is what docs/metrics.md lists, and the
 * numbers follow what happens (flows through, a follower, a node that goes away, a bad request).
 */
describe('relay metrics over HTTP', function () {
  this.timeout(20_000);
  let dir: string;
  const servers: ObserverServer[] = [];
  const agents = new Map<string, { local: LocalObserver; server: ObserverServer }>();
  let relay: Relay;
  let relayServer: ObserverServer;
  let metrics: RelayMetrics;
  let client: ObserverClient;
  let address: { host: string; port: number };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-relay-metrics-'));
    for (const node of ['n1', 'n2']) {
      const local = new LocalObserver({ cluster: 'c1', node, capacity: 100 });
      const server = new ObserverServer({ backend: local, cluster: 'c1', node, socket: join(dir, `${node}.sock`), log: silentLogger() });
      await server.start();
      agents.set(node, { local, server });
      servers.push(server);
    }
    const discover = async (): Promise<ObserverNode[]> =>
      ['n1', 'n2'].map((name) => ({ name, cluster: 'c1', address: `unix://${join(dir, `${name}.sock`)}`, state: 'NODE_STATE_UNKNOWN', version: '', uptimeNs: 0, numFlows: 0, maxFlows: 0, seenFlows: 0, error: '' }));
    relay = new Relay({ cluster: 'c1', discover, dial: (n) => new ObserverClient(n.address, { timeoutSeconds: 2, encodedFlows: true }), refreshMs: 200, sortWindowMs: 50, log: silentLogger() });
    relayServer = new ObserverServer({ backend: relay, cluster: 'c1', node: 'relay', socket: join(dir, 'relay.sock'), log: silentLogger() });
    metrics = new RelayMetrics({ cluster: 'c1', relay, calls: relayServer.stats, listen: '127.0.0.1:0', log: silentLogger() });
    await relay.start();
    await relayServer.start();
    address = await metrics.start();
    client = new ObserverClient(`unix://${join(dir, 'relay.sock')}`);
  });

  after(async () => {
    client?.close();
    relay?.stop();
    await relayServer?.stop();
    await metrics?.stop();
    for (const s of servers) await s.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function read(): Promise<Map<string, Family>> {
    const r = await scrape(address);
    assert.equal(r.status, 200);
    assert.match(r.contentType, /^text\/plain; version=0\.0\.4/);
    return parseExposition(r.body);
  }

  it('serves exactly what docs/metrics.md lists for the relay, every series with its cluster', async () => {
    const families = await read();
    checkDocumented(families, documentedMetrics(join(__dirname, '..', '..', '..', 'docs', 'metrics.md'), 'relay'), { cluster: 'c1' });
    assert.equal(sampleValue(families, 'weft_relay_peers', { kind: 'node', state: 'connected' }), 2);
    assert.equal(sampleValue(families, 'weft_relay_peers', { kind: 'cluster', state: 'connected' }), 0);
    assert.equal(sampleValue(families, 'weft_relay_node_discovery_failing'), 0);
    assert.equal(sampleValue(families, 'weft_relay_peer_unavailable_total', { kind: 'node' }), 0);
    assert.equal(sampleValue(families, 'weft_relay_streams', { mode: 'follow' }), 0);
  });

  it('counts flows in and out, the streams open and the calls by method and code', async () => {
    const got: GetFlowsResponse[] = [];
    const ac = new AbortController();
    // One message per flow, as Hubble's clients ask; the bad request in batches, as weft observe asks.
    const following = client.getFlows({ follow: true }, (r) => got.push(r), ac.signal, { perMessage: true });
    await until(() => [...agents.values()].every((a) => a.local.followerCount === 1));
    assert.equal(sampleValue(await read(), 'weft_relay_streams', { mode: 'follow' }), 1);
    for (let i = 0; i < 5; i++) for (const [node, a] of agents) a.local.add(makeFlow({ node, destination: { port: i } }));
    await until(() => got.filter((r) => r.flow).length === 10);
    await client.serverStatus();
    await assert.rejects(client.getFlows({ allow: [{ sourceIp: ['not-an-ip'] }] }, () => undefined));
    ac.abort();
    await following;
    await until(() => relayServer.stats.following === 0);

    const families = await read();
    assert.equal(sampleValue(families, 'weft_relay_received_flows_total'), 10);
    assert.ok(sampleValue(families, 'weft_relay_sent_responses_total')! >= 10);
    assert.equal(sampleValue(families, 'weft_relay_streams', { mode: 'follow' }), 0);
    assert.equal(sampleValue(families, 'weft_relay_requests_total', { method: 'GetFlows', code: 'CANCELLED' }), 1);
    assert.equal(sampleValue(families, 'weft_relay_requests_total', { method: 'GetFlowBatches', code: 'INVALID_ARGUMENT' }), 1);
    assert.equal(sampleValue(families, 'weft_relay_requests_total', { method: 'ServerStatus', code: 'OK' }), 1);
    assert.equal(sampleValue(families, 'weft_relay_sort_buffered_flows'), 0);
  });

  it('reports a node that stops answering, and counts it', async () => {
    await agents.get('n2')!.server.stop();
    let families = await read();
    await until(async () => {
      families = await read();
      return sampleValue(families, 'weft_relay_peers', { kind: 'node', state: 'unavailable' }) === 1;
    });
    assert.equal(sampleValue(families, 'weft_relay_peers', { kind: 'node', state: 'connected' }), 1);
    assert.equal(sampleValue(families, 'weft_relay_peer_unavailable_total', { kind: 'node' }), 1);
  });
});

async function until(cond: () => boolean | Promise<boolean>, ms = 8000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
