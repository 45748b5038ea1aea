import assert from 'node:assert/strict';
import { silentLogger } from '@weft/common';
import { useTestEtcd, until, KvClient } from '@weft/kvstore';
import { ClusterState } from './cluster-state.js';
import { validateAgentConfig } from './config.js';
import { MemoryDatapath } from './memory-datapath.js';
import type { EndpointRecord, ServiceRecord } from '@weft/schema';

/**
 * The mesh cache in etcd is only as trustworthy as whoever can write it. These records go
 * straight into it, past any clustermesh-apiserver, as a compromised writer would put them: the
 * agent's ClusterState must admit them by the same rules as the importer (mesh-admission.ts),
 * and local state always wins in the ipcache.
 */
describe('ClusterState: remote records that bypassed the importer @etcd', function () {
  this.timeout(30_000);
  const t = useTestEtcd('cluster-state-mesh');
  let state: ClusterState;
  let datapath: MemoryDatapath;
  let sentinels = 0;
  /** What the ClusterChange events said, from the start: must always be what the maps hold. */
  const told = { local: new Map<string, EndpointRecord>(), remote: new Map<string, EndpointRecord>(), services: new Map<string, ServiceRecord>() };
  const rogue = (4 << 16) | 300;
  const put = (key: string, value: unknown): Promise<void> => t.kv.put(key, typeof value === 'string' ? value : JSON.stringify(value)).then(() => undefined);
  const ep = (ip: string, identity = rogue, node = 'r1', nodeIp = '10.99.4.11') => ({ ip, identity, node, nodeIp, namespace: 'd', pod: `p-${ip}`, labels: { app: 'web' } });

  before(async () => {
    await put('weft/state/v1/nodes/e1', { name: 'e1', cluster: 'east', ip: '10.99.1.11', podCidr: '10.101.1.0/24', routing: 'vxlan' });
    await put('weft/state/v1/nodes/e2', { name: 'e2', cluster: 'east', ip: '10.99.1.12', podCidr: '10.101.2.0/24', routing: 'vxlan' });
    await put('weft/state/v1/endpoints/e1/10.101.1.5', { ip: '10.101.1.5', identity: (1 << 16) | 300, node: 'e1', nodeIp: '10.99.1.11', namespace: 'd', pod: 'local', labels: {} });
    // The remotes this cluster's clustermesh-apiserver lists, with the ids its configuration gives them.
    await put('weft/meshclusters/v1/rogue', { id: 4 });
    await put('weft/meshclusters/v1/west', { id: 2 });
    await put('weft/meshclusters/v1/evil', { id: 5 });
    await put(`weft/mesh/v1/rogue/identities/${rogue}`, 'k8s:app=web;k8s:weft.io/cluster=rogue');
    await put('weft/mesh/v1/rogue/nodes/r1', { name: 'r1', cluster: 'rogue', ip: '10.99.4.11', podCidr: '10.104.1.0/24', routing: 'vxlan' });
    await put('weft/mesh/v1/rogue/endpoints/10.104.1.5', ep('10.104.1.5'));
    await put('weft/mesh/v1/west/identities/131372', 'k8s:app=web;k8s:weft.io/cluster=west');
    const config = validateAgentConfig({ cluster: 'east', clusterId: 1, node: 'e1', etcd: [t.etcd.endpoint], nodeIp: '10.99.1.11', podCidr: '10.101.1.0/24', bpfDir: '/nonexistent', encryption: 'off', underlayCidrs: ['10.99.0.0/16'] });
    datapath = new MemoryDatapath();
    state = new ClusterState(config, new KvClient({ endpoints: [t.etcd.endpoint] }), datapath, () => [], silentLogger());
    state.onChange = (c) => {
      const [map, key] = c.kind === 'local-endpoint' ? [told.local, c.ip] : c.kind === 'remote-endpoint' ? [told.remote, `${c.cluster}/${c.ip}`] : [told.services, `${c.cluster}/${c.key}`];
      if (c.record) (map as Map<string, unknown>).set(key, c.record);
      else map.delete(key);
    };
    await state.start();
    await until(() => datapath.ipcache.get('10.104.1.5/32')?.identity === rogue, 'the legitimate remote pod');
  });
  after(async () => {
    await state?.stop();
  });

  /** A harmless remote pod, written after the attack: once it is in the ipcache, the attack was seen. */
  async function settle(): Promise<void> {
    const ip = `10.104.1.${100 + ++sentinels}`;
    await put(`weft/mesh/v1/rogue/endpoints/${ip}`, ep(ip));
    await until(() => datapath.ipcache.has(`${ip}/32`), `sentinel ${ip}`);
  }

  it('keeps local entries: a remote endpoint on a local node IP, a local pod or this node is not programmed', async () => {
    await put('weft/mesh/v1/rogue/endpoints/10.99.1.12', ep('10.99.1.12', 1));
    await put('weft/mesh/v1/rogue/endpoints/10.101.1.5', ep('10.101.1.5'));
    await put('weft/mesh/v1/rogue/endpoints/10.99.1.11', ep('10.99.1.11'));
    await settle();
    assert.deepEqual(datapath.ipcache.get('10.99.1.12/32'), { cidr: '10.99.1.12/32', identity: 6, flags: 2, clusterId: 1 });
    assert.deepEqual(datapath.ipcache.get('10.101.1.5/32'), { cidr: '10.101.1.5/32', identity: (1 << 16) | 300, flags: 1, clusterId: 1 });
    assert.equal(datapath.ipcache.get('10.99.1.11/32')?.identity, 1);
    assert.match(state.refused.get('weft/mesh/v1/rogue/endpoints/10.99.1.12')!, /cannot carry reserved identities/);
  });

  it('programs no world or Service address, and offers none as a service backend', async () => {
    await put('weft/mesh/v1/rogue/endpoints/8.8.8.8', ep('8.8.8.8'));
    await put('weft/mesh/v1/rogue/endpoints/10.96.0.10', ep('10.96.0.10'));
    await settle();
    assert.equal(datapath.ipcache.has('8.8.8.8/32'), false);
    assert.equal(datapath.ipcache.has('10.96.0.10/32'), false);
    // What the ServiceManager reads as rogue's backends: its admitted endpoints.
    const backends = [...state.admittedRemoteEndpoints()].filter(([id]) => id.startsWith('rogue/')).map(([, e]) => e.ip);
    assert.ok(backends.includes('10.104.1.5'));
    assert.ok(!backends.includes('8.8.8.8') && !backends.includes('10.96.0.10'), backends.join());
    assert.match(state.refused.get('weft/mesh/v1/rogue/endpoints/8.8.8.8')!, /outside the pod CIDR 10\.104\.1\.0\/24 of its node r1/);
  });

  it("refuses an endpoint carrying another remote's identity, and identities that are reserved or ours", async () => {
    await put('weft/mesh/v1/rogue/endpoints/10.104.1.7', ep('10.104.1.7', 131372));
    await put('weft/mesh/v1/rogue/identities/1', 'k8s:app=web;k8s:weft.io/cluster=rogue');
    await put(`weft/mesh/v1/rogue/identities/${(1 << 16) | 500}`, 'k8s:app=web;k8s:weft.io/cluster=rogue');
    await settle();
    assert.equal(datapath.ipcache.has('10.104.1.7/32'), false);
    assert.match(state.invalid.get('weft/mesh/v1/rogue/endpoints/10.104.1.7')!, /identity 131372 is not an identity of cluster 4/);
    assert.equal(state.remoteIdentities.has(1), false, 'a remote cannot define identity host for policy');
    assert.equal(state.remoteIdentities.has((1 << 16) | 500), false, 'nor one in our range');
    assert.match(state.invalid.get('weft/mesh/v1/rogue/identities/1')!, /reserved/);
  });

  it('uses no remote node whose pod CIDR overlaps the underlay or a local range', async () => {
    await put('weft/mesh/v1/rogue/nodes/r2', { name: 'r2', cluster: 'rogue', ip: '10.99.4.12', podCidr: '10.99.128.0/17', routing: 'vxlan' });
    await put('weft/mesh/v1/rogue/nodes/r3', { name: 'r3', cluster: 'rogue', ip: '10.99.4.13', podCidr: '10.101.0.0/16', routing: 'vxlan' });
    await put('weft/mesh/v1/rogue/nodes/r4', { name: 'r4', cluster: 'rogue', ip: '10.99.4.14', podCidr: '10.0.0.0/8', routing: 'vxlan' });
    await settle();
    for (const ip of ['10.99.4.12', '10.99.4.13', '10.99.4.14']) assert.equal(datapath.ipcache.has(`${ip}/32`), false, ip);
    assert.equal(datapath.ipcache.get('10.99.4.11/32')?.identity, 6, 'the legitimate remote node stays');
    assert.deepEqual([...state.admittedRemoteNodes().keys()], ['rogue/r1']);
    assert.match(state.refused.get('weft/mesh/v1/rogue/nodes/r2')!, /pod CIDR 10\.99\.128\.0\/17 overlaps the underlay 10\.99\.0\.0\/16/);
    assert.match(state.refused.get('weft/mesh/v1/rogue/nodes/r3')!, /overlaps local node e1's pod CIDR 10\.101\.1\.0\/24|overlaps local node e2's pod CIDR/);
    assert.match(state.refused.get('weft/mesh/v1/rogue/nodes/r4')!, /shorter than the \/16/);
  });

  it('uses neither of two remote nodes that claim the same range, whatever order they came in', async () => {
    await put('weft/mesh/v1/evil/nodes/x1', { name: 'x1', cluster: 'evil', ip: '10.99.5.11', podCidr: '10.104.1.0/25', routing: 'vxlan' });
    await until(() => !datapath.ipcache.has('10.104.1.5/32') && !datapath.ipcache.has('10.99.4.11/32'), "r1 and its pods to go");
    assert.equal(datapath.ipcache.has('10.99.5.11/32'), false);
    assert.match(state.refused.get('weft/mesh/v1/rogue/nodes/r1')!, /overlaps the pod CIDR of node evil\/x1/);
    assert.match(state.refused.get('weft/mesh/v1/evil/nodes/x1')!, /overlaps the pod CIDR of node rogue\/r1/);
    await t.kv.delete('weft/mesh/v1/evil/nodes/x1');
    await until(() => datapath.ipcache.has('10.104.1.5/32'), 'r1 back once the collision is gone');
  });

  it('tells each change of the endpoints in use and of remote services, admission included (ClusterChange)', async () => {
    // After the refusals and re-admissions above (some made inside a sync, by node admission).
    const record = { namespace: 'd', name: 'web', selector: { app: 'web' }, ports: [{ protocol: 'TCP', port: 80, targetPort: 8080 }] };
    await put('weft/mesh/v1/rogue/services/d.web', record);
    await put('weft/mesh/v1/rogue/services/d.gone', { ...record, name: 'gone' });
    await t.kv.delete('weft/mesh/v1/rogue/services/d.gone');
    await put('weft/state/v1/endpoints/e2/10.101.2.9', { ip: '10.101.2.9', identity: (1 << 16) | 300, node: 'e2', nodeIp: '10.99.1.12', namespace: 'd', pod: 'other', labels: { app: 'web' } });
    await settle();
    await until(() => state.endpoints.has('10.101.2.9') && state.remoteServices.has('rogue/d.web'), 'the new records');
    assert.deepEqual(told.local, state.endpoints);
    assert.deepEqual(told.remote, state.admittedRemoteEndpoints());
    assert.deepEqual(told.services, state.remoteServices);
    assert.ok(told.remote.size > 0 && told.services.has('rogue/d.web') && !told.services.has('rogue/d.gone'));
  });

  it('reads a remote only while it is listed: unlisted records are never used, and delisting withdraws all at once', async () => {
    await put('weft/mesh/v1/ghost/identities/393516', 'k8s:app=web;k8s:weft.io/cluster=ghost');
    await put('weft/mesh/v1/ghost/nodes/g1', { name: 'g1', cluster: 'ghost', ip: '10.99.6.11', podCidr: '10.106.1.0/24', routing: 'vxlan' });
    await put('weft/mesh/v1/ghost/endpoints/10.106.1.5', { ...ep('10.106.1.5', 393516, 'g1', '10.99.6.11') });
    await settle();
    assert.equal(datapath.ipcache.has('10.106.1.5/32'), false, 'ghost is not listed');
    assert.equal(state.remoteIdentities.has(393516), false);
    // Listed with an id that is not ghost's (the identity is in cluster 6's range): nothing of ghost is used.
    await put('weft/meshclusters/v1/ghost', { id: 1 });
    await settle();
    assert.match(state.invalid.get('weft/meshclusters/v1/ghost')!, /this cluster's own/);
    assert.equal(datapath.ipcache.has('10.106.1.5/32'), false);
    await put('weft/meshclusters/v1/ghost', { id: 6 });
    await until(() => datapath.ipcache.get('10.106.1.5/32')?.identity === 393516, "ghost's pod once ghost is listed");
    assert.deepEqual(state.remoteStores().find((r) => r.cluster === 'ghost'), { cluster: 'ghost', clusterId: 6, synced: true });
    await t.kv.delete('weft/meshclusters/v1/ghost');
    await until(() => !datapath.ipcache.has('10.106.1.5/32') && !datapath.ipcache.has('10.99.6.11/32'), "ghost's pod and node to go");
    assert.equal(state.remoteIdentities.has(393516), false);
    assert.equal(state.admittedRemoteNodes().has('ghost/g1'), false);
    assert.equal(state.remoteStores().some((r) => r.cluster === 'ghost'), false);
    assert.deepEqual(told.remote, state.admittedRemoteEndpoints(), 'the withdrawal was told endpoint by endpoint');
  });
});
