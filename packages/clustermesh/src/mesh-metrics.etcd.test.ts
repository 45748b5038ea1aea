import assert from 'node:assert/strict';
import { join } from 'node:path';
import { silentLogger } from '@weft/common';
import { EtcdProcess, KvClient, freePort, until } from '@weft/kvstore';
import { checkDocumented, documentedMetrics, parseExposition, sampleValue, scrape, type Family } from '@weft/metrics/testing';
import { ClusterMeshApiServer } from './apiserver.js';
import { createCa, issue, type Pem } from './certs.js';
import type { MeshConfig } from './types.js';

/**
 * Two real clustermesh-apiservers (east imports west), each with its own etcd and CA and a metrics
 * endpoint on loopback: both scraped over HTTP and read strictly, every family documented, values
 * following the link through a sync, a failure (west stops) and a reconnect (west back).
 */
describe('clustermesh-apiserver metrics over HTTP @etcd', function () {
  this.timeout(60_000);
  let etcdA: EtcdProcess;
  let etcdB: EtcdProcess;
  let kvB: KvClient;
  let caA: Pem;
  let caB: Pem;
  const servers: ClusterMeshApiServer[] = [];

  before(async () => {
    [etcdA, etcdB] = await Promise.all([EtcdProcess.start({ name: 'mesh-metrics-a' }), EtcdProcess.start({ name: 'mesh-metrics-b' })]);
    kvB = new KvClient({ endpoints: [etcdB.endpoint] });
    [caA, caB] = await Promise.all([createCa('east'), createCa('west')]);
  });
  after(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
    kvB?.close();
    await etcdA?.stop();
    await etcdB?.stop();
  });

  async function config(name: string, id: number, etcd: EtcdProcess, ca: Pem, port: number, remote: { name: string; id: number; port: number; ca: Pem; podCidrs?: string[] }): Promise<MeshConfig> {
    const server = await issue(ca, `clustermesh-${name}`, { ips: ['127.0.0.1'] });
    const client = await issue(remote.ca, name);
    return {
      cluster: name, clusterId: id, etcd: [etcd.endpoint], listen: `127.0.0.1:${port}`, ca: ca.cert, cert: server.cert, key: server.key, staleAfterSeconds: 600,
      remotes: [{ name: remote.name, id: remote.id, address: `127.0.0.1:${remote.port}`, ca: remote.ca.cert, cert: client.cert, key: client.key, ...(remote.podCidrs ? { podCidrs: remote.podCidrs } : {}) }],
      metrics: { listen: '127.0.0.1:0' },
    };
  }
  const read = async (s: ClusterMeshApiServer): Promise<Map<string, Family>> => {
    const r = await scrape(s.metrics!.address!);
    assert.equal(r.status, 200, r.body);
    return parseExposition(r.body);
  };

  it('serves every documented family; links synced, failed and reconnected; what is served and to whom', async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    await kvB.put('weft/identities/v1/id/131372', 'k8s:app=web;k8s:weft.io/cluster=west');
    await kvB.put('weft/state/v1/nodes/w1', JSON.stringify({ name: 'w1', cluster: 'west', ip: '10.99.2.11', podCidr: '10.102.1.0/24', routing: 'vxlan' }));
    await kvB.put('weft/state/v1/endpoints/w1/10.102.1.5', JSON.stringify({ ip: '10.102.1.5', identity: 131372, node: 'w1', nodeIp: '10.99.2.11', namespace: 'd', pod: 'web', labels: {} }));
    // A node outside the pod ranges east allows west: rejected by east.
    await kvB.put('weft/state/v1/nodes/w2', JSON.stringify({ name: 'w2', cluster: 'west', ip: '10.99.2.12', podCidr: '10.200.1.0/24', routing: 'vxlan' }));
    // An endpoint outside its node's pod CIDR: west does not serve it.
    await kvB.put('weft/state/v1/endpoints/w1/10.103.0.9', JSON.stringify({ ip: '10.103.0.9', identity: 131372, node: 'w1', nodeIp: '10.99.2.11', namespace: 'd', pod: 'stray', labels: {} }));
    const westConfig = await config('west', 2, etcdB, caB, portB, { name: 'east', id: 1, port: portA, ca: caA });
    let west = new ClusterMeshApiServer(westConfig, silentLogger());
    const east = new ClusterMeshApiServer(await config('east', 1, etcdA, caA, portA, { name: 'west', id: 2, port: portB, ca: caB, podCidrs: ['10.102.0.0/16'] }), silentLogger());
    servers.push(east, west);
    await west.start();
    await east.start();
    await until(() => east.status().remotes[0]!.state === 'synced' && east.status().remotes[0]!.rejectedByKind.nodes > 0, 'east to sync from west');

    const docs = documentedMetrics(join(__dirname, '..', '..', '..', 'docs', 'metrics.md'), 'clustermesh-apiserver');
    const e = await read(east);
    checkDocumented(e, docs, { cluster: 'east' });
    const v = (m: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined => sampleValue(m, name, labels);
    const w = { target_cluster: 'west' };
    assert.equal(v(e, 'weft_clustermesh_remote_clusters'), 1);
    assert.equal(v(e, 'weft_clustermesh_remote_cluster_readiness_status', w), 1);
    assert.deepEqual(['connecting', 'syncing', 'synced', 'disconnected', 'stopped'].map((state) => v(e, 'weft_clustermesh_remote_cluster_state', { ...w, state })), [0, 0, 1, 0, 0]);
    assert.deepEqual(['identities', 'nodes', 'endpoints', 'services'].map((kind) => v(e, 'weft_clustermesh_remote_cluster_records', { ...w, kind })), [1, 1, 1, 0]);
    assert.equal(v(e, 'weft_clustermesh_remote_cluster_rejected_records_total', { ...w, kind: 'nodes' }), 1, 'w2 outside the allowed pod ranges');
    assert.equal(v(e, 'weft_clustermesh_remote_cluster_over_limit_records_total', { ...w, kind: 'nodes' }), 0);
    assert.equal(v(e, 'weft_clustermesh_remote_cluster_sync_duration_seconds_count', w), 1);
    assert.equal(v(e, 'weft_clustermesh_remote_cluster_sync_duration_seconds_sum', w), east.status().remotes[0]!.syncMs! / 1000, 'the sync time of weft clustermesh status');
    assert.deepEqual([v(e, 'weft_clustermesh_remote_cluster_failures_total', w), v(e, 'weft_clustermesh_remote_cluster_reconnects_total', w), v(e, 'weft_clustermesh_remote_cluster_last_failure_ts', w)], [0, 0, 0]);
    const ws = await read(west);
    checkDocumented(ws, docs, { cluster: 'west' });
    assert.equal(v(ws, 'weft_clustermesh_subscribers'), 1, 'east reads west');
    assert.deepEqual(['identities', 'nodes', 'endpoints'].map((kind) => v(ws, 'weft_clustermesh_exported_records', { kind })), [1, 2, 1]);
    assert.equal(v(ws, 'weft_clustermesh_unexported_endpoints'), 1);
    assert.equal(v(ws, 'weft_clustermesh_subscriber_pending_keys', { target_cluster: 'east' }), 0);
    assert.equal(v(ws, 'weft_clustermesh_refused_peers_total'), 0);

    // West goes: east's link fails; west comes back on the same port: east reconnects and syncs again.
    const stoppedAt = Date.now() / 1000;
    await west.stop();
    await until(async () => v(await read(east), 'weft_clustermesh_remote_cluster_failures_total', w)! >= 1, 'the failure to be counted');
    const failed = await read(east);
    assert.equal(v(failed, 'weft_clustermesh_remote_cluster_readiness_status', w), 0);
    assert.ok(v(failed, 'weft_clustermesh_remote_cluster_last_failure_ts', w)! >= Math.floor(stoppedAt) - 1);
    west = new ClusterMeshApiServer(westConfig, silentLogger());
    servers.push(west);
    await west.start();
    await until(() => east.status().remotes[0]!.state === 'synced', 'east to sync again', 30_000);
    const again = await read(east);
    assert.ok(v(again, 'weft_clustermesh_remote_cluster_reconnects_total', w)! >= 1);
    assert.equal(v(again, 'weft_clustermesh_remote_cluster_sync_duration_seconds_count', w), 2);
    assert.equal(v(again, 'weft_clustermesh_remote_cluster_readiness_status', w), 1);
  });
});
