import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { ClusterState, MemoryDatapath, validateAgentConfig } from '@weft/agent';
import { silentLogger } from '@weft/common';
import { EtcdProcess, KvClient, freePort, until } from '@weft/kvstore';
import { ClusterMeshApiServer } from './apiserver.js';
import { createCa, issue, type Pem } from './certs.js';
import type { MeshConfig, MeshKind, SyncBatch } from './types.js';
import { MeshService } from './wire.js';

/**
 * A hostile remote cluster: a gRPC server speaking the mesh protocol over mTLS, with whatever
 * records a test crafts. Each test sends its attack, then a harmless record (the sentinel), and
 * waits for the sentinel to land in the local agent's ipcache: by then the attack has been
 * through the real importer, the real etcd and the real ClusterState, and the test asserts it
 * landed nowhere.
 */
class HostileRemote {
  private readonly server = new grpc.Server();
  private call: grpc.ServerWritableStream<unknown, SyncBatch> | undefined;
  port = 0;

  constructor(private readonly snapshot: SyncBatch[]) {}

  async start(ca: Pem, name: string): Promise<void> {
    this.server.addService(MeshService, {
      sync: (call: grpc.ServerWritableStream<unknown, SyncBatch>) => {
        this.call = call;
        for (const b of this.snapshot) call.write(b);
      },
      health: (_c: unknown, done: grpc.sendUnaryData<object>) => done(null, {}),
    });
    const cert = await issue(ca, `clustermesh-${name}`, { ips: ['127.0.0.1'] });
    const creds = grpc.ServerCredentials.createSsl(Buffer.from(ca.cert), [{ cert_chain: Buffer.from(cert.cert), private_key: Buffer.from(cert.key) }], true);
    this.port = await new Promise<number>((resolve, reject) => this.server.bindAsync('127.0.0.1:0', creds, (err, port) => (err ? reject(err) : resolve(port))));
  }

  send(kind: MeshKind, upserts: Array<[string, unknown]>, deletes: string[] = []): void {
    assert.ok(this.call, 'no importer connected');
    this.call.write({ kind, upserts: upserts.map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]), deletes });
  }

  stop(): void {
    this.server.forceShutdown();
  }
}

const WEST = 2;
const SOUTH = 3;
const westId = (n: number): number => (WEST << 16) | n;
const southId = (n: number): number => (SOUTH << 16) | n;
const westNode = (name: string, ip: string, podCidr: string) => ({ name, cluster: 'west', ip, podCidr, routing: 'vxlan' });
const westEp = (ip: string, node = 'w1', nodeIp = '10.99.2.11', identity = westId(300)) => ({ ip, identity, node, nodeIp, namespace: 'd', pod: `p-${ip}`, labels: { app: 'web' } });
const synced = (kind: MeshKind): SyncBatch => ({ kind, upserts: [], deletes: [], synced: true });

