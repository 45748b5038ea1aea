import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@weft/common';
import { EtcdProcess, KvClient, freePort, until } from '@weft/kvstore';
import { ClusterMeshApiServer } from './apiserver.js';
import { createCa, issue } from './certs.js';

/**
 * After `weft clustermesh disconnect` the apiserver restarts without the remote: what it had
 * imported from it must go, since no importer keeps it current or lets it go stale any more.
 */
describe('clustermesh-apiserver start @etcd', function () {
  this.timeout(60_000);
  let etcd: EtcdProcess;
  let kv: KvClient;
  let dir: string;
  let server: ClusterMeshApiServer | undefined;

  before(async () => {
    etcd = await EtcdProcess.start({ name: 'mesh-prune' });
    kv = new KvClient({ endpoints: [etcd.endpoint] });
    dir = mkdtempSync(join(tmpdir(), 'weft-prune-'));
  });
  after(async () => {
    await server?.stop();
    kv?.close();
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('deletes the state of remotes no longer configured, and keeps that of configured ones (remotesDir included)', async () => {
    const ca = await createCa('east', 30);
    const westCa = await createCa('west', 30);
    const cert = await issue(ca, 'clustermesh-east', { ips: ['127.0.0.1'] });
    // west is configured through remotesDir (as connect writes it), and unreachable: its state stays until stale.
    writeFileSync(join(dir, 'west.json'), JSON.stringify({ name: 'west', id: 2, address: `127.0.0.1:${await freePort()}`, ca: westCa.cert, ...(await issue(westCa, 'east')) }));
    for (const remote of ['west', 'gone']) await kv.put(`weft/mesh/v1/${remote}/nodes/n1`, '{}');
    for (const remote of ['west', 'gone', 'listed-only']) await kv.put(`weft/meshclusters/v1/${remote}`, '{"id":3}');
    server = new ClusterMeshApiServer({ cluster: 'east', clusterId: 1, etcd: [etcd.endpoint], listen: `127.0.0.1:${await freePort()}`, ca: ca.cert, cert: cert.cert, key: cert.key, remotes: [], remotesDir: dir }, silentLogger());
    await server.start();
    await until(async () => (await kv.listKeys('weft/mesh/v1/gone/')).keys.length === 0, 'the disconnected remote\'s state to go');
    assert.deepEqual((await kv.listKeys('weft/mesh/v1/west/')).keys, ['weft/mesh/v1/west/nodes/n1']);
    await until(async () => (await kv.listKeys('weft/meshclusters/v1/')).keys.length === 1, 'the listings of remotes no longer configured to go');
    assert.deepEqual((await kv.listKeys('weft/meshclusters/v1/')).keys, ['weft/meshclusters/v1/west']);
    assert.deepEqual(server.status().remotes.map((r) => r.name), ['west']);
  });
});
