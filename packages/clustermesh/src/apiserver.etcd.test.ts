import assert from 'node:assert/strict';
import { EtcdProcess, KvClient, freePort, until } from '@weft/kvstore';
import { silentLogger } from '@weft/common';
import { ClusterMeshApiServer, MESH_STATUS_PREFIX } from './apiserver.js';
import { createCa, issue, type Pem } from './certs.js';
import type { MeshConfig } from './types.js';

/**
 * Two clustermesh-apiservers on loopback, each with its own real etcd and CA,
 * talking gRPC over mTLS: the whole protocol without root or a lab.
 */
describe('clustermesh-apiserver pair @etcd', function () {
  this.timeout(60_000);
  let etcdA: EtcdProcess;
  let etcdB: EtcdProcess;
  let kvA: KvClient;
  let kvB: KvClient;
  let caA: Pem;
  let caB: Pem;
  const servers: ClusterMeshApiServer[] = [];

  before(async () => {
    [etcdA, etcdB] = await Promise.all([EtcdProcess.start({ name: 'mesh-a' }), EtcdProcess.start({ name: 'mesh-b' })]);
    kvA = new KvClient({ endpoints: [etcdA.endpoint] });
    kvB = new KvClient({ endpoints: [etcdB.endpoint] });
    caA = await createCa('east');
    caB = await createCa('west');
  });
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });
  after(async () => {
    kvA?.close();
    kvB?.close();
    await etcdA?.stop();
    await etcdB?.stop();
  });

  async function config(name: string, id: number, etcd: EtcdProcess, ca: Pem, port: number, remote?: { name: string; id: number; port: number; ca: Pem; trustedCa?: Pem }): Promise<MeshConfig> {
    const server = await issue(ca, `clustermesh-${name}`, { ips: ['127.0.0.1'] });
    const cfg: MeshConfig = { cluster: name, clusterId: id, etcd: [etcd.endpoint], listen: `127.0.0.1:${port}`, ca: ca.cert, cert: server.cert, key: server.key, remotes: [], staleAfterSeconds: 600 };
    if (remote) {
      const client = await issue(remote.ca, name);
      cfg.remotes.push({ name: remote.name, id: remote.id, address: `127.0.0.1:${remote.port}`, ca: (remote.trustedCa ?? remote.ca).cert, cert: client.cert, key: client.key });
    }
    return cfg;
  }

  it('imports a remote snapshot, then its changes and deletions, and publishes status', async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    // west has state; east imports it.
    await kvB.put('weft/identities/v1/id/131372', 'k8s:app=web;k8s:weft.io/cluster=west');
    await kvB.put('weft/state/v1/nodes/w1', JSON.stringify({ name: 'w1', cluster: 'west', ip: '10.99.2.11', podCidr: '10.102.1.0/24', routing: 'vxlan' }));
    await kvB.put('weft/state/v1/endpoints/w1/10.102.1.5', JSON.stringify({ ip: '10.102.1.5', identity: 131372, node: 'w1', nodeIp: '10.99.2.11', namespace: 'd', pod: 'web', labels: { app: 'web' } }));
    const service = (name: string, annotations: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'd', labels: {}, annotations }, spec: { type: 'ClusterIP', clusterIP: '10.96.0.9', selector: { app: 'web' }, ports: [{ protocol: 'TCP', port: 80, targetPort: 8080 }] } });
    await kvB.put('weft/resources/v1/Service/d/web', JSON.stringify(service('web', { 'weft.io/global': 'true' })));
    await kvB.put('weft/resources/v1/Service/d/private', JSON.stringify(service('private', { 'weft.io/global': 'true', 'weft.io/shared': 'false' })));
    await kvB.put('weft/resources/v1/Service/d/plain', JSON.stringify(service('plain', {})));
    const west = new ClusterMeshApiServer(await config('west', 2, etcdB, caB, portB, { name: 'east', id: 1, port: portA, ca: caA }), silentLogger());
    const east = new ClusterMeshApiServer(await config('east', 1, etcdA, caA, portA, { name: 'west', id: 2, port: portB, ca: caB }), silentLogger());
    servers.push(west, east);
    await west.start();
    await east.start();
    await until(() => east.status().remotes[0]!.state === 'synced', 'east to sync from west');
    // Only the global, shared service is exported, as a record without the cluster's ClusterIP.
    assert.deepEqual((await kvA.list('weft/mesh/v1/west/services/')).items.map((kv) => kv.key), ['weft/mesh/v1/west/services/d.web']);
    assert.deepEqual(JSON.parse((await kvA.get('weft/mesh/v1/west/services/d.web'))!.value.toString()), { namespace: 'd', name: 'web', selector: { app: 'web' }, ports: [{ protocol: 'TCP', port: 80, targetPort: 8080 }] });
    // A service that stops being global stops being exported.
    await kvB.put('weft/resources/v1/Service/d/web', JSON.stringify(service('web', { 'weft.io/global': 'false' })));
    await until(async () => (await kvA.get('weft/mesh/v1/west/services/d.web')) === undefined, 'the service export to be withdrawn');
    assert.equal((await kvA.get('weft/mesh/v1/west/endpoints/10.102.1.5'))?.value.toString().includes('"pod":"web"'), true);
    assert.ok(await kvA.get('weft/mesh/v1/west/identities/131372'));
    assert.ok(await kvA.get('weft/mesh/v1/west/synced/endpoints'));
    // The remote listed with its cluster id as our configuration gives it: agents read its records while it is, and hold its tunnel packets to the id.
    assert.deepEqual(JSON.parse((await kvA.get('weft/meshclusters/v1/west'))!.value.toString()), { id: 2 });
    // A change and a deletion follow as deltas.
    await kvB.put('weft/state/v1/endpoints/w1/10.102.1.6', JSON.stringify({ ip: '10.102.1.6', identity: 131372, node: 'w1', nodeIp: '10.99.2.11', namespace: 'd', pod: 'web2', labels: {} }));
    await kvB.delete('weft/state/v1/endpoints/w1/10.102.1.5');
    await until(async () => (await kvA.get('weft/mesh/v1/west/endpoints/10.102.1.6')) !== undefined && (await kvA.get('weft/mesh/v1/west/endpoints/10.102.1.5')) === undefined, 'deltas to arrive');
    await until(() => east.status().remotes[0]!.counts.endpoints === 1, 'the count to follow the deltas');
    assert.deepEqual(east.status().remotes[0]!.counts, { identities: 1, nodes: 1, endpoints: 1, services: 0 });
    await until(async () => (await kvA.get(`${MESH_STATUS_PREFIX}east`)) !== undefined, 'status to be published');
  });

  it("imports a snapshot larger than etcd's default transaction limit (128 operations)", async () => {
    await kvA.deletePrefix('weft/mesh/v1/');
    const [portA, portB] = [await freePort(), await freePort()];
    const { op } = await import('@weft/kvstore');
    await kvB.put('weft/state/v1/nodes/w9', JSON.stringify({ name: 'w9', cluster: 'west', ip: '10.99.2.19', podCidr: '10.102.8.0/21', routing: 'vxlan' }));
    for (let i = 0; i < 1000; i += 100) {
      const ops = [];
      for (let j = i; j < i + 100; j++) {
        const ip = `10.102.${9 + Math.floor(j / 250)}.${j % 250}`;
        ops.push(op.put(`weft/state/v1/endpoints/w9/${ip}`, JSON.stringify({ ip, identity: 131372, node: 'w9', nodeIp: '10.99.2.19', namespace: 'd', pod: `p${j}`, labels: {} })));
      }
      await kvB.txn('seed', { compare: [], success: ops });
    }
    try {
      const west = new ClusterMeshApiServer(await config('west', 2, etcdB, caB, portB, { name: 'east', id: 1, port: portA, ca: caA }), silentLogger());
      const east = new ClusterMeshApiServer(await config('east', 1, etcdA, caA, portA, { name: 'west', id: 2, port: portB, ca: caB }), silentLogger());
      servers.push(west, east);
      await west.start();
      await east.start();
      await until(() => east.status().remotes[0]!.state === 'synced', 'east to sync from west');
      assert.equal(await kvA.count('weft/mesh/v1/west/endpoints/'), await kvB.count('weft/state/v1/endpoints/'));
      assert.ok(east.status().remotes[0]!.counts.endpoints >= 1000);
    } finally {
      await kvB.deletePrefix('weft/state/v1/endpoints/w9/');
      await kvB.delete('weft/state/v1/nodes/w9');
    }
  });

  it('exports only endpoints inside their node\'s podCidr, and counts the rest in status', async () => {
    await kvA.deletePrefix('weft/mesh/v1/');
    const [portA, portB] = [await freePort(), await freePort()];
    const ep = (node: string, ip: string, nodeIp: string, pod: string) => JSON.stringify({ ip, identity: 131372, node, nodeIp, namespace: 'd', pod, labels: {} });
    await kvB.put('weft/state/v1/nodes/w1', JSON.stringify({ name: 'w1', cluster: 'west', ip: '10.99.2.11', podCidr: '10.102.1.0/24', routing: 'vxlan' }));
    await kvB.put('weft/state/v1/nodes/w2', JSON.stringify({ name: 'w2', cluster: 'west', ip: '10.99.2.12', podCidr: '10.102.2.0/24', routing: 'vxlan' }));
    await kvB.put('weft/state/v1/endpoints/w1/10.102.1.40', ep('w1', '10.102.1.40', '10.99.2.11', 'real'));
    // w2 claims w1's address, an address outside every pod CIDR, and a node that does not exist.
    await kvB.put('weft/state/v1/endpoints/w2/10.102.1.40', ep('w2', '10.102.1.40', '10.99.2.12', 'thief'));
    await kvB.put('weft/state/v1/endpoints/w2/8.8.8.8', ep('w2', '8.8.8.8', '10.99.2.12', 'dns'));
    await kvB.put('weft/state/v1/endpoints/ghost/10.102.3.3', ep('ghost', '10.102.3.3', '10.99.2.13', 'ghost'));
    try {
      const west = new ClusterMeshApiServer(await config('west', 2, etcdB, caB, portB, { name: 'east', id: 1, port: portA, ca: caA }), silentLogger());
      const east = new ClusterMeshApiServer(await config('east', 1, etcdA, caA, portA, { name: 'west', id: 2, port: portB, ca: caB }), silentLogger());
      servers.push(west, east);
      await west.start();
      await east.start();
      await until(() => east.status().remotes[0]!.state === 'synced', 'east to sync from west');
      assert.match((await kvA.get('weft/mesh/v1/west/endpoints/10.102.1.40'))!.value.toString(), /"pod":"real"/);
      assert.equal(await kvA.get('weft/mesh/v1/west/endpoints/8.8.8.8'), undefined);
      assert.equal(await kvA.get('weft/mesh/v1/west/endpoints/10.102.3.3'), undefined);
      const unexported = west.status().unexportedEndpoints!;
      assert.equal(unexported.count, 3);
      assert.deepEqual(Object.fromEntries(unexported.examples.map((e) => [e.key, e.reason])), {
        'weft/state/v1/endpoints/w2/10.102.1.40': 'ip 10.102.1.40 is outside podCidr 10.102.2.0/24 of node w2',
        'weft/state/v1/endpoints/w2/8.8.8.8': 'ip 8.8.8.8 is outside podCidr 10.102.2.0/24 of node w2',
        'weft/state/v1/endpoints/ghost/10.102.3.3': 'node ghost has no node record',
      });
    } finally {
      await kvB.deletePrefix('weft/state/v1/endpoints/w2/');
      await kvB.deletePrefix('weft/state/v1/endpoints/ghost/');
      await kvB.delete('weft/state/v1/endpoints/w1/10.102.1.40');
      await kvB.delete('weft/state/v1/nodes/w2');
    }
  });

  it('refuses a remote whose certificate comes from another CA, and says so', async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    const rogue = await createCa('rogue');
    const west = new ClusterMeshApiServer(await config('west', 2, etcdB, caB, portB, { name: 'east', id: 1, port: portA, ca: caA }), silentLogger());
    // east's client certificate is issued by a rogue CA, not by west's.
    const east = new ClusterMeshApiServer(await config('east', 1, etcdA, caA, portA, { name: 'west', id: 2, port: portB, ca: rogue, trustedCa: caB }), silentLogger());
    servers.push(west, east);
    await west.start();
    await east.start();
    await until(() => east.status().remotes[0]!.lastError !== undefined, 'the refusal to show');
    assert.notEqual(east.status().remotes[0]!.state, 'synced');
    assert.match(east.status().remotes[0]!.lastError!, /UNAVAILABLE|certificate|handshake|alert|ECONNRESET/i);
  });

  it('is refused with an expired client certificate, and status says it expired', async () => {
    await kvA.deletePrefix('weft/mesh/v1/');
    const [portA, portB] = [await freePort(), await freePort()];
    const west = new ClusterMeshApiServer(await config('west', 2, etcdB, caB, portB, { name: 'east', id: 1, port: portA, ca: caA }), silentLogger());
    const eastConfig = await config('east', 1, etcdA, caA, portA, { name: 'west', id: 2, port: portB, ca: caB });
    const expired = await issue(caB, 'east', { days: 1, notBefore: new Date(Date.now() - 3 * 86_400_000) });
    eastConfig.remotes[0]!.cert = expired.cert;
    eastConfig.remotes[0]!.key = expired.key;
    const east = new ClusterMeshApiServer(eastConfig, silentLogger());
    servers.push(west, east);
    await west.start();
    await east.start();
    await until(() => /UNAVAILABLE|alert|handshake|ECONNRESET|expired/i.test(east.status().remotes[0]!.lastError ?? '') && east.status().remotes[0]!.lastError!.includes('('), 'the refusal to show');
    const s = east.status().remotes[0]!;
    assert.notEqual(s.state, 'synced');
    assert.match(s.lastError!, /^our client certificate \(CN=east\) expired on \d{4}-/);
    assert.equal((await kvA.list('weft/mesh/v1/west/')).items.length, 0, 'nothing imported');
  });

  it('rejects remote configurations with the reason in status', async () => {
    const port = await freePort();
    const cfg = await config('east', 1, etcdA, caA, port);
    cfg.remotes.push({ name: 'self', id: 1, address: '127.0.0.1:1', ca: caB.cert, cert: caB.cert, key: caB.key });
    const s = new ClusterMeshApiServer(cfg, silentLogger());
    servers.push(s);
    await s.start();
    assert.deepEqual(s.status().rejectedRemotes, [{ remote: 'self', reason: "cluster id 1 is this cluster's own id" }]);
    assert.equal(s.status().remotes.length, 0);
  });
});