describe('clustermesh: a hostile remote cluster @etcd', function () {
  this.timeout(60_000);
  let etcd: EtcdProcess;
  let kv: KvClient;
  let east: ClusterMeshApiServer;
  let west: HostileRemote;
  let south: HostileRemote;
  let state: ClusterState;
  let datapath: MemoryDatapath;
  let sentinels = 0;

  before(async () => {
    etcd = await EtcdProcess.start({ name: 'mesh-hostile' });
    kv = new KvClient({ endpoints: [etcd.endpoint] });
    // east, the cluster under attack: two nodes, a pod on e1 and its identity.
    await kv.put('weft/state/v1/nodes/e1', JSON.stringify({ name: 'e1', cluster: 'east', ip: '10.99.1.11', podCidr: '10.101.1.0/24', routing: 'vxlan' }));
    await kv.put('weft/state/v1/nodes/e2', JSON.stringify({ name: 'e2', cluster: 'east', ip: '10.99.1.12', podCidr: '10.101.2.0/24', routing: 'vxlan' }));
    await kv.put('weft/state/v1/endpoints/e1/10.101.1.5', JSON.stringify({ ip: '10.101.1.5', identity: (1 << 16) | 300, node: 'e1', nodeIp: '10.99.1.11', namespace: 'd', pod: 'local', labels: {} }));
    const [westCa, southCa, eastCa] = await Promise.all([createCa('west'), createCa('south'), createCa('east')]);
    west = new HostileRemote([
      { kind: 'identities', upserts: [[String(westId(300)), 'k8s:app=web;k8s:weft.io/cluster=west']], deletes: [], synced: true },
      { kind: 'nodes', upserts: [['w1', JSON.stringify(westNode('w1', '10.99.2.11', '10.102.1.0/24'))]], deletes: [], synced: true },
      { kind: 'endpoints', upserts: [['10.102.1.5', JSON.stringify(westEp('10.102.1.5'))]], deletes: [], synced: true },
      synced('services'),
    ]);
    south = new HostileRemote([
      { kind: 'identities', upserts: [[String(southId(300)), 'k8s:app=db;k8s:weft.io/cluster=south']], deletes: [], synced: true },
      { kind: 'nodes', upserts: [['s1', JSON.stringify({ name: 's1', cluster: 'south', ip: '10.99.3.11', podCidr: '10.103.1.0/24', routing: 'vxlan' })]], deletes: [], synced: true },
      synced('endpoints'),
      synced('services'),
    ]);
    await west.start(westCa, 'west');
    await south.start(southCa, 'south');
    const server = await issue(eastCa, 'clustermesh-east', { ips: ['127.0.0.1'] });
    const config: MeshConfig = {
      cluster: 'east',
      clusterId: 1,
      etcd: [etcd.endpoint],
      listen: `127.0.0.1:${await freePort()}`,
      ca: eastCa.cert,
      cert: server.cert,
      key: server.key,
      underlayCidrs: ['10.99.0.0/16'],
      remotes: [
        { name: 'west', id: WEST, address: `127.0.0.1:${west.port}`, ca: westCa.cert, ...(await issue(westCa, 'east')), podCidrs: ['10.102.0.0/16'], limits: { endpoints: 40, identities: 10, bytes: 64 * 1024 } },
        { name: 'south', id: SOUTH, address: `127.0.0.1:${south.port}`, ca: southCa.cert, ...(await issue(southCa, 'east')) },
      ],
    };
    east = new ClusterMeshApiServer(config, silentLogger());
    await east.start();
    await until(() => east.status().remotes.every((r) => r.state === 'synced'), 'east to sync from both remotes');
    // The agent of e1, reading the local etcd as every agent does.
    const agentConfig = validateAgentConfig({ cluster: 'east', clusterId: 1, node: 'e1', etcd: [etcd.endpoint], nodeIp: '10.99.1.11', podCidr: '10.101.1.0/24', bpfDir: '/nonexistent', encryption: 'off', underlayCidrs: ['10.99.0.0/16'] });
    datapath = new MemoryDatapath();
    state = new ClusterState(agentConfig, new KvClient({ endpoints: [etcd.endpoint] }), datapath, () => [], silentLogger());
    await state.start();
    await until(() => datapath.ipcache.get('10.102.1.5/32')?.identity === westId(300), "the remote's legitimate pod in the ipcache");
  });

  after(async () => {
    await state?.stop();
    await east?.stop();
    west?.stop();
    south?.stop();
    kv?.close();
    await etcd?.stop();
  });

  /** Sends a harmless west pod and waits until the agent has it: everything sent before went through. */
  async function settle(): Promise<void> {
    const ip = `10.102.1.${100 + ++sentinels}`;
    west.send('endpoints', [[ip, westEp(ip)]]);
    await until(() => datapath.ipcache.has(`${ip}/32`), `sentinel ${ip} in the ipcache`);
  }

  const status = (name = 'west') => east.status().remotes.find((r) => r.name === name)!;
  const imported = async (key: string): Promise<boolean> => (await kv.get(`weft/mesh/v1/${key}`)) !== undefined;

  it("cannot take over a local node's address, with identity host or any other", async () => {
    const before = status().rejected;
    west.send('endpoints', [['10.99.1.12', westEp('10.99.1.12', 'w1', '10.99.2.11', 1)], ['10.99.1.11', westEp('10.99.1.11')]]);
    await settle();
    assert.deepEqual(datapath.ipcache.get('10.99.1.12/32'), { cidr: '10.99.1.12/32', identity: 6, flags: 2, clusterId: 1 }, "e2 stays a node of this cluster (remote-node), not the remote's host");
    assert.equal(datapath.ipcache.get('10.99.1.11/32')?.identity, 1, 'this node stays host');
    assert.equal(await imported('west/endpoints/10.99.1.12'), false);
    assert.equal(await imported('west/endpoints/10.99.1.11'), false);
    assert.equal(status().rejected - before, 2);
    assert.match(status().lastRejection!, /endpoints\/10\.99\.1\.11: endpoint 10\.99\.1\.11 is outside the pod CIDR 10\.102\.1\.0\/24 of its node w1/);
  });

  it('cannot claim a world address (8.8.8.8) or a Service IP', async () => {
    west.send('endpoints', [['8.8.8.8', westEp('8.8.8.8')], ['10.96.0.10', westEp('10.96.0.10')]]);
    await settle();
    assert.equal(datapath.ipcache.has('8.8.8.8/32'), false);
    assert.equal(datapath.ipcache.has('10.96.0.10/32'), false);
    assert.equal(await imported('west/endpoints/8.8.8.8'), false);
    assert.equal(await imported('west/endpoints/10.96.0.10'), false);
  });

  it("cannot take over a local pod's address, nor give its own pods a reserved identity", async () => {
    west.send('endpoints', [['10.101.1.5', westEp('10.101.1.5')], ['10.102.1.50', westEp('10.102.1.50', 'w1', '10.99.2.11', 2)]]);
    await settle();
    assert.deepEqual(datapath.ipcache.get('10.101.1.5/32'), { cidr: '10.101.1.5/32', identity: (1 << 16) | 300, flags: 1, clusterId: 1 });
    assert.equal(datapath.ipcache.has('10.102.1.50/32'), false, 'identity world from a remote is refused');
    assert.equal(await imported('west/endpoints/10.102.1.50'), false);
  });

  it("cannot place a pod outside its node's pod CIDR or behind another node's IP", async () => {
    // 10.103.1.7 is south's (node s1); 10.102.1.60 is in w1's range but names another node IP.
    west.send('endpoints', [['10.103.1.7', westEp('10.103.1.7')], ['10.102.1.60', westEp('10.102.1.60', 'w1', '10.99.1.12')]]);
    await settle();
    assert.equal(datapath.ipcache.has('10.103.1.7/32'), false);
    assert.equal(datapath.ipcache.has('10.102.1.60/32'), false);
    assert.equal(await imported('west/endpoints/10.103.1.7'), false);
  });

  it('cannot claim the underlay, a short prefix, a local range, a range outside its allow-list or another remote\'s', async () => {
    const before = status().rejectedByKind.nodes;
    west.send('nodes', [
      ['w2', westNode('w2', '10.99.2.12', '10.99.0.0/16')],
      ['w3', westNode('w3', '10.99.2.13', '10.0.0.0/8')],
      ['w4', westNode('w4', '10.99.2.14', '10.101.0.0/16')],
      ['w5', westNode('w5', '10.99.2.15', '10.110.0.0/24')],
      ['w6', westNode('w6', '10.99.1.12', '10.102.6.0/24')],
    ]);
    south.send('nodes', [['s2', { name: 's2', cluster: 'south', ip: '10.99.3.12', podCidr: '10.102.200.0/24', routing: 'vxlan' }]]);
    // A south node inside west's allowed range: refused although west has no node there.
    await until(() => status('south').rejectedByKind.nodes === 1, 'south\'s node to be refused');
    await settle();
    assert.equal(status().rejectedByKind.nodes - before, 5);
    for (const n of ['w2', 'w3', 'w4', 'w5', 'w6']) assert.equal(await imported(`west/nodes/${n}`), false, n);
    assert.equal(await imported('south/nodes/s2'), false);
    assert.deepEqual(datapath.ipcache.get('10.99.1.12/32'), { cidr: '10.99.1.12/32', identity: 6, flags: 2, clusterId: 1 }, 'a remote node cannot take a local node IP');
    assert.match(status('south').lastRejection!, /s2's pod CIDR 10\.102\.200\.0\/24 overlaps remote west's allowed pod CIDRs/);
  });

  it('states why each node is refused', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [westNode('w2', '10.99.2.12', '10.99.0.0/16'), /w2's pod CIDR 10\.99\.0\.0\/16 is outside west's allowed pod CIDRs/],
      [westNode('w3', '10.99.2.13', '10.102.0.0/15'), /w3's pod CIDR 10\.102\.0\.0\/15 is shorter than the \/16 a remote may claim/],
      [westNode('w6', '10.99.1.12', '10.102.6.0/24'), /w6's IP 10\.99\.1\.12 is local node e2's IP 10\.99\.1\.12/],
      [westNode('w7', '10.96.0.1', '10.102.7.0/24'), /w7's IP 10\.96\.0\.1 lies in the service CIDR 10\.96\.0\.0\/16/],
      [westNode('w8', '10.99.2.18', '10.102.1.128/25'), /w8's pod CIDR 10\.102\.1\.128\/25 overlaps the pod CIDR of node west\/w1/],
      [westNode('w9', '10.103.1.9', '10.102.9.0/24'), /w9's IP 10\.103\.1\.9 lies in the pod CIDR of node south\/s1/],
    ];
    for (const [node, re] of cases) {
      west.send('nodes', [[node.name as string, node]]);
      await until(() => status().lastRejection?.startsWith(`nodes/${node.name as string}:`) === true, `${node.name as string} to be refused`);
      assert.match(status().lastRejection!, re);
      assert.equal(await imported(`west/nodes/${node.name as string}`), false);
    }
    // And south, without an allow-list, still cannot take the underlay.
    south.send('nodes', [['s3', { name: 's3', cluster: 'south', ip: '10.99.3.13', podCidr: '10.99.128.0/17', routing: 'vxlan' }]]);
    await until(() => status('south').lastRejection?.startsWith('nodes/s3:') === true, 's3 to be refused');
    assert.match(status('south').lastRejection!, /s3's pod CIDR 10\.99\.128\.0\/17 overlaps the underlay 10\.99\.0\.0\/16/);
  });

  it('holds an endpoint until its node arrives, and withdraws it when the node goes or moves away', async () => {
    west.send('endpoints', [['10.102.4.5', westEp('10.102.4.5', 'w4', '10.99.2.14')]]);
    await until(() => status().pendingEndpoints === 1, 'the endpoint to be held');
    await settle();
    assert.equal(await imported('west/endpoints/10.102.4.5'), false, 'held, not written');
    assert.equal(datapath.ipcache.has('10.102.4.5/32'), false);
    west.send('nodes', [['w4', westNode('w4', '10.99.2.14', '10.102.4.0/24')]]);
    await until(() => datapath.ipcache.has('10.102.4.5/32'), 'the endpoint to follow its node');
    assert.equal(status().pendingEndpoints, 0);
    // The node moves to another range: the endpoint is no longer inside it.
    west.send('nodes', [['w4', westNode('w4', '10.99.2.14', '10.102.40.0/24')]]);
    await until(() => !datapath.ipcache.has('10.102.4.5/32'), 'the endpoint to be withdrawn with its node\'s move');
    assert.equal(await imported('west/endpoints/10.102.4.5'), false);
    west.send('nodes', [['w4', westNode('w4', '10.99.2.14', '10.102.4.0/24')]]);
    await until(() => datapath.ipcache.has('10.102.4.5/32'), 'the endpoint back');
    west.send('nodes', [], ['w4']);
    await until(() => !datapath.ipcache.has('10.102.4.5/32'), 'the endpoint to go with its node');
    assert.equal(await imported('west/endpoints/10.102.4.5'), false);
    assert.equal(status().pendingEndpoints, 1);
    west.send('endpoints', [], ['10.102.4.5']);
    await settle();
    assert.equal(status().pendingEndpoints, 0);
  });

  it('gives way when a local node takes a range a remote node held', async () => {
    west.send('nodes', [['w5', westNode('w5', '10.99.2.15', '10.102.5.0/24')]]);
    west.send('endpoints', [['10.102.5.5', westEp('10.102.5.5', 'w5', '10.99.2.15')]]);
    await until(() => datapath.ipcache.has('10.102.5.5/32'), 'w5 and its pod');
    await kv.put('weft/state/v1/nodes/e3', JSON.stringify({ name: 'e3', cluster: 'east', ip: '10.99.1.13', podCidr: '10.102.5.0/24', routing: 'vxlan' }));
    try {
      await until(async () => !(await imported('west/nodes/w5')) && !(await imported('west/endpoints/10.102.5.5')), 'w5 and its pod to be withdrawn');
      await until(() => !datapath.ipcache.has('10.102.5.5/32'), 'the remote pod out of the ipcache');
      assert.match(status().lastRejection!, /w5's pod CIDR 10\.102\.5\.0\/24 overlaps local node e3's pod CIDR/);
    } finally {
      await kv.delete('weft/state/v1/nodes/e3');
    }
    // The local node gone, the remote's node (still in its view) comes back by itself.
    await until(async () => (await imported('west/nodes/w5')) && datapath.ipcache.has('10.102.5.5/32'), 'w5 back once e3 went');
  });

  it('caps the records and identities of a remote, counting the excess', async () => {
    west.send('nodes', [['w10', westNode('w10', '10.99.2.20', '10.102.32.0/24')]]);
    await until(() => datapath.ipcache.has('10.99.2.20/32'), 'w10');
    const before = structuredClone(status());
    const flood: Array<[string, unknown]> = [];
    for (let i = 1; i <= 60; i++) flood.push([`10.102.32.${i}`, westEp(`10.102.32.${i}`, 'w10', '10.99.2.20')]);
    west.send('endpoints', flood);
    const ids: Array<[string, unknown]> = [];
    for (let i = 0; i < 15; i++) ids.push([String(westId(1000 + i)), `k8s:app=x${i};k8s:weft.io/cluster=west`]);
    west.send('identities', ids);
    // Every one of the 60 valid endpoints is either admitted or over the cap; 1 identity was held, so 9 of 15 fit.
    await until(() => status().counts.endpoints - before.counts.endpoints + status().overLimit.endpoints - before.overLimit.endpoints === 60 && status().overLimit.identities - before.overLimit.identities === 6, 'the flood to be admitted or counted');
    const s = status();
    assert.ok(s.overLimit.endpoints - before.overLimit.endpoints >= 20, 'at most 40 endpoints');
    assert.ok(s.counts.endpoints + s.pendingEndpoints <= 40);
    assert.deepEqual({ endpoints: s.limits.endpoints, identities: s.limits.identities, nodes: s.limits.nodes }, { endpoints: 40, identities: 10, nodes: 5000 });
    assert.ok(s.bytes <= 64 * 1024);
    assert.equal(s.rejectedByKind.identities - before.rejectedByKind.identities, 6);
    await until(async () => (await kv.count('weft/mesh/v1/west/endpoints/')) === s.counts.endpoints && (await kv.count('weft/mesh/v1/west/identities/')) === 10, 'etcd to hold exactly the admitted records');
    assert.match(s.lastRejection!, /over the cap of 10 identities for west/);
  });

  it('caps the bytes of a remote\'s records, whatever their count', async () => {
    // Records of ~10 KiB each (under the 16 KiB a record may have): a few fit in west's 64 KiB.
    const selector = Object.fromEntries(Array.from({ length: 160 }, (_, i) => [`k${i}`, 'v'.repeat(56)]));
    const before = structuredClone(status());
    const services: Array<[string, unknown]> = [];
    for (let i = 0; i < 8; i++) services.push([`d.big${i}`, { namespace: 'd', name: `big${i}`, selector, ports: [{ protocol: 'TCP', port: 80, targetPort: 8080 }] }]);
    west.send('services', services);
    await until(() => status().counts.services - before.counts.services + status().overLimit.services - before.overLimit.services === 8, 'every service admitted or over the cap');
    const s = status();
    assert.ok(s.overLimit.services - before.overLimit.services >= 3, `${s.overLimit.services - before.overLimit.services} over the cap`);
    assert.ok(s.bytes <= 64 * 1024, `${s.bytes} bytes held`);
    assert.equal(await kv.count('weft/mesh/v1/west/services/'), s.counts.services);
    assert.match(s.lastRejection!, /over the cap of 65536 bytes of records for west/);
  });
});
