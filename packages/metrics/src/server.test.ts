import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { Counter, Registry } from 'prom-client';
import { MetricsConfigError, MetricsListenError } from './errors.js';
import { parseExposition, sampleValue } from './exposition.js';
import { parseListen } from './listen.js';
import { counterOf, createRegistry, gaugeOf } from './registry.js';
import { MetricsServer } from './server.js';
import { scrape } from './testing.js';

describe('MetricsServer (real HTTP on port 0)', () => {
  it('serves the registry at GET /metrics, nothing else, and stops', async () => {
    const registry = createRegistry({ cluster: 'c1', processMetrics: false });
    const events = new Counter({ name: 'weft_events_total', help: 'Events.', registers: [registry] });
    let remotes: Array<[string, number]> = [['east', 1], ['west', 0]];
    gaugeOf(registry, { name: 'weft_remote_ready', help: 'Remote ready.', labelNames: ['target_cluster'], read: () => remotes.map(([c, v]) => [{ target_cluster: c }, v] as const) });
    gaugeOf(registry, { name: 'weft_epoch', help: 'Not always known.', read: () => [] });
    counterOf(registry, { name: 'weft_kept_total', help: 'Kept elsewhere.', read: async () => [[{}, 41]] });
    const server = new MetricsServer({ registry, listen: '127.0.0.1:0' });
    const { host, port } = await server.start();
    assert.equal(host, '127.0.0.1');
    assert.ok(port > 0);
    try {
      events.inc(3);
      const r = await scrape({ host, port });
      assert.equal(r.status, 200);
      assert.equal(r.contentType, 'text/plain; version=0.0.4; charset=utf-8');
      const f = parseExposition(r.body);
      assert.equal(sampleValue(f, 'weft_events_total', { cluster: 'c1' }), 3);
      assert.equal(sampleValue(f, 'weft_remote_ready', { target_cluster: 'east' }), 1);
      assert.equal(sampleValue(f, 'weft_kept_total'), 41);
      assert.deepEqual(f.get('weft_epoch')!.samples, [], 'a gauge with no value has HELP and TYPE and no sample');
      assert.equal(f.get('weft_epoch')!.type, 'gauge');
      remotes = [['east', 1]];
      assert.equal(sampleValue(parseExposition((await scrape({ host, port })).body), 'weft_remote_ready', { target_cluster: 'west' }), undefined, 'a series no longer read is gone');
      assert.equal((await scrape({ host, port }, '/')).status, 404);
      assert.equal((await scrape({ host, port }, '/metrics', 'POST')).status, 405);
      const head = await scrape({ host, port }, '/metrics?x=1', 'HEAD');
      assert.deepEqual([head.status, head.body], [200, '']);
    } finally {
      await server.stop();
    }
    await assert.rejects(scrape({ host, port }), /ECONNREFUSED/);
  });

  it('shares one collection among scrapes that arrive together, and answers 500 when collecting fails', async () => {
    const registry = new Registry();
    let collections = 0;
    let fail = false;
    gaugeOf(registry, {
      name: 'weft_slow',
      help: 'Slow to read.',
      read: async () => {
        collections++;
        await new Promise((r) => setTimeout(r, 50));
        if (fail) throw new Error('the datapath did not answer');
        return [[{}, 1]];
      },
    });
    const server = new MetricsServer({ registry, listen: '127.0.0.1:0' });
    const address = await server.start();
    try {
      const all = await Promise.all([scrape(address), scrape(address), scrape(address)]);
      assert.deepEqual(all.map((r) => r.status), [200, 200, 200]);
      assert.equal(collections, 1);
      fail = true;
      const r = await scrape(address);
      assert.equal(r.status, 500);
      assert.match(r.body, /Cannot collect metrics: the datapath did not answer/);
    } finally {
      await server.stop();
    }
  });

  it('says why it cannot listen, with a stable code', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    try {
      const server = new MetricsServer({ registry: new Registry(), listen: `127.0.0.1:${port}` });
      await assert.rejects(server.start(), (err: Error) => err instanceof MetricsListenError && err.code === 'WEFT_ERR_METRICS_LISTEN' && err.message === `Cannot serve metrics on 127.0.0.1:${port}: EADDRINUSE`);
    } finally {
      taken.close();
    }
    assert.throws(() => new MetricsServer({ registry: new Registry(), listen: 'localhost:9962' }), (err: Error) => err instanceof MetricsConfigError && /must be IPv4:port/.test(err.message));
  });

  it('parses listen addresses', () => {
    assert.deepEqual(parseListen('0.0.0.0:9962'), { host: '0.0.0.0', port: 9962 });
    assert.deepEqual(parseListen('10.0.0.1:0'), { host: '10.0.0.1', port: 0 });
    assert.match(parseListen('10.0.0.1:70000') as string, /out of range/);
    assert.match(parseListen('10.0.0.300:1') as string, /not an IPv4 address/);
    assert.match(parseListen(':9962') as string, /must be IPv4:port/);
    assert.match(parseListen(9962) as string, /must be a string/);
  });
});
