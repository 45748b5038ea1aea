import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { FlowExportError, FlowFieldMaskError, FlowFilterError } from './errors.js';
import { FlowExporter, type FlowExporterOptions } from './exporter.js';
import { makeFlow, randomFlows } from './testing.js';
import type { Flow } from './types.js';

/** Flow number `i`: its source port says which it was (the order of the lines is checked by it). */
const numbered = (i: number, over: Parameters<typeof makeFlow>[0] = {}): Flow => makeFlow({ ...over, source: { namespace: 'shop', pod: `web-${i % 7}`, port: i, labels: ['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=shop'] } });

/** Every line of a file, parsed (a line that is not JSON fails the test, naming the file and line). */
function lines(path: string): Array<Record<string, any>> {
  const text = readFileSync(path, 'utf8');
  assert.ok(text === '' || text.endsWith('\n'), `${path} ends with a whole line`);
  return text.split('\n').slice(0, -1).map((l, i) => {
    try {
      return JSON.parse(l);
    } catch {
      assert.fail(`${path}:${i + 1} is not JSON: ${l.slice(0, 80)}`);
    }
  });
}

const BACKUP = /^flows-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}\.json$/;

describe('FlowExporter', () => {
  let dir: string;
  let exporter: FlowExporter | undefined;
  const make = (options: Partial<FlowExporterOptions> = {}): FlowExporter => (exporter = new FlowExporter({ filePath: join(dir, 'flows', 'flows.json'), ...options }));
  const file = (): string => join(dir, 'flows', 'flows.json');
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'weft-export-'));
  });
  afterEach(async () => {
    await exporter?.stop();
    exporter = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes one JSON object per line with only the masked fields, after the allow and deny lists', async () => {
    const e = make({ fieldMask: ['time', 'verdict', 'source.pod', 'source.port'], allow: [{ sourceNamespace: ['shop'] }, { verdict: ['DROPPED'] }], deny: [{ sourcePod: ['shop/web-3'] }] });
    await e.start();
    const flows: Flow[] = [];
    for (let i = 0; i < 100; i++) flows.push(numbered(i, { verdict: i % 10 === 0 ? 'DROPPED' : 'FORWARDED' }));
    flows.push(makeFlow({ source: { namespace: 'other', pod: 'x', port: 1000 } }), makeFlow({ verdict: 'DROPPED', source: { namespace: 'other', pod: 'y', port: 1001 } }));
    for (const f of flows) e.export(f);
    await e.stop();
    const want = flows.filter((f) => (f.source!.namespace === 'shop' || f.verdict === 'DROPPED') && f.source!.pod !== 'web-3');
    const got = lines(file());
    assert.deepEqual(got, want.map((f) => ({ time: '2023-11-14T22:13:20Z', verdict: f.verdict, source: { pod: f.source!.pod, port: f.source!.port } })));
    assert.deepEqual({ ...e.stats }, { exported: want.length, filtered: flows.length - want.length, lost: 0, rotations: 0, bytes: statSync(file()).size, queuedBytes: 0 });
    assert.equal(statSync(file()).mode & 0o777, 0o600, 'flows are for the shipper (root), not every user of the node');
  });

  it('rotates at the size bound as lumberjack does, never splitting a line, keeping every flow in order', async () => {
    let clock = Date.parse('2026-12-04T10:11:12.345Z');
    const e = make({ maxSizeBytes: 4096, maxBackups: 1000, now: () => clock });
    await e.start();
    const n = 3000;
    for (let i = 0; i < n; i++) {
      // Lines of different lengths, so files end at different places.
      e.export(numbered(i, { policy: 'p'.repeat(i % 200), source: {} }));
      if (i % 500 === 0) await e.flush();
      if (i % 1000 === 0) clock += 1;
    }
    await e.stop();
    const names = readdirSync(join(dir, 'flows')).sort();
    const backups = names.filter((f) => BACKUP.test(f));
    assert.deepEqual(names, [...backups, 'flows.json'], 'the file and lumberjack-named backups, nothing else');
    assert.ok(backups.includes('flows-2026-12-04T10-11-12.346.json'), `backups are named by the UTC time: ${backups.slice(0, 2).join(', ')}`);
    assert.equal(e.stats.rotations, backups.length);
    let next = 0;
    for (const name of [...backups, 'flows.json']) {
      const path = join(dir, 'flows', name);
      assert.ok(statSync(path).size <= 4096, `${name} is ${statSync(path).size} bytes`);
      for (const line of lines(path)) assert.equal(line.source.port, next++, `${name}: flows in order, none missing or twice`);
    }
    assert.equal(next, n, 'the lines of all files are the flows exported');
    assert.equal(e.stats.exported, n);
    assert.ok(statSync(join(dir, 'flows', backups[0]!)).size > 4096 - 1200, 'a file is rotated only when the next line does not fit');
  });

  it('keeps the newest maxBackups backups', async () => {
    const e = make({ maxSizeBytes: 4096, maxBackups: 3 });
    await e.start();
    for (let i = 0; i < 2000; i++) e.export(numbered(i));
    await e.stop();
    const backups = readdirSync(join(dir, 'flows')).filter((f) => BACKUP.test(f)).sort();
    assert.equal(backups.length, 3);
    assert.ok(e.stats.rotations > 3);
    // What is left is the last flows, in order, up to the last one.
    const ports = [...backups, 'flows.json'].flatMap((name) => lines(join(dir, 'flows', name)).map((l) => l.source.port as number));
    assert.deepEqual(ports, Array.from({ length: ports.length }, (_, i) => 2000 - ports.length + i));
  });

  it('compresses each backup with gzip (fileCompress), keeping every flow in order and the newest maxBackups', async () => {
    mkdirSync(join(dir, 'flows'));
    // What a stopped exporter left: an uncompressed backup, and a compression it did not finish.
    writeFileSync(join(dir, 'flows', 'flows-2026-01-01T00-00-00.000.json'), '{"left":1}\n');
    writeFileSync(join(dir, 'flows', 'flows-2026-01-01T00-00-00.000.json.gz.tmp'), 'half');
    const e = make({ maxSizeBytes: 4096, maxBackups: 1000, compress: true });
    await e.start();
    const n = 2000;
    for (let i = 0; i < n; i++) {
      e.export(numbered(i));
      if (i % 300 === 0) await e.flush();
    }
    await e.stop();
    const names = readdirSync(join(dir, 'flows')).sort();
    const backups = names.filter((f) => f !== 'flows.json');
    assert.ok(backups.length > 3 && backups.every((f) => /^flows-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}\.json\.gz$/.test(f)), `every backup compressed, nothing else left: ${names.join(' ')}`);
    assert.equal(e.stats.rotations, backups.length - 1);
    const text = (name: string): string => (name.endsWith('.gz') ? gunzipSync(readFileSync(join(dir, 'flows', name))) : readFileSync(join(dir, 'flows', name))).toString('utf8');
    const all = [...backups, 'flows.json'].flatMap((name) => text(name).split('\n').slice(0, -1).map((l) => JSON.parse(l)));
    assert.deepEqual(all[0], { left: 1 });
    assert.deepEqual(all.slice(1).map((l) => l.source.port), Array.from({ length: n }, (_, i) => i));
    assert.equal(statSync(join(dir, 'flows', backups[1]!)).mode & 0o777, 0o600);

    // Pruning counts compressed backups as backups.
    const again = make({ maxSizeBytes: 4096, maxBackups: 2, compress: true });
    await again.start();
    for (let i = 0; i < 200; i++) again.export(numbered(i));
    await again.stop();
    assert.equal(readdirSync(join(dir, 'flows')).filter((f) => f.endsWith('.json.gz')).length, 2);
  });

  it('appends to the file it finds, rotating it first when it is full, and pruning old backups', async () => {
    mkdirSync(join(dir, 'flows'));
    writeFileSync(file(), '{"old":1}\n');
    for (const t of ['2026-01-01T00-00-00.000', '2026-01-02T00-00-00.000', '2026-01-03T00-00-00.000']) writeFileSync(join(dir, 'flows', `flows-${t}.json`), '{"older":1}\n');
    writeFileSync(join(dir, 'flows', 'flows-notabackup.json'), 'keep me\n');
    const e = make({ maxBackups: 2 });
    await e.start();
    e.export(numbered(1));
    await e.stop();
    assert.deepEqual(lines(file()).map((l) => l.old ?? l.source.port), [1, 1]);
    assert.deepEqual(readdirSync(join(dir, 'flows')).sort(), ['flows-2026-01-02T00-00-00.000.json', 'flows-2026-01-03T00-00-00.000.json', 'flows-notabackup.json', 'flows.json']);
  });

  it('starts a new line after a partial one left by a crash', async () => {
    mkdirSync(join(dir, 'flows'));
    writeFileSync(file(), '{"torn":');
    const e = make({ fieldMask: ['verdict'] });
    await e.start();
    e.export(numbered(1));
    await e.stop();
    assert.equal(readFileSync(file(), 'utf8'), '{"torn":\n{"verdict":"FORWARDED"}\n');
  });

  it('makes the directory when it is missing, at start and when it is removed while running', async () => {
    const e = make({ fieldMask: ['source.port'] });
    await e.start();
    assert.ok(existsSync(file()), 'created at start, directory and all');
    for (let i = 0; i < 10; i++) e.export(numbered(i));
    await e.flush();
    rmSync(join(dir, 'flows'), { recursive: true });
    for (let i = 10; i < 20; i++) e.export(numbered(i));
    await e.flush();
    assert.deepEqual(lines(file()).map((l) => l.source.port), [10, 11, 12, 13, 14, 15, 16, 17, 18, 19], 'the flows after the removal are in a new file, not in the removed one');
    // A file removed (as a careless shipper might) is started again too.
    rmSync(file());
    e.export(numbered(20));
    await e.stop();
    assert.deepEqual(lines(file()).map((l) => l.source.port), [20]);
    assert.deepEqual([e.stats.exported, e.stats.lost], [21, 0]);
  });

  it('counts the flows it cannot write as lost, says so in the file, and writes again when it can', async () => {
    const e = make({ fieldMask: ['source.port'], cluster: 'c1', node: 'n1', now: () => Date.parse('2026-12-04T10:00:00Z') });
    await e.start();
    e.export(numbered(0));
    await e.flush();
    // The directory becomes a file: nothing can be written under it.
    rmSync(join(dir, 'flows'), { recursive: true });
    writeFileSync(join(dir, 'flows'), 'in the way');
    for (let i = 1; i <= 5; i++) e.export(numbered(i));
    await e.flush();
    assert.deepEqual([e.stats.exported, e.stats.lost], [1, 5]);
    rmSync(join(dir, 'flows'));
    e.export(numbered(6));
    await e.stop();
    assert.deepEqual(lines(file()), [{ time: '2026-12-04T10:00:00Z', lostEvents: { source: 'EXPORT_QUEUE', numEventsLost: 5, cluster: 'c1', node: 'n1' } }, { source: { port: 6 } }]);
    assert.deepEqual([e.stats.exported, e.stats.lost], [2, 5]);
  });

  it('drops flows beyond its queue rather than grow, counting every one, and records the count in the file', async () => {
    const e = make({ maxQueueBytes: 64 << 10, maxBackups: 100 });
    await e.start();
    // A producer much faster than any disk: everything in one turn of the event loop.
    const n = 5000;
    for (let i = 0; i < n; i++) {
      e.export(numbered(i));
      assert.ok(e.stats.queuedBytes <= 64 << 10, 'the queue stays within its bound');
    }
    const { lost } = e.stats;
    assert.ok(lost > n / 2, `most flows are lost (${lost})`);
    // Then the producer slows down: the queue drains and the loss is recorded where it happened.
    await e.flush();
    for (let i = n; i < n + 10; i++) e.export(numbered(i));
    await e.stop();
    const got = readdirSync(join(dir, 'flows')).sort().flatMap((name) => lines(join(dir, 'flows', name)));
    const flows = got.filter((l) => l.source);
    const reported = got.filter((l) => l.lostEvents).reduce((sum, l) => sum + l.lostEvents.numEventsLost, 0);
    assert.equal(flows.length, e.stats.exported);
    assert.equal(e.stats.exported + e.stats.lost, n + 10, 'every flow is exported or counted as lost');
    assert.equal(reported, e.stats.lost, 'every lost flow is in a lostEvents line');
    assert.equal(e.stats.lost, lost, 'nothing lost once the producer slowed down');
    assert.deepEqual(flows.slice(-10).map((l) => l.source.port), Array.from({ length: 10 }, (_, i) => n + i));
  });

  it('writes on its timer, and what is queued when stopped', async () => {
    const e = make({ flushIntervalMs: 3_600_000, flushBytes: 1 << 30 });
    await e.start();
    for (let i = 0; i < 100; i++) e.export(numbered(i));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(statSync(file()).size, 0, 'nothing written before the timer or the size says so');
    await e.stop();
    assert.equal(lines(file()).length, 100);
    e.export(numbered(100));
    assert.equal(e.stats.exported, 100, 'nothing after stop');

    const timed = make({ flushIntervalMs: 20, flushBytes: 1 << 30, filePath: join(dir, 'timed.json') });
    await timed.start();
    timed.export(numbered(1));
    for (let waited = 0; statSync(join(dir, 'timed.json')).size === 0; waited += 10) {
      assert.ok(waited < 5000, 'written within a few timer periods');
      await new Promise((r) => setTimeout(r, 10));
    }
  });

  it('writes every kind of string as valid JSON (quotes, control characters, non-ASCII)', async () => {
    const e = make();
    await e.start();
    const flows = randomFlows(5, 300);
    for (const f of flows) e.export(f);
    await e.stop();
    assert.equal(lines(file()).length, 300);
  });

  it('refuses bad options and filters, and a file it cannot open, with typed errors', async () => {
    const bad: Array<[Partial<FlowExporterOptions>, new (...args: never[]) => Error, RegExp]> = [
      [{ filePath: 'flows.json' }, FlowExportError, /filePath "flows\.json" must be an absolute file path/],
      [{ filePath: '/var/run/weft/flows/' }, FlowExportError, /must be an absolute file path/],
      [{ maxSizeBytes: 100 }, FlowExportError, /maxSizeBytes 100 must be an integer >= 4096/],
      [{ maxBackups: -1 }, FlowExportError, /maxBackups -1 must be an integer >= 0/],
      [{ allow: [{ sourceIp: ['10.0.0.300'] }] }, FlowFilterError, /allow\[0\]\.sourceIp "10\.0\.0\.300"/],
      [{ fieldMask: ['source.podname'] }, FlowFieldMaskError, /fieldMask\[0\] "source\.podname"/],
    ];
    for (const [options, type, message] of bad) assert.throws(() => make(options), (e: Error) => e instanceof type && message.test(e.message), JSON.stringify(options));
    exporter = undefined;
    writeFileSync(join(dir, 'a-file'), '');
    const e = make({ filePath: join(dir, 'a-file', 'flows.json') });
    await assert.rejects(e.start(), (err: Error) => err instanceof FlowExportError && err.code === 'WEFT_ERR_FLOW_EXPORT' && /Cannot open the flow export file .*a-file\/flows\.json: .*ENOTDIR|EEXIST/.test(err.message));
  });
});
