import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@weft/common';
import { ApiServer } from '@weft/agent/api';
import { agentHealth, type AgentHealthState } from '@weft/agent/health';
import { ClusterMeshApiServer, createCa, issue, probeApiServer, type MeshConfig } from '@weft/clustermesh';
import { EtcdProcess, freePort, until } from '@weft/kvstore';

const WEFT = join(__dirname, '..', '..', 'bin', 'weft.js');

/** Runs the weft command as Kubernetes' exec probe does; the servers stay in this process, so not spawnSync. */
function weft(args: string[], entry = WEFT): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [entry, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('weft agent health', function () {
  this.timeout(30_000);
  let dir: string;
  let api: ApiServer;
  let state: AgentHealthState;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-health-'));
    // The agent's own API server and health function, fed the state the agent would track.
    api = new ApiServer(join(dir, 'agent.sock'));
    api.starting = true;
    api.route('GET', '/v1/healthz', async () => agentHealth(state));
    await api.start();
  });
  after(async () => {
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    state = { starting: undefined, encryption: 'wireguard', session: { state: 'active', leaseId: '7587', ttlSeconds: 10 }, source: 'kubernetes', resourcesSynced: true };
  });

  it('exits 0 when the agent is ready, through the probe entry and the full command line alike', async () => {
    for (const entry of [WEFT, join(__dirname, '..', 'main.js')]) {
      const r = await weft(['agent', 'health', '--socket', api.socketPath], entry);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^CHECK +OK +DETAIL\nstarted +yes +datapath loaded, encryption wireguard started\nkvstore +yes +etcd lease 7587 kept alive/);
      assert.equal(r.stderr, '');
    }
  });

  it('exits 1 when not ready, naming the failing checks; --liveness only asks for an answer', async () => {
    state.session = { state: 'lost', leaseId: '7587', ttlSeconds: 10 };
    const r = await weft(['agent', 'health', '--socket', api.socketPath]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /kvstore +NO +etcd lease 7587 lost/);
    assert.equal(r.stderr, `weft: The agent at ${api.socketPath} is not ready: kvstore: etcd lease 7587 lost (no keep-alive answered); renewing [WEFT_ERR_NOT_READY]\n`);
    assert.equal((await weft(['agent', 'health', '--socket', api.socketPath, '--liveness'])).code, 0, 'an etcd outage must not restart the agent');
    state = { starting: 'loading the datapath', encryption: 'wireguard', session: undefined, source: 'kubernetes', resourcesSynced: false };
    const starting = await weft(['agent', 'health', '--socket', api.socketPath]);
    assert.equal(starting.code, 1);
    assert.match(starting.stderr, /is not ready: started: loading the datapath; kvstore: no etcd session yet; resources: waiting for/);
  });

  it('prints the report as JSON with -o json, with the same exit codes', async () => {
    const ok = await weft(['agent', 'health', '--socket', api.socketPath, '-o', 'json']);
    assert.equal(ok.code, 0);
    assert.deepEqual(JSON.parse(ok.stdout), agentHealth(state));
    state.resourcesSynced = false;
    const notReady = await weft(['agent', 'health', '--socket', api.socketPath, '-o', 'json']);
    assert.equal(notReady.code, 1);
    assert.equal(JSON.parse(notReady.stdout).ready, false);
  });

  it('exits 1 with a clear message when no agent answers', async () => {
    const gone = await weft(['agent', 'health', '--socket', join(dir, 'nobody.sock')]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /^weft: Cannot reach the agent at .*nobody\.sock: nothing listens there \(is the agent running\?\).* \[WEFT_ERR_AGENT_UNREACHABLE\]\n$/);
    // An agent that accepts the connection and never answers (a stuck event loop) fails the probe in time.
    const stuck = new ApiServer(join(dir, 'stuck.sock'));
    stuck.route('GET', '/v1/healthz', () => new Promise(() => undefined));
    await stuck.start();
    try {
      const r = await weft(['agent', 'health', '--socket', stuck.socketPath, '--liveness']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /Cannot reach the agent at .*stuck\.sock: no answer within 5s \[WEFT_ERR_AGENT_UNREACHABLE\]/);
    } finally {
      await stuck.stop();
    }
  });

  it('exits 2 on wrong use', async () => {
    for (const args of [['-o', 'yaml'], ['--bogus'], ['extra']]) {
      const r = await weft(['agent', 'health', '--socket', api.socketPath, ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, '');
    }
    assert.equal((await weft(['clustermesh-apiserver', 'health'])).code, 2, 'no --config');
  });
});

/** The real clustermesh-apiserver on loopback with a real etcd: its health over its own mTLS port, as the chart's probe asks. */
describe('weft clustermesh-apiserver health @etcd', function () {
  this.timeout(90_000);
  let etcd: EtcdProcess;
  let dir: string;
  let file: string;
  let config: MeshConfig;
  let server: ClusterMeshApiServer | undefined;

  before(async () => {
    etcd = await EtcdProcess.start({ name: 'mesh-health' });
    dir = mkdtempSync(join(tmpdir(), 'weft-mesh-health-'));
    const ca = await createCa('east');
    const cert = await issue(ca, 'clustermesh-east', { ips: ['192.0.2.10'] });
    // Listening on every address, as the chart's apiserver does; the probe dials loopback.
    config = { cluster: 'east', clusterId: 1, etcd: [etcd.endpoint], listen: `0.0.0.0:${await freePort()}`, ca: ca.cert, cert: cert.cert, key: cert.key, remotes: [] };
    file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify(config));
  });
  after(async () => {
    await server?.stop();
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is ready while etcd answers, not ready without it, and unreachable when stopped', async () => {
    const health = ['clustermesh-apiserver', 'health', '--config', file];
    const port = config.listen.split(':')[1];
    const absent = await weft(health);
    assert.equal(absent.code, 1);
    assert.match(absent.stderr, new RegExp(`^weft: Cannot reach the clustermesh-apiserver at 127\\.0\\.0\\.1:${port}: .* \\[WEFT_ERR_MESH_UNREACHABLE\\]\\n$`));

    server = new ClusterMeshApiServer(config, silentLogger());
    await server.start();
    const ready = await weft(health);
    assert.equal(ready.code, 0, ready.stderr);
    assert.match(ready.stdout, /etcd +yes +answered \d+\.\ds ago\nserving +yes +gRPC with mutual TLS on 0\.0\.0\.0:\d+, streaming to no remote yet/);
    const json = await weft([...health, '-o', 'json']);
    assert.deepEqual(JSON.parse(json.stdout).checks.map((c: { name: string; ok: boolean }) => [c.name, c.ok]), [['etcd', true], ['serving', true]]);

    await etcd.stop({ keepData: true });
    await until(async () => !(await probeApiServer(config)).ready, 'etcd to count as unreachable (10 s without an answer)', 30_000);
    const down = await weft(health);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /^weft: The clustermesh-apiserver at 127\.0\.0\.1:\d+ is not ready: etcd: no answer for \d+s.* \[WEFT_ERR_NOT_READY\]\n$/);
    assert.equal((await weft([...health, '--liveness'])).code, 0, 'an etcd outage must not restart the apiserver');

    await etcd.start();
    await until(async () => (await probeApiServer(config)).ready, 'ready again once etcd answers', 30_000);
    await server.stop();
    server = undefined;
    assert.equal((await weft([...health, '--liveness'])).code, 1, 'a stopped apiserver fails even liveness');
  });
});
