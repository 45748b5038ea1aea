// End to end, as root: `weft ui` on a real lab of two connected clusters, its page opened in
// Debian's Chromium (driven by playwright-core, which downloads no browser). Traffic started in
// the lab appears as an edge within seconds: an allowed connection green, one a policy denies red
// with its reason; a Service is a node of its own; the filters narrow the map; a restarted relay is
// shown and followed again. The page's screenshot is kept in test-artifacts/ui-service-map.png.
'use strict';
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { WEFT, weft, weftJson, probe, until, isRoot, pidInNetns } = require('./helpers');

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(__dirname, '..', 'test-artifacts');
/** How long an edge may take from the probe's end to the page: the relay's sort window, the page's 250 ms flush, drawing. */
const WITHIN_MS = 5000;

const edge = (id, verdict) => `[data-edge="${id}"]${verdict ? `[data-verdict="${verdict}"]` : ''}`;

describe('weft ui: the service map in Chromium (e2e, root)', function () {
  this.timeout(300_000);
  let dir;
  let ui;
  let uiExit;
  let uiErr = '';
  let browser;
  let page;
  let url;
  const pageErrors = [];
  const ips = {};

  before(async function () {
    if (!isRoot()) return this.skip();
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: hack/install.sh installs Debian's chromium`);
    dir = mkdtempSync(join(tmpdir(), 'weft-ui-'));
    const up = await weft(['lab', 'up', '--clusters', '2', '--nodes', '2']);
    assert.equal(up.code, 0, up.stderr);
    for (const cluster of ['c1', 'c2']) for (const e of await weftJson(['endpoint', 'list', '--cluster', cluster])) ips[`${cluster}/${e.namespace}/${e.pod}`] = e.ip;

    // Any free loopback port; the address comes on stdout.
    ui = spawn(process.execPath, [WEFT, 'ui', '--listen', '127.0.0.1:0', '--since', '1m'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WEFT_LOG_LEVEL: 'info' } });
    uiExit = new Promise((resolve) => ui.on('exit', (code, signal) => resolve({ code, signal })));
    ui.stderr.on('data', (d) => (uiErr = (uiErr + d).slice(-20_000)));
    let out = '';
    url = await new Promise((resolve, reject) => {
      ui.stdout.on('data', (d) => {
        out += d;
        const m = /Service map at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
        if (m) resolve(m[1]);
      });
      ui.on('exit', (code) => reject(new Error(`weft ui exited (${code}): ${uiErr}`)));
    });
    assert.match(out, /flows from c1\/relay/);

    const { chromium } = require('playwright-core');
    // As root, Chromium refuses to start without --no-sandbox (its sandbox needs an unprivileged
    // user); the page is our own, on loopback.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    page = await browser.newPage({ viewport: { width: 1500, height: 900 } });
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));
    await page.goto(url);
  });

  afterEach(async function () {
    if (this.currentTest.state === 'failed' && page) {
      mkdirSync(ARTIFACTS, { recursive: true });
      const shot = join(ARTIFACTS, 'ui-service-map-failure.png');
      await page.screenshot({ path: shot }).catch(() => undefined);
      console.log(`    screenshot of the failure: ${shot}\n    weft ui's log: ${uiErr.split('\n').slice(-10).join('\n')}`);
    }
  });

  after(async function () {
    if (!isRoot()) return;
    try {
      if (browser) await browser.close();
    } finally {
      if (ui && ui.exitCode === null) {
        ui.kill('SIGTERM');
        const exit = await Promise.race([uiExit, new Promise((r) => setTimeout(() => r(undefined), 5000))]);
        if (!exit) ui.kill('SIGKILL');
        else assert.equal(exit.code, 0, `weft ui ended cleanly on SIGTERM: ${uiErr.slice(-2000)}`);
      }
      if (dir) rmSync(dir, { recursive: true, force: true });
      const down = await weft(['lab', 'down']);
      assert.equal(down.code, 0, down.stderr);
    }
  });

  /** Probes, then waits for the edge on the page; returns the milliseconds it took after the probe. */
  async function probeAndSee(pod, target, selector, expectOk) {
    assert.equal(await probe(pod, target), expectOk, `probe ${pod} ${target.join(' ')}`);
    const t0 = Date.now();
    await page.waitForSelector(selector, { timeout: WITHIN_MS });
    return Date.now() - t0;
  }

  it('is live: the page follows c1\'s relay, which reaches both clusters\' nodes', async () => {
    await page.waitForSelector('#live[data-state="live"]', { timeout: 10_000 });
    const source = await page.$eval('.source', (e) => ({ name: e.dataset.source, state: e.dataset.state }));
    assert.deepEqual([source.name, source.state], ['c1/relay', 'following']);
    // c2's nodes through c2's relay, once c1's relay has linked it (it checks every 5 s, the page asks as often).
    await page.waitForFunction(() => /following · 4 nodes/.test(document.querySelector('.source').textContent), null, { timeout: 15_000 });
  });

  it('draws an allowed connection as a green edge within seconds, across clusters too', async () => {
    const id = 'c1/demo/client->c1/demo/echo:8081/TCP';
    const ms = await probeAndSee('c1/demo/client', ['--http', `http://${ips['c1/demo/echo-2']}:8081/`], edge(id, 'FORWARDED'), true);
    console.log(`    ${id} on the page ${ms} ms after the probe`);
    const stroke = await page.$eval(`${edge(id)} path.line`, (p) => getComputedStyle(p).stroke);
    assert.equal(stroke, 'rgb(47, 158, 68)', 'green');
    assert.equal(await page.$eval(edge(id), (g) => g.dataset.reason), '');
    for (const [node, cluster] of [['c1/demo/client', 'c1'], ['c1/demo/echo', 'c1']]) assert.equal(await page.$eval(`[data-node="${node}"]`, (g) => g.dataset.cluster), cluster);

    const cross = 'c1/demo/client->c2/demo/echo:8081/TCP';
    const ms2 = await probeAndSee('c1/demo/client', ['--http', `http://${ips['c2/demo/echo-1']}:8081/`], edge(cross, 'FORWARDED'), true);
    console.log(`    ${cross} on the page ${ms2} ms after the probe`);
    assert.equal(await page.$eval('[data-node="c2/demo/echo"]', (g) => g.dataset.cluster), 'c2');
  });

  it('draws a Service as a node of its own: client -> Service -> backends', async () => {
    const svc = join(dir, 'svc.yaml');
    writeFileSync(svc, `apiVersion: v1
kind: Service
metadata: { name: echo, namespace: demo }
spec:
  selector: { app: echo }
  ports: [ { name: http, port: 80, targetPort: 8081 } ]
`);
    const applied = await weft(['apply', '-f', svc]);
    assert.equal(applied.code, 0, applied.stderr);
    let vip;
    await until(async () => (vip = (await weftJson(['service', 'list', '--cluster', 'c1'])).find((s) => s.name === 'echo' && s.namespace === 'demo')?.clusterIP), 'the ClusterIP');
    await until(() => probe('c1/demo/client', ['--http', `http://${vip}:80/`]), 'the Service to answer');
    await page.waitForSelector(edge('c1/demo/client->svc:c1/demo/echo:80/TCP', 'FORWARDED'), { timeout: WITHIN_MS });
    await page.waitForSelector(edge('svc:c1/demo/echo->c1/demo/echo:8081/TCP', 'FORWARDED'), { timeout: WITHIN_MS });
    assert.equal(await page.$eval('[data-node="svc:c1/demo/echo"]', (g) => g.dataset.kind), 'service');
  });

  it('draws a connection a policy denies as a red edge with its reason (POLICY_DENIED), beside the allowed one', async () => {
    // Only the demo client may reach the echo servers, and only on HTTP (8081).
    const applied = await weft(['apply', '-f', join(__dirname, '..', 'examples', 'policy.yaml')]);
    assert.equal(applied.code, 0, applied.stderr);
    await until(async () => !(await probe('c1/demo/client', ['--tcp', `${ips['c1/demo/echo-2']}:8080`])), 'the policy to deny 8080', 10_000);
    const denied = 'c1/demo/client->c1/demo/echo:8080/TCP';
    const t0 = Date.now();
    await page.waitForSelector(`${edge(denied, 'DROPPED')}[data-reason="POLICY_DENIED"]`, { timeout: WITHIN_MS });
    console.log(`    ${denied} red on the page ${Date.now() - t0} ms after the probe`);
    assert.equal(await page.$eval(`${edge(denied)} path.line`, (p) => getComputedStyle(p).stroke), 'rgb(224, 49, 49)', 'red');
    assert.match(await page.$eval(`[data-label-for="${denied}"]`, (t) => t.textContent), /8080\/TCP · POLICY_DENIED/);
    assert.match(await page.$eval(`${edge(denied)} title`, (t) => t.textContent), /DROPPED \(POLICY_DENIED\)[\s\S]*reasons: POLICY_DENIED ×\d/);
    // The allowed port stays allowed, and green.
    assert.equal(await probe('c1/demo/client', ['--http', `http://${ips['c1/demo/echo-2']}:8081/`]), true);
    await page.waitForTimeout(1000);
    assert.equal(await page.$eval(edge('c1/demo/client->c1/demo/echo:8081/TCP'), (g) => g.dataset.verdict), 'FORWARDED');

    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, 'ui-service-map.png');
    await page.waitForTimeout(1500); // the layout settles
    await page.screenshot({ path: shot });
    console.log(`    screenshot: ${shot}`);
  });

  it('filters by cluster and by namespace (the server sends the filtered map)', async () => {
    await page.click('#filter-clusters input[data-value="c2"]');
    await until(async () => (await page.evaluate(() => location.search)) === '?cluster=c2', 'the filter in the address');
    await page.waitForSelector(edge('c1/demo/client->c1/demo/echo:8081/TCP'), { state: 'detached', timeout: WITHIN_MS });
    const shown = await page.$$eval('[data-edge]', (es) => es.map((e) => e.dataset.edge));
    assert.ok(shown.includes('c1/demo/client->c2/demo/echo:8081/TCP'), shown.join(' '));
    assert.ok(shown.every((id) => id.includes('c2/')), `only edges touching c2: ${shown.join(' ')}`);
    await page.click('#clear-filters');
    await page.waitForSelector(edge('c1/demo/client->c1/demo/echo:8081/TCP'), { timeout: WITHIN_MS });
    const graph = await (await fetch(`${url}api/graph?namespace=demo&cluster=c1`)).json();
    assert.ok(graph.edges.length > 0 && graph.edges.every((e) => e.source.startsWith('c1/demo/') || e.destination.startsWith('c1/demo/') || e.source.startsWith('svc:c1/demo/') || e.destination.startsWith('svc:c1/demo/')));
  });

  it('shows a relay that went away, and follows the restarted relay from where it left off', async () => {
    const lab = require('@weft/lab');
    const c1 = lab.readLabState().clusters.find((c) => c.name === 'c1');
    const pid = pidInNetns(c1.cpNetns, 'relay\0--config\0');
    assert.ok(pid, 'the relay runs');
    process.kill(pid, 'SIGKILL');
    await page.waitForSelector('#live[data-state="reconnecting"]', { timeout: 10_000 });
    assert.equal(await page.$eval('.source', (e) => e.dataset.state).then((s) => ['retrying', 'connecting'].includes(s)), true);
    await lab.startRelay(c1, () => undefined);
    await page.waitForSelector('#live[data-state="live"]', { timeout: 15_000 });
    // New traffic after the restart appears.
    const ms = await probeAndSee('c1/demo/client', ['--udp', `${ips['c2/demo/echo-2']}:9090`], edge('c1/demo/client->c2/demo/echo:9090/UDP', 'FORWARDED'), true);
    console.log(`    an edge after the relay's restart on the page ${ms} ms after the probe`);
    assert.deepEqual(pageErrors, [], 'no error on the page');
  });
});
