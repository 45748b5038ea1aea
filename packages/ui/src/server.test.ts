// ServiceMapServer on a real loopback port: the page's files, /api/graph with filters, the event
// stream (snapshot, deltas, the sources' state), and what it refuses.
import assert from 'node:assert/strict';
import { request, type IncomingMessage } from 'node:http';
import { silentLogger } from '@weft/common';
import { makeFlow, type FlowEndpoint } from '@weft/observer';
import { UiListenError } from './errors.js';
import { ServiceMap } from './service-map.js';
import { ServiceMapServer } from './server.js';
import type { FollowStatus } from './types.js';

const pod = (cluster: string, namespace: string, app: string, port = 0): Partial<FlowEndpoint> => ({
  cluster, namespace, pod: `${app}-1`, port, labels: [`k8s:app=${app}`, `k8s:io.kubernetes.pod.namespace=${namespace}`, `k8s:weft.io/cluster=${cluster}`],
});

interface Reply { status: number; headers: IncomingMessage['headers']; body: string }

function get(port: number, path: string, options: { method?: string; host?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: { host: options.host ?? `127.0.0.1:${port}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** An event stream: its events in order, parsed; close() ends it. */
function events(port: number, path: string): { list: Array<{ event: string; data: any }>; close: () => void; ready: Promise<IncomingMessage> } {
  const list: Array<{ event: string; data: any }> = [];
  let buffer = '';
  const req = request({ host: '127.0.0.1', port, path, headers: { host: `localhost:${port}` } });
  const ready = new Promise<IncomingMessage>((resolve) => req.on('response', (res) => {
    res.setEncoding('utf8');
    res.on('data', (d: string) => {
      buffer += d;
      let i;
      while ((i = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        const name = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (name && data) list.push({ event: name, data: JSON.parse(data) });
      }
    });
    resolve(res);
  }));
  req.on('error', () => undefined);
  req.end();
  return { list, close: () => req.destroy(), ready };
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('ServiceMapServer', () => {
  let map: ServiceMap;
  let server: ServiceMapServer;
  let port: number;
  let sources: FollowStatus[];

  beforeEach(async () => {
    map = new ServiceMap();
    sources = [{ source: 'c1/relay', state: 'following', error: '', sinceMs: 0, retryAtMs: 0, flows: 0, lostFlows: 0, lastFlowMs: 0, connectedNodes: 2, unavailableNodes: [] }];
    server = new ServiceMapServer({ map, status: () => sources, host: '127.0.0.1', port: 0, flushMs: 20, log: silentLogger() });
    const url = await server.listen();
    port = Number(new URL(url).port);
    assert.equal(url, `http://127.0.0.1:${port}/`);
  });
  afterEach(() => server.close());

  it('serves the page and its scripts from the package, with a strict content security policy, and nothing else', async () => {
    const page = await get(port, '/');
    assert.equal(page.status, 200);
    assert.match(page.headers['content-type']!, /^text\/html/);
    assert.match(page.body, /<script src="app\.js"><\/script>/);
    assert.match(String(page.headers['content-security-policy']), /default-src 'none'; script-src 'self'/);
    for (const [path, type] of [['/app.js', 'text/javascript'], ['/layout.js', 'text/javascript'], ['/style.css', 'text/css']] as const) {
      const r = await get(port, path);
      assert.equal(r.status, 200, path);
      assert.ok(r.headers['content-type']!.startsWith(type), path);
      assert.ok(r.body.length > 100);
    }
    // The page loads nothing from elsewhere.
    for (const path of ['/', '/app.js', '/style.css']) assert.doesNotMatch((await get(port, path)).body, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/, path);
    assert.equal((await get(port, '/../package.json')).status, 404);
    assert.equal((await get(port, '/static/app.js')).status, 404);
    assert.equal((await get(port, '/api/graph', { method: 'POST' })).status, 405);
  });

  it('answers only requests for a loopback name (no DNS rebinding)', async () => {
    assert.equal((await get(port, '/api/graph', { host: `evil.example:${port}` })).status, 421);
    assert.equal((await get(port, '/api/graph', { host: `127.0.0.1:${port + 1}` })).status, 421);
    assert.equal((await get(port, '/api/graph', { host: `localhost:${port}` })).status, 200);
    assert.equal((await get(port, '/api/graph', { host: `[::1]:${port}` })).status, 200);
  });

  it('answers /api/graph with the map, filtered by cluster and namespace, and refuses a bad name', async () => {
    map.add(makeFlow({ source: pod('c1', 'demo', 'client'), destination: pod('c1', 'demo', 'echo', 8081) }));
    map.add(makeFlow({ verdict: 'DROPPED', dropReason: 'POLICY_DENIED', source: pod('c1', 'demo', 'client'), destination: pod('c2', 'shop', 'db', 5432) }));
    const all = JSON.parse((await get(port, '/api/graph')).body);
    assert.deepEqual(all.edges.map((e: any) => e.id).sort(), ['c1/demo/client->c1/demo/echo:8081/TCP', 'c1/demo/client->c2/shop/db:5432/TCP']);
    assert.deepEqual(all.facets, { clusters: ['c1', 'c2'], namespaces: ['demo', 'shop'] });
    assert.equal(all.sources[0].state, 'following');
    const c2 = JSON.parse((await get(port, '/api/graph?cluster=c2')).body);
    assert.deepEqual(c2.edges.map((e: any) => [e.id, e.verdict, e.lastDropReason, e.colour]), [['c1/demo/client->c2/shop/db:5432/TCP', 'DROPPED', 'POLICY_DENIED', '#e03131']]);
    assert.equal(JSON.parse((await get(port, '/api/graph?namespace=demo&cluster=c1,c3')).body).edges.length, 2);
    const bad = await get(port, '/api/graph?namespace=Bad%20Name');
    assert.equal(bad.status, 400);
    assert.deepEqual(JSON.parse(bad.body), { code: 'WEFT_ERR_UI_REQUEST', message: 'Invalid namespace "Bad Name": a cluster or namespace name is lowercase letters, digits, "-" and ".", at most 253 characters' });
  });

  it('streams a snapshot, then the viewer\'s part of each change, and the sources\' state when it changes', async () => {
    map.add(makeFlow({ source: pod('c1', 'demo', 'client'), destination: pod('c1', 'demo', 'echo', 8081) }));
    const all = events(port, '/api/events');
    const c2 = events(port, '/api/events?cluster=c2');
    const res = await all.ready;
    assert.match(res.headers['content-type']!, /^text\/event-stream/);
    await until(() => all.list.length >= 1 && c2.list.length >= 1, 'the snapshots');
    assert.deepEqual([all.list[0]!.event, all.list[0]!.data.edges.length, all.list[0]!.data.nodes.length], ['snapshot', 1, 2]);
    assert.deepEqual([c2.list[0]!.event, c2.list[0]!.data.edges.length, c2.list[0]!.data.filter], ['snapshot', 0, { clusters: ['c2'], namespaces: [] }]);

    map.add(makeFlow({ verdict: 'DROPPED', dropReason: 'POLICY_DENIED', source: pod('c1', 'demo', 'client'), destination: pod('c2', 'shop', 'db', 5432) }));
    map.add(makeFlow({ source: pod('c1', 'demo', 'client'), destination: pod('c1', 'demo', 'echo', 8081) }));
    await until(() => all.list.length >= 2 && c2.list.length >= 2, 'the deltas');
    const d = all.list[1]!;
    assert.equal(d.event, 'delta');
    assert.deepEqual(d.data.edges.map((e: any) => e.id).sort(), ['c1/demo/client->c1/demo/echo:8081/TCP', 'c1/demo/client->c2/shop/db:5432/TCP']);
    assert.deepEqual(d.data.facets.clusters, ['c1', 'c2']);
    const mine = c2.list[1]!.data;
    assert.deepEqual(mine.edges.map((e: any) => [e.id, e.verdict, e.lastDropReason]), [['c1/demo/client->c2/shop/db:5432/TCP', 'DROPPED', 'POLICY_DENIED']]);
    assert.deepEqual(mine.nodes.map((n: any) => n.id).sort(), ['c1/demo/client', 'c2/shop/db']);

    sources = [{ ...sources[0]!, state: 'retrying', error: 'connect ENOENT' }];
    server.statusChanged();
    await until(() => all.list.some((e) => e.event === 'status'), 'the status event');
    assert.deepEqual(all.list.find((e) => e.event === 'status')!.data.sources.map((s: FollowStatus) => [s.state, s.error]), [['retrying', 'connect ENOENT']]);
    all.close();
    c2.close();
  });

  it('ages edges out on its own timer', async () => {
    await server.close();
    map = new ServiceMap({ expireMs: 1000 });
    server = new ServiceMapServer({ map, status: () => sources, host: '127.0.0.1', port: 0, flushMs: 20, expireEveryMs: 20, log: silentLogger() });
    await server.listen();
    map.add(makeFlow({ time: { seconds: Math.floor(Date.now() / 1000) - 5, nanos: 0 }, source: pod('c1', 'demo', 'client'), destination: pod('c1', 'demo', 'echo', 8081) }));
    await until(() => map.stats().edges === 0, 'the edge to age out');
  });

  it('says why it cannot listen (WEFT_ERR_UI_LISTEN)', async () => {
    const other = new ServiceMapServer({ map, status: () => sources, host: '127.0.0.1', port, log: silentLogger() });
    await assert.rejects(other.listen(), (err: unknown) => err instanceof UiListenError && err.code === 'WEFT_ERR_UI_LISTEN' && /127\.0\.0\.1:\d+: EADDRINUSE/.test(err.message));
  });
});
