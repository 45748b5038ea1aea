import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@weft/common';
import { ObserverClient } from './client.js';
import { ObserverRequestError } from './errors.js';
import { LocalObserver } from './local.js';
import { ObserverServer } from './server.js';
import { makeFlow } from './testing.js';
import type { GetFlowsResponse } from './types.js';

describe('ObserverServer and ObserverClient (gRPC on a unix socket)', () => {
  let dir: string;
  let local: LocalObserver;
  let server: ObserverServer;
  let client: ObserverClient;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-observer-'));
    local = new LocalObserver({ cluster: 'c1', node: 'n1', capacity: 100, lostBpfEvents: async () => 7 });
    server = new ObserverServer({ backend: local, cluster: 'c1', node: 'n1', socket: join(dir, 'observer.sock'), queueLimit: 50, log: silentLogger() });
    await server.start();
    client = new ObserverClient(`unix://${join(dir, 'observer.sock')}`);
  });

  afterEach(async () => {
    client.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const collect = async (request: object, signal?: AbortSignal): Promise<GetFlowsResponse[]> => {
    const out: GetFlowsResponse[] = [];
    await client.getFlows(request, (r) => out.push(r), signal);
    return out;
  };

  it('answers the last flows that pass the filters, complete and in order, one to a message or in batches', async () => {
    for (let port = 1; port <= 30; port++) local.add(makeFlow({ destination: { port }, verdict: port % 3 === 0 ? 'DROPPED' : 'FORWARDED' }));
    const got = await collect({ number: 4, allow: [{ verdict: ['DROPPED'] }] });
    assert.deepEqual(got.map((r) => r.flow!.destination!.port), [21, 24, 27, 30]);
    const single: GetFlowsResponse[] = [];
    await client.getFlows({ number: 4, allow: [{ verdict: ['DROPPED'] }] }, (r) => single.push(r), undefined, { perMessage: true });
    assert.deepEqual(single, got);
    assert.equal(got[0]!.responseTypes, 'flow');
    assert.equal(got[0]!.flow!.verdict, 'DROPPED');
    assert.deepEqual(got[0]!.flow!.source!.labels, []);
    assert.equal((await collect({})).length, 20, "Hubble's default of 20");
  });

  it('follows live flows until the client cancels', async () => {
    local.add(makeFlow({ destination: { port: 1 } }));
    const ac = new AbortController();
    const seen: number[] = [];
    const done = client.getFlows({ number: 1, follow: true, deny: [{ destinationPort: [3] }] }, (r) => {
      seen.push(r.flow!.destination!.port);
      if (seen.length === 3) ac.abort();
    }, ac.signal);
    await waitFor(() => local.followerCount === 1);
    for (const port of [2, 3, 4]) local.add(makeFlow({ destination: { port } }));
    await done;
    assert.deepEqual(seen, [1, 2, 4]);
    await waitFor(() => local.followerCount === 0);
  });

  it('answers a bad filter with its message, as INVALID_ARGUMENT', async () => {
    await assert.rejects(collect({ allow: [{ sourceIp: ['not-an-ip'] }] }), (e: Error) => e instanceof ObserverRequestError && /refused the request: Invalid flow filter allow\[0\]\.sourceIp "not-an-ip"/.test(e.message));
  });

  it('serves deferred flows as the flows they build, from the buffer and to followers', async () => {
    let builds = 0;
    const deferred = (port: number) => ({ build: () => (builds++, makeFlow({ destination: { port } })) });
    local.add(deferred(1));
    local.add(deferred(2));
    assert.equal(builds, 0, 'nothing built while nobody reads');
    assert.deepEqual((await collect({ number: 1 })).map((r) => r.flow!.destination!.port), [2]);
    assert.equal(builds, 1);
    const ac = new AbortController();
    const live: number[] = [];
    const done = client.getFlows({ number: 0, follow: true }, (r) => {
      if (r.flow) live.push(r.flow.destination!.port);
      if (live.length === 1) ac.abort();
    }, ac.signal);
    await waitFor(() => local.followerCount === 1);
    local.add(deferred(3));
    await done.catch(() => undefined);
    assert.deepEqual(live, [3]);
  });

  for (const perMessage of [true, false]) it(`counts what a slow reader could not take and tells it with a LostEvent (${perMessage ? 'GetFlows' : 'GetFlowBatches'})`, async () => {
    const ac = new AbortController();
    const got: GetFlowsResponse[] = [];
    const done = client.getFlows({ follow: true }, (r) => {
      got.push(r);
      if (r.lostEvents) ac.abort();
    }, ac.signal, { perMessage });
    await waitFor(() => local.followerCount === 1);
    // 20,000 flows in one tick: grpc-js's buffer fills, 50 wait, the rest are lost.
    const big = 'x'.repeat(2000);
    for (let i = 0; i < 20_000; i++) local.add(makeFlow({ policy: big, destination: { port: i % 65535 } }));
    await done;
    const lost = got.find((r) => r.lostEvents)!.lostEvents!;
    assert.equal(lost.source, 'STREAM_QUEUE');
    const flows = got.filter((r) => r.flow).length;
    assert.equal(flows + lost.numEventsLost, 20_000, `${flows} delivered + ${lost.numEventsLost} lost`);
    assert.ok(lost.numEventsLost > 0);
    const status = await client.serverStatus();
    assert.equal(status.lostStreamFlows, lost.numEventsLost);
    assert.equal(status.lostBpfEvents, 7);
    assert.equal(status.seenFlows, 20_000);
    assert.equal(status.maxFlows, 100);
    assert.equal(status.numFlows, 100);
  });

  it('passes on another server\'s LostEvents that find its queue full, summed per node, after its own', async () => {
    // A backend in a relay's place: a burst of flows, then nodes' lost events while the queue is full.
    const big = 'x'.repeat(2000);
    const relayLike = {
      getFlows: async (_req: unknown, _match: unknown, sink: import('./backend.js').FlowSink) => {
        for (let i = 0; i < 20_000; i++) sink.flow(makeFlow({ policy: big, destination: { port: i % 65535 } }));
        for (const node of ['n7', 'n8', 'n7']) sink.lost({ source: 'STREAM_QUEUE', numEventsLost: 5, cluster: 'c1', node });
      },
      serverStatus: () => local.serverStatus(),
      getNodes: () => local.getNodes(),
    };
    const socket = join(dir, 'relay.sock');
    const relay = new ObserverServer({ backend: relayLike as never, cluster: 'c1', node: 'relay', socket, queueLimit: 50, log: silentLogger() });
    await relay.start();
    const c = new ObserverClient(`unix://${socket}`);
    try {
      const got: GetFlowsResponse[] = [];
      await c.getFlows({ number: 1 }, (r) => got.push(r));
      const lost = got.filter((r) => r.lostEvents).map((r) => [r.lostEvents!.node, Number(r.lostEvents!.numEventsLost)]);
      const own = lost.find(([node]) => node === 'relay')!;
      assert.ok(own, 'the relay\'s own loss is reported');
      assert.equal(got.filter((r) => r.flow).length + (own[1] as number), 20_000);
      assert.deepEqual(lost.filter(([node]) => node !== 'relay'), [['n7', 10], ['n8', 5]]);
    } finally {
      c.close();
      await relay.stop();
    }
  });

  it('names its own node in GetNodes', async () => {
    const nodes = await client.getNodes();
    assert.deepEqual(nodes.map((n) => [n.cluster, n.name, n.state]), [['c1', 'n1', 'NODE_CONNECTED']]);
  });
});

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}
