import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger, type HealthReport } from '@weft/common';
import { EtcdProcess, until } from '@weft/kvstore';
import { Agent } from './agent.js';
import { AGENT_STARTING } from './api.js';
import { AgentApiError, AgentClient } from './api-client.js';
import { validateAgentConfig } from './config.js';
import type { Datapath } from './datapath-port.js';

/** A datapath that holds nothing, so the control plane runs without root; start() waits for `loaded`. */
function emptyDatapath(loaded: Promise<void>): Datapath {
  return {
    start: () => loaded,
    clearIngressFilter: () => undefined,
    stop: async () => undefined,
    uninstall: async () => [],
    syncIpcache: async () => ({ added: 0, updated: 0, removed: 0, missing: 0 }),
    updateIpcache: async () => ({ added: 0, updated: 0, removed: 0, missing: 0 }),
    ipcacheStatus: () => ({ complete: true, entries: 0, maxEntries: 0, missing: 0 }),
    syncPolicyCidrs: async () => undefined,
    programEndpoint: async () => ({ state: 'ok', changes: 0, gen: 0 }),
    updateEndpointPolicy: async () => ({ state: 'ok', changes: 0, gen: 0 }),
    syncNodes: async () => ({ added: 0, updated: 0, removed: 0 }),
    removeEndpoint: async () => undefined,
    mapStatus: () => [],
    sweepConntrack: async () => ({ scanned: 0, expired: 0, flushed: 0, live: new Map(), recounted: 0, durationMs: 0 }),
    conntrackStatus: async () => ({ capacity: 0, byEndpoint: new Map(), dropsFull: 0n, dropsQuota: 0n }),
    highestPolicyRevision: async () => 0,
    syncServices: async (s) => ({ frontends: s.length, changed: 0 }),
    updateServices: async (s) => ({ frontends: s.length, changed: 0 }),
    dumpIpcache: async () => [],
    dumpNodes: async () => [],
    dumpServices: async () => [],
    dumpPolicy: async () => [],
    onFlow: () => undefined,
    flowEventsLost: async () => 0n,
  };
}

/** The real Agent and its API socket, a real etcd, no datapath: /v1/healthz through start, an etcd outage and back. */
describe('agent health over its socket @etcd', function () {
  this.timeout(90_000);
  let etcd: EtcdProcess;
  let dir: string;
  let agent: Agent | undefined;

  before(async () => {
    etcd = await EtcdProcess.start({ name: 'agent-health' });
    dir = mkdtempSync(join(tmpdir(), 'weft-agent-health-'));
  });
  after(async () => {
    await agent?.stop();
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers while starting, is ready once started, and not ready while its etcd lease is lost', async () => {
    let load!: () => void;
    const config = validateAgentConfig({ cluster: 'c1', clusterId: 1, node: 'n1', etcd: [etcd.endpoint], nodeIp: '10.99.1.11', podCidr: '10.101.1.0/24', bpfDir: '/nonexistent', stateDir: dir, encryption: 'off' });
    agent = new Agent(config, emptyDatapath(new Promise((r) => (load = r))), silentLogger());
    const started = agent.start();
    const client = new AgentClient(agent.socketPath);
    const health = (): Promise<HealthReport> => client.call<HealthReport>('GET', '/v1/healthz');

    await until(async () => (await health().catch(() => undefined))?.checks[0]?.detail === 'loading the datapath', 'the agent to answer while it loads its datapath');
    const loading = await health();
    assert.equal(loading.ready, false);
    assert.deepEqual(loading.checks.map((c) => c.ok), [false, false, false]);
    // Everything else waits for the start, with a code the CNI plugin treats as "not running yet".
    await assert.rejects(client.call('GET', '/v1/status'), (err) => err instanceof AgentApiError && err.code === AGENT_STARTING);

    load();
    await started;
    const ready = await health();
    assert.equal(ready.ready, true, JSON.stringify(ready));
    assert.match(ready.checks[1]!.detail, /^etcd lease \d+ kept alive \(ttl 10s\)$/);
    assert.ok(await client.call('GET', '/v1/status'), 'every route once started');

    await etcd.stop({ keepData: true });
    await until(async () => !(await health()).ready, 'the agent to notice its lease is no longer kept (ttl 10 s)', 30_000);
    const lost = await health();
    assert.deepEqual(lost.checks.filter((c) => !c.ok).map((c) => c.name), ['kvstore'], JSON.stringify(lost));

    await etcd.start();
    await until(async () => (await health()).ready, 'a new lease once etcd is back', 30_000);
  });
});
