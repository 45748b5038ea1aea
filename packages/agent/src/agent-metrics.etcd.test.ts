import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@weft/common';
import { until, useTestEtcd } from '@weft/kvstore';
import { checkDocumented, documentedMetrics, parseExposition, sampleValue, scrape, type Family } from '@weft/metrics/testing';
import { ResourceStore, type Resource } from '@weft/resources';
import { Agent } from './agent.js';
import { validateAgentConfig } from './config.js';
import type { Endpoint } from './endpoint-manager.js';
import type { FlowSample } from './datapath-port.js';
import { MemoryDatapath } from './memory-datapath.js';

/**
 * The real Agent with the in-memory datapath (no root), a real etcd, two endpoints and a policy:
 * its /metrics scraped over HTTP and read strictly, every family documented and served, values
 * following what the agent did (regenerations, identities) and the flows the datapath reported.
 */
describe('agent metrics over HTTP @etcd', function () {
  this.timeout(60_000);
  const t = useTestEtcd('agent-metrics');
  let dir: string;
  let agent: Agent | undefined;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'weft-agent-metrics-'));
  });
  after(async () => {
    await agent?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo', labels: { team: 'a' }, annotations: {} }, spec: {} } as unknown as Resource;
  const pod = (name: string, labels: Record<string, string>): Resource => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'demo', labels, annotations: {} }, spec: { nodeName: 'n1', containers: [{ name: 'c', command: [] }] } }) as unknown as Resource;
  const policy = {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'db', namespace: 'demo', labels: {}, annotations: {} },
    spec: { podSelector: { matchLabels: { app: 'db' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }] }] },
  } as unknown as Resource;
  const saved = (epId: number, name: string, labels: Record<string, string>): Endpoint => ({
    epId, containerId: `c-${name}`, namespace: 'demo', pod: name, ip: `10.101.1.${epId + 10}`, hostIf: `weftmet${epId}`, podIf: 'eth0', netns: '-', identity: 0, labels, namespaceLabels: { team: 'a' }, mac: '02:00:00:00:00:01', nodeMac: '02:00:00:00:00:02',
  });

  it('serves every documented family, with values that follow the agent and its flows', async () => {
    await new ResourceStore(t.kv).apply([ns, pod('web', { app: 'web' }), pod('db', { app: 'db' }), policy]);
    // Two endpoints as an agent left them (no veth needed to adopt them).
    writeFileSync(join(dir, 'endpoints.json'), JSON.stringify([saved(1, 'web', { app: 'web' }), saved(2, 'db', { app: 'db' })]));
    const config = validateAgentConfig({ cluster: 'c1', clusterId: 1, node: 'n1', etcd: [t.etcd.endpoint], nodeIp: '10.99.1.11', podCidr: '10.101.1.0/24', bpfDir: '/nonexistent', stateDir: dir, encryption: 'off', metrics: { listen: '127.0.0.1:0' } });
    const datapath = new MemoryDatapath();
    agent = new Agent(config, datapath, silentLogger());
    await agent.start();
    const address = agent.metrics!.address!;
    assert.equal(address.host, '127.0.0.1');

    const read = async (): Promise<Map<string, Family>> => {
      const r = await scrape(address);
      assert.equal(r.status, 200, r.body);
      assert.equal(r.contentType, 'text/plain; version=0.0.4; charset=utf-8');
      return parseExposition(r.body);
    };
    const before = await read();
    checkDocumented(before, documentedMetrics(join(__dirname, '..', '..', '..', 'docs', 'metrics.md'), 'Agent'), { cluster: 'c1', node: 'n1' });
    assert.equal(sampleValue(before, 'weft_drop_count_total', { reason: 'POLICY_DENIED' }), undefined, 'no drop yet');

    // What the datapath reports: web -> db allowed by the rule, an intruder's packet to db dropped
    // by default deny, a new connection refused for want of conntrack room, an audit.
    const [web, db] = [agent.endpoints.list().find((e) => e.pod === 'web')!, agent.endpoints.list().find((e) => e.pod === 'db')!];
    const f: FlowSample = { timestampNs: 1n, srcIdentity: web.identity, dstIdentity: db.identity, saddr: web.ip, daddr: db.ip, sport: 40000, dport: 5432, protocol: 6, verdict: 1, dropReason: 0, point: 2, epId: db.epId, flags: 0x2, length: 60, ruleId: 1, tcpFlags: 0x02, servicePort: 0 };
    datapath.emitFlow(f);
    datapath.emitFlow({ ...f, srcIdentity: 2, saddr: '10.99.255.250', verdict: 2, dropReason: 1, ruleId: 0, length: 74 });
    datapath.emitFlow({ ...f, point: 1, verdict: 2, dropReason: 20, ruleId: 0 });
    datapath.emitFlow({ ...f, verdict: 3, dropReason: 1, ruleId: 0 });
    datapath.loseFlowEvents(2n);

    const m = await read();
    const v = (name: string, labels: Record<string, string> = {}): number | undefined => sampleValue(m, name, labels);
    assert.equal(v('weft_drop_count_total', { reason: 'POLICY_DENIED', direction: 'INGRESS' }), 1);
    assert.equal(v('weft_drop_bytes_total', { reason: 'POLICY_DENIED', direction: 'INGRESS' }), 74);
    assert.equal(v('weft_drop_count_total', { reason: 'CT_FULL', direction: 'EGRESS' }), 1);
    assert.equal(v('weft_flows_total', { verdict: 'FORWARDED', direction: 'INGRESS' }), 1);
    assert.equal(v('weft_flows_total', { verdict: 'DROPPED', direction: 'INGRESS' }), 1);
    assert.equal(v('weft_flows_total', { verdict: 'AUDIT', direction: 'INGRESS' }), 1);
    assert.equal(v('weft_policy_verdict_total', { direction: 'INGRESS', match: 'rule', action: 'allow' }), 1);
    assert.equal(v('weft_policy_verdict_total', { direction: 'INGRESS', match: 'default', action: 'deny' }), 1);
    assert.equal(v('weft_policy_verdict_total', { direction: 'EGRESS', match: 'default', action: 'deny' }), 0, 'CT_FULL is no policy decision');
    assert.equal(v('weft_policy_verdict_total', { direction: 'INGRESS', match: 'default', action: 'audit' }), 1);
    assert.equal(v('weft_flow_events_lost_total'), 2, 'what the ring buffer could not deliver');

    // The agent's own state.
    assert.equal(v('weft_endpoint'), 2);
    assert.deepEqual(['ok', 'stale', 'fail-closed', 'error'].map((state) => v('weft_endpoint_state', { state })), [2, 0, 0, 0]);
    assert.equal(v('weft_policy'), 1);
    assert.equal(v('weft_identity', { type: 'cluster' }), agent.allocator.cache.size);
    assert.ok(agent.allocator.cache.size >= 2, 'web and db have identities');
    assert.equal(v('weft_identity', { type: 'remote' }), 0);
    const regenerated = v('weft_endpoint_regenerations_total', { scope: 'full', outcome: 'ok' })!;
    assert.ok(regenerated >= 2, `both endpoints regenerated in full (${regenerated})`);
    assert.equal(v('weft_endpoint_regeneration_time_stats_seconds_count', { scope: 'full' }), regenerated + (v('weft_endpoint_regenerations_total', { scope: 'full', outcome: 'error' }) ?? 0));
    assert.equal(v('weft_conntrack_entries'), 0);
    assert.equal(v('weft_conntrack_endpoint_quota'), 65_536);
    assert.equal(v('weft_conntrack_drops_total', { reason: 'CT_FULL' }), 0, 'the datapath\'s own count (the memory datapath keeps none)');
    assert.equal(v('weft_ipcache_incomplete'), 0);
    assert.equal(v('weft_clustermesh_remote_clusters'), 0);
    assert.equal(v('weft_encryption_mode', { mode: 'off' }), 1);
    assert.equal(v('weft_encryption_peers'), 0);
    assert.deepEqual(m.get('weft_wireguard_epoch')!.samples, [], 'no WireGuard series with encryption off');
    assert.equal(v('weft_encryption_key_rotations_total', { outcome: 'done' }), 0);
    assert.equal(v('weft_metrics_collect_errors_total'), undefined, 'no reader failed');
    assert.ok(v('weft_process_resident_memory_bytes')! > 0);

    // A policy change regenerates db again; the counters only grow.
    await new ResourceStore(t.kv).apply([{ ...policy, spec: { ...(policy as unknown as { spec: object }).spec, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }], ports: [{ protocol: 'TCP', port: 5432 }] }] } } as unknown as Resource]);
    await until(async () => sampleValue(await read(), 'weft_endpoint_regenerations_total', { scope: 'full', outcome: 'ok' })! > regenerated, 'db to be regenerated for the changed policy');

    await agent.stop();
    agent = undefined;
    await assert.rejects(scrape(address), /ECONNREFUSED/, 'the endpoint goes with the agent');
  });
});
