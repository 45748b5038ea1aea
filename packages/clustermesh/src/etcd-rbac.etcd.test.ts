import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@weft/common';
import { IdentityAllocator } from '@weft/identity';
import { EtcdAuth, EtcdProcess, KvClient, KvstorePermissionError, Session, createCa, issue, type Pem } from '@weft/kvstore';
import { EtcdCredentialError } from './errors.js';
import { admitNode, applyClusterRoles, checkNodeName, removeNode } from './etcd-roles.js';

/**
 * A real etcd serving TLS with client-certificate auth and the roles of etcd-roles.ts: what each
 * component may write, with the certificates each would hold (CN = its etcd user).
 */
describe('etcd RBAC: one identity per node, least privilege @etcd', function () {
  this.timeout(60_000);
  let dir: string;
  let etcd: EtcdProcess;
  let ca: Pem;
  const clients: KvClient[] = [];

  /** A client of this etcd holding a certificate with CN `cn` (of `signer`, default the etcd CA). */
  async function client(cn: string, signer: Pem = ca): Promise<KvClient> {
    const cert = await issue(signer, cn);
    const kv = new KvClient({ endpoints: [etcd.endpoint], tls: { ca: Buffer.from(ca.cert), cert: Buffer.from(cert.cert), key: Buffer.from(cert.key) }, retry: { maxAttempts: 2, initialMs: 50, maxMs: 100 } });
    clients.push(kv);
    return kv;
  }
  const record = (name: string) => JSON.stringify({ name, cluster: 'c1', ip: '10.99.1.11', podCidr: '10.101.1.0/24', routing: 'vxlan' });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-rbac-'));
    ca = await createCa('c1-etcd', 2);
    const server = await issue(ca, 'weft-etcd', { ips: ['127.0.0.1'], dnsNames: ['localhost'], days: 2 });
    writeFileSync(join(dir, 'ca.crt'), ca.cert);
    writeFileSync(join(dir, 'server.crt'), server.cert);
    writeFileSync(join(dir, 'server.key'), server.key, { mode: 0o600 });
    etcd = await EtcdProcess.start({ name: 'rbac', tls: { caFile: join(dir, 'ca.crt'), certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key') } });
    const root = await client('root');
    const auth = new EtcdAuth(root);
    await applyClusterRoles(auth);
    await admitNode(auth, 'node-a');
    await admitNode(auth, 'node-b');
    await admitNode(auth, 'node1');
    // Converging again changes nothing and fails nothing (the lab and the issuer run it on every start).
    await applyClusterRoles(auth);
    await admitNode(auth, 'node-a');
    const admin = await client('weft-admin');
    await admin.put('weft/state/v1/nodes/node-b', record('node-b'));
    await admin.put('weft/state/v1/endpoints/node-b/10.101.2.5', '{}');
  });
  after(async () => {
    for (const c of clients) c.close();
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lets node A write its own record, endpoints and references, and refuses B\'s with a clear error', async () => {
    const a = await client('node-a');
    await a.put('weft/state/v1/nodes/node-a', record('node-a'));
    await a.put('weft/state/v1/endpoints/node-a/10.101.1.5', '{}');
    await a.put('weft/identities/v1/noderefs/node-a/65800', 'k8s:app=web');
    for (const key of ['weft/state/v1/nodes/node-b', 'weft/state/v1/endpoints/node-b/10.101.1.5', 'weft/identities/v1/noderefs/node-b/65800', 'weft/state/v1/nodes/node-a2', 'weft/state/v1/endpoints/10.101.1.5', 'weft/identities/v1/refs/65800/node-a']) {
      await assert.rejects(a.put(key, 'x'), (e: Error) => e instanceof KvstorePermissionError && e.message.startsWith(`Cannot put key ${key}: permission denied by etcd's access control`), key);
    }
    await assert.rejects(a.delete('weft/state/v1/nodes/node-b'), KvstorePermissionError);
    await assert.rejects(a.deletePrefix('weft/state/v1/endpoints/node-b/'), KvstorePermissionError);
    // The trailing slash of a node's prefixes: node1 may not write under node10's.
    const n1 = await client('node1');
    await assert.rejects(n1.put('weft/state/v1/endpoints/node10/10.101.1.5', 'x'), KvstorePermissionError);
    // Nor resources, the mesh cache or its status (the admin's and the apiserver's).
    for (const key of ['weft/resources/v1/Pod/d/p', 'weft/mesh/v1/c2/endpoints/10.102.1.5', 'weft/meshclusters/v1/c2', 'weft/meshstatus/v1/c1']) await assert.rejects(a.put(key, 'x'), KvstorePermissionError, key);
    // It reads what agents read, B's records included.
    assert.equal((await a.get('weft/state/v1/nodes/node-b'))?.value.toString(), record('node-b'));
    assert.ok((await a.list('weft/state/v1/endpoints/')).items.length >= 2);
    assert.equal((await a.get('weft/state/v1/endpoints/node-b/10.101.2.5'))?.value.toString(), '{}');
  });

  it('runs a node\'s agent side for real: a lease-bound session, and the identity allocator (shared masters, own references)', async () => {
    const a = await client('node-a');
    const session = await Session.create(a, { ttlSeconds: 5, logger: silentLogger() });
    await a.put('weft/state/v1/nodes/node-a', record('node-a'), { lease: session.leaseId });
    const alloc = await new IdentityAllocator({ client: a, clusterId: 1, clusterName: 'c1', node: 'node-a', logger: silentLogger() }).start();
    const id = await alloc.allocate({ app: 'web' });
    assert.ok(await a.get(`weft/identities/v1/noderefs/node-a/${id.id}`));
    // B claims the same labels: same id, its own reference.
    const b = await client('node-b');
    const allocB = await new IdentityAllocator({ client: b, clusterId: 1, clusterName: 'c1', node: 'node-b', logger: silentLogger() }).start();
    assert.equal((await allocB.allocate({ app: 'web' })).id, id.id);
    assert.ok(await b.get(`weft/identities/v1/noderefs/node-b/${id.id}`));
    await allocB.stop({ release: true });
    await alloc.stop({ release: true });
    // Revoking the lease needs write access to every key bound to it: its own, so it may.
    await session.close();
    assert.equal(await a.get('weft/state/v1/nodes/node-a'), undefined);
  });

  it('lets the clustermesh-apiserver read all and write only the mesh cache and its status', async () => {
    const api = await client('weft-clustermesh-apiserver');
    assert.ok((await api.list('weft/state/v1/')).items.length > 0);
    await api.put('weft/mesh/v1/c2/endpoints/10.102.1.5', '{}');
    await api.put('weft/meshclusters/v1/c2', '{"id":2}');
    await api.put('weft/meshstatus/v1/c1', '{}');
    await api.deletePrefix('weft/mesh/v1/c2/');
    await api.delete('weft/meshclusters/v1/c2');
    for (const key of ['weft/state/v1/nodes/node-a', 'weft/state/v1/endpoints/node-a/10.101.1.9', 'weft/identities/v1/id/65800', 'weft/resources/v1/Pod/d/p']) await assert.rejects(api.put(key, 'x'), KvstorePermissionError, key);
  });

  it('lets the admin write every weft key and nothing else; etcd\'s own users stay root\'s', async () => {
    const admin = await client('weft-admin');
    await admin.put('weft/resources/v1/Namespace//d', '{}');
    await admin.put('weft/state/v1/nodes/node-a', record('node-a'));
    await admin.deletePrefix('weft/identities/v1/');
    await assert.rejects(admin.put('other/key', 'x'), KvstorePermissionError);
    await assert.rejects(new EtcdAuth(admin).ensureUser('mallory', ['weft-admin']), (e: Error) => /permission denied/i.test(e.message));
  });

  it('refuses a certificate of another CA, and a CN that is no etcd user', async () => {
    const rogue = await client('node-a', await createCa('rogue', 1));
    await assert.rejects(rogue.put('weft/state/v1/nodes/node-a', 'x'));
    const stranger = await client('node-zz');
    await assert.rejects(stranger.get('weft/state/v1/nodes/node-a'), (e: Error) => /permission denied|user name|not found|authentication|invalid/i.test(e.message));
  });

  it('refuses node names that are no DNS names or that are other components\' users, and removes a node', async () => {
    for (const bad of ['root', 'weft-admin', 'weft-clustermesh-apiserver', 'a/b', 'A', '']) assert.throws(() => checkNodeName(bad), EtcdCredentialError, bad);
    const root = await client('root');
    await removeNode(new EtcdAuth(root), 'node-b');
    const b = await client('node-b');
    await assert.rejects(b.get('weft/state/v1/nodes/node-b'));
  });
});
