import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@weft/common';
import { ObserverClient } from './client.js';
import { LocalObserver } from './local.js';
import { Relay } from './relay.js';
import { ObserverServer } from './server.js';
import { makeFlow } from './testing.js';
import type { GetFlowsResponse, ObserverNode } from './types.js';

describe('Relay (real gRPC servers on unix sockets)', function () {
  this.timeout(20_000);
  let dir: string;
  const agents = new Map<string, { local: LocalObserver; server: ObserverServer; socket: string }>();
  const relays: Array<{ relay: Relay; server: ObserverServer }> = [];
  const clients: ObserverClient[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'weft-relay-'));
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const { relay, server } of relays.splice(0)) {
      relay.stop();
      await server.stop();
    }
    for (const a of agents.values()) await a.server.stop();
    agents.clear();
    rmSync(dir, { recursive: true, force: true });
  });

  async function agent(cluster: string, node: string): Promise<LocalObserver> {
    const socket = join(dir, `${node}.sock`);
    const local = new LocalObserver({ cluster, node, capacity: 1000 });
    const server = new ObserverServer({ backend: local, cluster, node, socket, log: silentLogger() });
    await server.start();
    agents.set(node, { local, server, socket });
    return local;
  }

  async function relay(cluster: string, nodes: () => string[], remotes: Array<{ cluster: string; socket: string }> = []): Promise<{ relay: Relay; client: ObserverClient; socket: string }> {
    const discover = async (): Promise<ObserverNode[]> =>
      nodes().map((name) => ({ name, cluster, address: `unix://${join(dir, `${name}.sock`)}`, state: 'NODE_STATE_UNKNOWN', version: '', uptimeNs: 0, numFlows: 0, maxFlows: 0, seenFlows: 0, error: '' }));
    const r = new Relay({
      cluster,
      discover,
      dial: (n) => new ObserverClient(n.address, { timeoutSeconds: 2, encodedFlows: true }),
      remotes: () => remotes.map((x) => ({ cluster: x.cluster, address: x.socket, dial: () => new ObserverClient(`unix://${x.socket}`, { timeoutSeconds: 2, encodedFlows: true }) })),
      refreshMs: 200,
      sortWindowMs: 50,
      log: silentLogger(),
    });
    const socket = join(dir, `relay-${cluster}.sock`);
    const server = new ObserverServer({ backend: r, cluster, node: 'relay', socket, log: silentLogger() });
    await r.start();
    await server.start();
    relays.push({ relay: r, server });
    const client = new ObserverClient(`unix://${socket}`);
    clients.push(client);
    return { relay: r, client, socket };
  }

  const at = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 });

  it('merges every node\'s history by time and keeps the last N overall', async () => {
    const a = await agent('c1', 'n1');
    const b = await agent('c1', 'n2');
    for (let i = 0; i < 10; i++) (i % 2 ? a : b).add(makeFlow({ time: at(1_000_000 + i * 10), node: i % 2 ? 'n1' : 'n2', destination: { port: i } }));
    const { client } = await relay('c1', () => ['n1', 'n2']);
    const got: GetFlowsResponse[] = [];
    await client.getFlows({ number: 6 }, (r) => got.push(r));
    assert.deepEqual(got.map((r) => r.flow!.destination!.port), [4, 5, 6, 7, 8, 9]);
    const status = await client.serverStatus();
    assert.equal(status.numConnectedNodes, 2);
    assert.equal(status.seenFlows, 10);
    assert.equal(status.maxFlows, 2000);
  });

  it('follows every node, reports a node that goes away and follows it again when it is back', async () => {
    const a = await agent('c1', 'n1');
    await agent('c1', 'n2');
    const { client } = await relay('c1', () => ['n1', 'n2']);
    const got: GetFlowsResponse[] = [];
    const ac = new AbortController();
    const done = client.getFlows({ follow: true }, (r) => got.push(r), ac.signal);
    await until(() => a.followerCount === 1 && agents.get('n2')!.local.followerCount === 1);
    agents.get('n2')!.local.add(makeFlow({ node: 'n2', destination: { port: 2 } }));
    a.add(makeFlow({ node: 'n1', destination: { port: 1 } }));
    await until(() => got.filter((r) => r.flow).length === 2);

    await agents.get('n2')!.server.stop();
    await until(() => got.some((r) => r.nodeStatus?.node === 'n2' && r.nodeStatus.state === 'NODE_UNAVAILABLE'));
    const status = await client.serverStatus();
    assert.deepEqual(status.unavailableNodes, ['c1/n2']);
    const nodes = await client.getNodes();
    assert.deepEqual(nodes.map((n) => [n.name, n.state]), [['n1', 'NODE_CONNECTED'], ['n2', 'NODE_UNAVAILABLE']]);

    // n2 back (a restarted agent): followed again, from its new flows.
    const n2 = await agent('c1', 'n2');
    await until(() => n2.followerCount === 1, 10_000);
    n2.add(makeFlow({ node: 'n2', destination: { port: 22 } }));
    await until(() => got.some((r) => r.flow?.destination?.port === 22));
    assert.ok(got.some((r) => r.nodeStatus?.node === 'n2' && r.nodeStatus.state === 'NODE_CONNECTED'));
    ac.abort();
    await done;
  });

  it('reads its nodes no faster than its reader takes flows: the nodes drop and count, the relay loses none', async () => {
    const a = await agent('c1', 'n1');
    const { relay: r, client } = await relay('c1', () => ['n1']);
    // A reader that stops: its gate stays shut until we open it, and grpc-js stops reading for it.
    let open = false;
    let resume: (() => void) | undefined;
    const gate = { get open() { return open; }, whenOpen: (go: () => void) => (open ? go() : (resume = go)) };
    let flows = 0;
    let lost = 0;
    const ac = new AbortController();
    const done = client.getFlows({ follow: true }, (x) => {
      if (x.flow) flows++;
      else if (x.lostEvents) lost += Number(x.lostEvents.numEventsLost);
    }, ac.signal, { gate });
    await until(() => a.followerCount === 1);
    // Flows at a pace the node's stream carries, until someone's queue overflows: reading on, the
    // relay would fill its reader's buffers and its own queue (~100k flows) and drop; held back, it
    // leaves the flows in the node's buffers until the node's queue overflows (~160k).
    let made = 0;
    while (a.lostStreamFlows === 0 && r.lostStreamFlows === 0) {
      assert.ok(made < 500_000, `no one lost anything after ${made} flows`);
      for (let i = 0; i < 1000; i++, made++) a.add(makeFlow({ destination: { port: made % 65535 } }));
      await new Promise((go) => setTimeout(go, 1));
    }
    assert.equal(r.lostStreamFlows, 0, `the relay dropped flows instead of holding its node back (after ${made})`);
    open = true;
    resume?.();
    await until(() => flows + lost === made, 15_000);
    assert.equal(lost, a.lostStreamFlows, 'every flow lost is the node\'s, reported by it');
    assert.equal(r.lostStreamFlows, 0);
    ac.abort();
    await done;
  });

  it('follows a node that joins, and drops one that leaves', async () => {
    await agent('c1', 'n1');
    let names = ['n1'];
    const { client } = await relay('c1', () => names);
    const got: GetFlowsResponse[] = [];
    const ac = new AbortController();
    const done = client.getFlows({ follow: true }, (r) => got.push(r), ac.signal);
    const n3 = await agent('c1', 'n3');
    names = ['n1', 'n3'];
    await until(() => n3.followerCount === 1);
    n3.add(makeFlow({ node: 'n3', destination: { port: 3 } }));
    await until(() => got.some((r) => r.flow?.node === 'n3'));
    names = ['n1'];
    await until(() => got.some((r) => r.nodeStatus?.node === 'n3' && r.nodeStatus.state === 'NODE_GONE'));
    ac.abort();
    await done;
  });

  it('includes a connected cluster through its relay, asked for its own nodes only', async () => {
    const a = await agent('c1', 'n1');
    const b = await agent('c2', 'm1');
    a.add(makeFlow({ cluster: 'c1', node: 'n1', time: at(1_000_000) }));
    b.add(makeFlow({ cluster: 'c2', node: 'm1', time: at(1_000_001) }));
    // Each relay lists the other as a remote: a request must not travel in a circle.
    const c2socket = join(dir, 'relay-c2.sock');
    const c1socket = join(dir, 'relay-c1.sock');
    await relay('c2', () => ['m1'], [{ cluster: 'c1', socket: c1socket }]);
    const { client } = await relay('c1', () => ['n1'], [{ cluster: 'c2', socket: c2socket }]);
    const got: GetFlowsResponse[] = [];
    await client.getFlows({ number: 10 }, (r) => got.push(r));
    assert.deepEqual(got.filter((r) => r.flow).map((r) => `${r.flow!.cluster}/${r.flow!.node}`), ['c1/n1', 'c2/m1']);
    const nodes = await client.getNodes();
    assert.deepEqual(nodes.map((n) => `${n.cluster}/${n.name}`), ['c1/n1', 'c2/m1']);
    assert.equal((await client.serverStatus()).numConnectedNodes, 2);
  });
});

async function until(cond: () => boolean, ms = 8000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
