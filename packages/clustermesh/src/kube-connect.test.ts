/**
 * `weft clustermesh connect|disconnect --context A --destination-context B` against two replayed
 * API servers (one per kubeconfig context) holding what the chart creates: the exact requests it
 * makes, the certificates it installs, and its refusals, with nothing written.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubernetesConfigError } from '@weft/kubernetes';
import { ReplayServer, writeKubeconfig, type RecordedExchange } from '@weft/kubernetes/testing';
import { createCa, issue, type Pem } from './certs.js';
import { resolveRemotes } from './config.js';
import { kubeConnect, kubeDisconnect, RESTART_ANNOTATION, type KubeConnectOptions } from './kube-connect.js';
import type { RemoteConfig } from './types.js';

const NS = 'kube-system';
const SECRETS = `/api/v1/namespaces/${NS}/secrets`;
const PATH = {
  ca: `${SECRETS}/weft-clustermesh-ca`,
  config: `${SECRETS}/weft-clustermesh-config`,
  server: `${SECRETS}/weft-clustermesh-server`,
  remotes: `${SECRETS}/weft-clustermesh-remotes`,
  service: `/api/v1/namespaces/${NS}/services/weft-clustermesh-apiserver`,
  nodes: '/api/v1/nodes',
  deployment: `/apis/apps/v1/namespaces/${NS}/deployments/weft-clustermesh-apiserver`,
};

/** A cluster as the chart leaves it; each test changes what it needs. */
interface Cluster {
  name: string;
  id: number;
  ca: Pem;
  /** 'missing': no CA Secret (chart not installed); 'no-key': tls.mode=provided without tls.ca.key. */
  caSecret?: 'missing' | 'no-key';
  /** NodePort: these nodes' InternalIPs; LoadBalancer: these ingress entries. */
  service: { type: 'NodePort'; nodes: string[] } | { type: 'LoadBalancer'; ingress: Array<{ ip?: string; hostname?: string }> };
  /** What the server certificate names (tls.server.ipAddresses). */
  serverIps: string[];
  /** The remotes Secret's entries, if it exists. */
  remotes?: RemoteConfig[];
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const fromB64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8');
const ok = (body: unknown, status = 200): Pick<RecordedExchange, 'response'> => ({ response: { status, body } });
const status = (code: number, reason: string, message: string): Pick<RecordedExchange, 'response'> => ok({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code }, code);
const notFound = (kind: string, name: string): Pick<RecordedExchange, 'response'> => status(404, 'NotFound', `${kind} "${name}" not found`);
const secret = (name: string, data: Record<string, string>, rv = '100'): Record<string, unknown> => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: NS, uid: `uid-${name}`, resourceVersion: rv }, type: 'Opaque', data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])) });
const remotesData = (remotes: RemoteConfig[]): Record<string, string> => Object.fromEntries(remotes.map((r) => [`${r.name}.json`, JSON.stringify(r)]));

/** The reads connect makes of one cluster, in its order, answered as the API server would. */
/** Server certificates by cluster and addresses, issued in `before` (issuing is async, `reads` is not). */
const serverCerts = new Map<string, Pem>();
const serverCertKey = (c: Pick<Cluster, 'name' | 'serverIps'>): string => `${c.name}|${c.serverIps.join(',')}`;

function reads(c: Cluster): RecordedExchange[] {
  const server = serverCerts.get(serverCertKey(c));
  if (!server) throw new Error(`no server certificate issued in before() for ${serverCertKey(c)}`);
  const config = { source: 'kubernetes', cluster: c.name, clusterId: c.id, etcd: ['10.96.0.20:9379'], listen: '0.0.0.0:32379', ca: c.ca.cert, cert: server.cert, key: server.key, remotes: [], remotesDir: '/etc/weft/clustermesh-remotes' };
  const svc = c.service.type === 'NodePort'
    ? { apiVersion: 'v1', kind: 'Service', metadata: { name: 'weft-clustermesh-apiserver', namespace: NS }, spec: { type: 'NodePort', ports: [{ name: 'mesh', protocol: 'TCP', port: 32379, targetPort: 32379, nodePort: 32379 }] }, status: { loadBalancer: {} } }
    : { apiVersion: 'v1', kind: 'Service', metadata: { name: 'weft-clustermesh-apiserver', namespace: NS }, spec: { type: 'LoadBalancer', ports: [{ name: 'mesh', protocol: 'TCP', port: 32379, targetPort: 32379, nodePort: 31379 }] }, status: { loadBalancer: { ingress: c.service.ingress } } };
  const out: RecordedExchange[] = [
    { request: `GET ${PATH.ca}`, ...(c.caSecret === 'missing' ? notFound('secrets', 'weft-clustermesh-ca') : ok(secret('weft-clustermesh-ca', c.caSecret === 'no-key' ? { 'ca.crt': c.ca.cert } : { 'ca.crt': c.ca.cert, 'ca.key': c.ca.key }))) },
    { request: `GET ${PATH.config}`, ...ok(secret('weft-clustermesh-config', { 'config.json': JSON.stringify(config) })) },
    { request: `GET ${PATH.service}`, ...ok(svc) },
  ];
  if (c.service.type === 'NodePort') {
    const items = c.service.nodes.map((ip, i) => ({ metadata: { name: `${c.name}-node${i}` }, status: { addresses: [{ type: 'Hostname', address: `${c.name}-node${i}` }, { type: 'InternalIP', address: ip }] } }));
    out.push({ request: `GET ${PATH.nodes}`, ...ok({ kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: '7' }, items }) });
  }
  out.push(
    { request: `GET ${PATH.server}`, ...ok({ ...secret('weft-clustermesh-server', { 'ca.crt': c.ca.cert, 'tls.crt': server.cert, 'tls.key': server.key }), type: 'kubernetes.io/tls' }) },
    { request: `GET ${PATH.deployment}`, ...ok(deployment(1, 1)) },
    { request: `GET ${PATH.remotes}`, ...(c.remotes ? ok(secret('weft-clustermesh-remotes', remotesData(c.remotes), '300')) : notFound('secrets', 'weft-clustermesh-remotes')) },
  );
  return out;
}

/** The chart's apiserver Deployment at `generation`, its status having observed `observed`. */
function deployment(generation: number, observed: number): Record<string, unknown> {
  const volumes = [{ name: 'config', secret: { secretName: 'weft-clustermesh-config' } }, { name: 'remotes', secret: { secretName: 'weft-clustermesh-remotes', optional: true } }];
  return { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'weft-clustermesh-apiserver', namespace: NS, generation }, spec: { replicas: 1, template: { spec: { volumes } } }, status: { observedGeneration: observed, replicas: 1, updatedReplicas: observed === generation ? 1 : 0, availableReplicas: 1 } };
}

const restarted = (): RecordedExchange => ({ request: `PATCH ${PATH.deployment}`, ...ok(deployment(2, 1)) });

describe('clustermesh connect through kubeconfig contexts (replayed API servers)', function () {
  this.timeout(30_000);
  let dir: string;
  let kubeconfig: string;
  let east: ReplayServer;
  let west: ReplayServer;
  let eastCa: Pem;
  let westCa: Pem;
  const options = (extra: Partial<KubeConnectOptions> = {}): KubeConnectOptions => ({ context: 'kind-east', destinationContext: 'kind-west', kubeconfig, pollMs: 5, ...extra });
  const base = (): { east: Cluster; west: Cluster } => ({
    // east: NodePort; its certificate names only its second node, so that is the one to dial.
    east: { name: 'east', id: 1, ca: eastCa, service: { type: 'NodePort', nodes: ['172.18.0.9', '172.18.0.2'] }, serverIps: ['172.18.0.2', '172.18.0.3'] },
    // west: a LoadBalancer, and already linked to north by an earlier connect.
    west: { name: 'west', id: 2, ca: westCa, service: { type: 'LoadBalancer', ingress: [{ ip: '203.0.113.7' }] }, serverIps: ['203.0.113.7'], remotes: [{ name: 'north', id: 3, address: '198.51.100.1:32379', ca: 'N', cert: 'N', key: 'N' }] },
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-connect-'));
    eastCa = await createCa('east', 30);
    westCa = await createCa('west', 30);
    for (const c of [{ name: 'east', ca: eastCa, serverIps: ['172.18.0.2', '172.18.0.3'] }, { name: 'east', ca: eastCa, serverIps: ['10.0.0.1'] }, { name: 'west', ca: westCa, serverIps: ['203.0.113.7'] }, { name: 'east', ca: westCa, serverIps: ['203.0.113.7'] }]) {
      serverCerts.set(serverCertKey(c), await issue(c.ca, `clustermesh-${c.name}`, { ips: c.serverIps }));
    }
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    await Promise.all([east?.close(), west?.close()]);
  });

  async function serve(e: RecordedExchange[], w: RecordedExchange[]): Promise<void> {
    east = await new ReplayServer({ exchanges: e }).start();
    west = await new ReplayServer({ exchanges: w }).start();
    kubeconfig = writeKubeconfig(join(dir, 'kubeconfig'), { 'kind-east': east, 'kind-west': west });
  }

  const calls = (s: ReplayServer): string[] => s.requests.map((r) => `${r.method} ${r.path}`);
  const writes = (s: ReplayServer): string[] => calls(s).filter((c) => !c.startsWith('GET '));
  const body = (s: ReplayServer, call: string): Record<string, any> => JSON.parse(s.requests.find((r) => `${r.method} ${r.path}` === call)!.body);
  const header = (s: ReplayServer, call: string): unknown => s.requests.find((r) => `${r.method} ${r.path}` === call)!.headers['content-type'];
  const connectReads = (c: Cluster): string[] => reads(c).map((x) => x.request);

  /** The entry `data` holds under `key`, checked: a client certificate for `cn` from `ca`, with its key. */
  function entry(data: Record<string, string>, key: string, ca: Pem, cn: string): RemoteConfig {
    assert.deepEqual(Object.keys(data).filter((k) => k === key), [key]);
    const r = JSON.parse(fromB64(data[key]!)) as RemoteConfig;
    const cert = new X509Certificate(r.cert);
    assert.equal(r.ca, ca.cert, 'the remote CA is the other cluster\'s');
    assert.ok(cert.verify(new X509Certificate(ca.cert).publicKey), `the client certificate of ${cn} verifies against the other cluster's CA`);
    assert.ok(!cert.verify(new X509Certificate((ca === eastCa ? westCa : eastCa).cert).publicKey), 'and not against its own');
    assert.equal(cert.subject, `CN=${cn}`);
    assert.ok(cert.checkPrivateKey(createPrivateKey(r.key)), 'the key belongs to the certificate');
    return r;
  }

  it('installs each side\'s remote, with a certificate from the other\'s CA, restarts both apiservers and waits for them', async () => {
    const c = base();
    const eastRollout: RecordedExchange[] = [{ request: `GET ${PATH.deployment}`, ...ok(deployment(2, 1)) }, { request: `GET ${PATH.deployment}`, ...ok(deployment(2, 2)) }];
    await serve(
      [...reads(c.east), { request: `POST ${SECRETS}`, ...ok(secret('weft-clustermesh-remotes', {}, '201'), 201) }, restarted(), ...eastRollout],
      [...reads(c.west), { request: `PATCH ${PATH.remotes}`, ...ok(secret('weft-clustermesh-remotes', {}, '301')) }, restarted(), { request: `GET ${PATH.deployment}`, ...ok(deployment(2, 2)) }],
    );
    const progress: string[] = [];
    const result = await kubeConnect(options({ wait: true, progress: (m) => progress.push(m) }));

    assert.deepEqual(calls(east), [...connectReads(c.east), `POST ${SECRETS}`, `PATCH ${PATH.deployment}`, `GET ${PATH.deployment}`, `GET ${PATH.deployment}`]);
    assert.deepEqual(calls(west), [...connectReads(c.west), `PATCH ${PATH.remotes}`, `PATCH ${PATH.deployment}`, `GET ${PATH.deployment}`]);
    assert.deepEqual([east.mismatches, west.mismatches, east.exhausted, west.exhausted], [[], [], true, true]);

    // east: a new Secret, not Helm's, with west's entry: west's CA and east's certificate from it.
    const created = body(east, `POST ${SECRETS}`);
    assert.deepEqual(created.metadata, { name: 'weft-clustermesh-remotes', namespace: NS, labels: { 'app.kubernetes.io/name': 'weft', 'app.kubernetes.io/managed-by': 'weft-clustermesh-connect', 'weft.io/cluster': 'east' } });
    assert.deepEqual([created.kind, created.type, Object.keys(created.data)], ['Secret', 'Opaque', ['west.json']]);
    const toWest = entry(created.data, 'west.json', westCa, 'east');
    assert.deepEqual([toWest.name, toWest.id, toWest.address], ['west', 2, '203.0.113.7:32379']);

    // west: one key added to its existing Secret, at the resourceVersion read; north's entry untouched.
    assert.equal(header(west, `PATCH ${PATH.remotes}`), 'application/merge-patch+json');
    const patch = body(west, `PATCH ${PATH.remotes}`);
    assert.deepEqual([patch.metadata, Object.keys(patch.data)], [{ resourceVersion: '300' }, ['east.json']]);
    const toEast = entry(patch.data, 'east.json', eastCa, 'west');
    assert.deepEqual([toEast.name, toEast.id, toEast.address], ['east', 1, '172.18.0.2:32379'], 'the node the server certificate names');

    // Both restarted as `kubectl rollout restart` does.
    for (const s of [east, west]) {
      assert.equal(header(s, `PATCH ${PATH.deployment}`), 'application/strategic-merge-patch+json');
      const annotations = body(s, `PATCH ${PATH.deployment}`).spec.template.metadata.annotations;
      assert.deepEqual(Object.keys(annotations), [RESTART_ANNOTATION]);
      assert.ok(Math.abs(Date.parse(annotations[RESTART_ANNOTATION]) - Date.now()) < 10_000);
    }

    // What the apiserver makes of the Secret: east's mounted remotesDir yields west, accepted.
    const remotesDir = join(dir, 'east-remotes');
    mkdirSync(remotesDir, { recursive: true });
    for (const [k, v] of Object.entries(created.data as Record<string, string>)) writeFileSync(join(remotesDir, k), fromB64(v));
    const merged = resolveRemotes({ cluster: 'east', clusterId: 1, etcd: ['x:1'], listen: 'x:1', ca: eastCa.cert, cert: 'c', key: 'k', remotes: [], remotesDir });
    assert.deepEqual([merged.remotes.map((r) => r.name), merged.problems], [['west'], []]);

    assert.deepEqual(result, {
      action: 'connect',
      rolledOut: true,
      clusters: [
        { context: 'kind-east', cluster: 'east', id: 1, namespace: NS, remote: 'west', address: '172.18.0.2:32379', secret: 'weft-clustermesh-remotes', key: 'west.json', change: 'created', restarted: true },
        { context: 'kind-west', cluster: 'west', id: 2, namespace: NS, remote: 'east', address: '203.0.113.7:32379', secret: 'weft-clustermesh-remotes', key: 'east.json', change: 'updated', restarted: true },
      ],
    });
    assert.match(progress.join('\n'), /east and west connected[\s\S]*east: deployment weft-clustermesh-apiserver rolled out[\s\S]*west: deployment/);
  });

  describe('refuses, writing nothing', () => {
    async function refused(e: Cluster, w: Cluster, code: string, message: RegExp): Promise<void> {
      await serve(reads(e), reads(w));
      await assert.rejects(kubeConnect(options()), (err: Error & { code?: string }) => {
        assert.equal(err.code, code, err.message);
        assert.match(err.message, message);
        return true;
      });
      assert.deepEqual([writes(east), writes(west)], [[], []], 'nothing written');
      assert.deepEqual([east.mismatches, west.mismatches], [[], []]);
    }

    it('two clusters with one cluster id, or one name', async () => {
      const c = base();
      await refused(c.east, { ...c.west, id: 1 }, 'WEFT_ERR_MESH_CONFLICT', /^Cannot connect kind-east and kind-west: cluster east \(context kind-east\) and cluster west \(context kind-west\) both have cluster id 1: ids must be unique/);
      await Promise.all([east.close(), west.close()]);
      await refused(c.east, { ...c.west, name: 'east' }, 'WEFT_ERR_MESH_CONFLICT', /both contexts hold cluster east \(context kind-east: id 1; context kind-west: id 2\)/);
    });

    it('a cluster without the chart\'s CA Secret, or whose CA has no key (tls.mode provided)', async () => {
      const c = base();
      await refused(c.east, { ...c.west, caSecret: 'missing' }, 'WEFT_ERR_MESH_PREREQUISITE', /context kind-west: Secret kube-system\/weft-clustermesh-ca not found: install the chart there with clustermesh\.enabled=true/);
      await Promise.all([east.close(), west.close()]);
      await refused({ ...c.east, caSecret: 'no-key' }, c.west, 'WEFT_ERR_MESH_PREREQUISITE', /context kind-east: Secret kube-system\/weft-clustermesh-ca has no ca\.key: .*tls\.mode=provided without tls\.ca\.key.*Connect this cluster through values instead/);
    });

    it('a LoadBalancer without an ingress address yet', async () => {
      const c = base();
      await refused(c.east, { ...c.west, service: { type: 'LoadBalancer', ingress: [] } }, 'WEFT_ERR_MESH_PREREQUISITE', /context kind-west: Service kube-system\/weft-clustermesh-apiserver is a LoadBalancer without an ingress address yet \(status\.loadBalancer\.ingress is empty\)/);
    });

    it('an address the server certificate does not name', async () => {
      const c = base();
      await refused({ ...c.east, serverIps: ['10.0.0.1'] }, c.west, 'WEFT_ERR_MESH_PREREQUISITE', /names none of the addresses remotes would dial \(172\.18\.0\.9, 172\.18\.0\.2\).*tls\.server\.ipAddresses/);
    });

    it('a remote that already holds the other\'s cluster id', async () => {
      const c = base();
      await refused(c.east, { ...c.west, remotes: [{ name: 'north', id: 1, address: 'n:1', ca: 'N', cert: 'N', key: 'N' }] }, 'WEFT_ERR_MESH_CONFLICT', /cluster west \(context kind-west\) already has remote north with cluster id 1, the id of east/);
    });

    it('a context the kubeconfig does not have', async () => {
      await serve([], []);
      await assert.rejects(kubeConnect(options({ destinationContext: 'kind-nowhere' })), (err: unknown) => err instanceof KubernetesConfigError && /context "kind-nowhere" is not in .*kubeconfig \(contexts: kind-east, kind-west\)/.test(err.message));
      assert.deepEqual([writes(east), writes(west)], [[], []]);
    });
  });

  it('rolls the first side back when the second side\'s write fails, and restarts nothing', async () => {
    const c = base();
    await serve(
      [...reads(c.east), { request: `POST ${SECRETS}`, ...ok({ ...secret('weft-clustermesh-remotes', {}, '201'), metadata: { name: 'weft-clustermesh-remotes', namespace: NS, uid: 'uid-new', resourceVersion: '201' } }, 201) }, { request: `DELETE ${PATH.remotes}`, ...ok({ kind: 'Status', status: 'Success' }) }],
      [...reads(c.west), { request: `PATCH ${PATH.remotes}`, ...status(409, 'Conflict', 'Operation cannot be fulfilled on secrets "weft-clustermesh-remotes": the object has been modified') }],
    );
    await assert.rejects(kubeConnect(options()), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'WEFT_ERR_MESH_WRITE');
      assert.match(err.message, /^Cannot connect kind-east and kind-west: writing Secret kube-system\/weft-clustermesh-remotes in context kind-west failed \(.*HTTP 409 Conflict.*\); rolled back: deleted Secret kube-system\/weft-clustermesh-remotes in context kind-east$/);
      return true;
    });
    assert.deepEqual(writes(east), [`POST ${SECRETS}`, `DELETE ${PATH.remotes}`]);
    assert.deepEqual(writes(west), [`PATCH ${PATH.remotes}`]);
    // Only the Secret connect created, and only as connect left it.
    assert.deepEqual(body(east, `DELETE ${PATH.remotes}`), { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid: 'uid-new', resourceVersion: '201' } });
    assert.deepEqual([east.mismatches, west.mismatches], [[], []]);
  });

  describe('disconnect', () => {
    const disconnectReads = [`GET ${PATH.config}`, `GET ${PATH.deployment}`, `GET ${PATH.remotes}`];
    /** The reads disconnect makes: no CA, no address. */
    const only = (c: Cluster): RecordedExchange[] => reads(c).filter((x) => disconnectReads.includes(x.request));
    const linked = (): { east: Cluster; west: Cluster } => {
      const c = base();
      return { east: { ...c.east, remotes: [{ name: 'west', id: 2, address: 'w:1', ca: 'W', cert: 'W', key: 'W' }] }, west: { ...c.west, remotes: [...c.west.remotes!, { name: 'east', id: 1, address: 'e:1', ca: 'E', cert: 'E', key: 'E' }] } };
    };

    it('removes each side\'s key for the other, deleting a Secret left without remotes, and restarts both apiservers', async () => {
      const c = linked();
      await serve([...only(c.east), { request: `DELETE ${PATH.remotes}`, ...ok(secret('weft-clustermesh-remotes', {}, '301')) }, restarted()], [...only(c.west), { request: `PATCH ${PATH.remotes}`, ...ok(secret('weft-clustermesh-remotes', {}, '302')) }, restarted()]);
      const result = await kubeDisconnect(options());
      assert.deepEqual(calls(east), [...disconnectReads, `DELETE ${PATH.remotes}`, `PATCH ${PATH.deployment}`]);
      assert.deepEqual(calls(west), [...disconnectReads, `PATCH ${PATH.remotes}`, `PATCH ${PATH.deployment}`]);
      // east had only west: its Secret goes, at the uid and version read; west keeps north.
      assert.deepEqual(body(east, `DELETE ${PATH.remotes}`), { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid: 'uid-weft-clustermesh-remotes', resourceVersion: '300' } });
      assert.deepEqual(body(west, `PATCH ${PATH.remotes}`), { metadata: { resourceVersion: '300' }, data: { 'east.json': null } });
      assert.deepEqual(result.clusters.map((s) => `${s.cluster}: ${s.change} ${s.key}, restarted ${s.restarted}`), ['east: removed west.json, restarted true', 'west: removed east.json, restarted true']);
      assert.deepEqual([east.mismatches, west.mismatches], [[], []]);
    });

    it('puts the first side\'s Secret back when the second side\'s write fails', async () => {
      const c = linked();
      const before = secret('weft-clustermesh-remotes', remotesData(c.east.remotes!), '300') as { data: Record<string, string> };
      await serve(
        [...only(c.east), { request: `DELETE ${PATH.remotes}`, ...ok(secret('weft-clustermesh-remotes', {}, '301')) }, { request: `POST ${SECRETS}`, ...ok(secret('weft-clustermesh-remotes', {}, '302'), 201) }],
        [...only(c.west), { request: `PATCH ${PATH.remotes}`, ...status(403, 'Forbidden', 'secrets "weft-clustermesh-remotes" is forbidden') }],
      );
      await assert.rejects(kubeDisconnect(options()), (err: Error & { code?: string }) => err.code === 'WEFT_ERR_MESH_WRITE' && /HTTP 403 Forbidden.*; rolled back: recreated Secret kube-system\/weft-clustermesh-remotes in context kind-east$/.test(err.message));
      const recreated = body(east, `POST ${SECRETS}`);
      assert.deepEqual([recreated.metadata.name, recreated.data], ['weft-clustermesh-remotes', before.data]);
      assert.deepEqual([writes(east), writes(west)], [[`DELETE ${PATH.remotes}`, `POST ${SECRETS}`], [`PATCH ${PATH.remotes}`]], 'no restart');
    });
  });

  it('runs as `weft clustermesh connect --context A --destination-context B -o json`, and exits 1 with the code on a refusal', async () => {
    const c = base();
    await serve([...reads(c.east), { request: `POST ${SECRETS}`, ...ok(secret('weft-clustermesh-remotes', {}, '201'), 201) }, restarted()], [...reads(c.west), { request: `PATCH ${PATH.remotes}`, ...ok(secret('weft-clustermesh-remotes', {}, '301')) }, restarted()]);
    const out = await weft(['clustermesh', 'connect', '--context', 'kind-east', '--destination-context', 'kind-west', '--kubeconfig', kubeconfig, '-o', 'json']);
    assert.equal(out.code, 0, out.stderr);
    const json = JSON.parse(out.stdout);
    assert.deepEqual(json.clusters.map((s: { cluster: string; change: string; address: string }) => `${s.cluster} ${s.change} ${s.address}`), ['east created 172.18.0.2:32379', 'west updated 203.0.113.7:32379']);
    assert.deepEqual([writes(east).length, writes(west).length], [2, 2]);

    await Promise.all([east.close(), west.close()]);
    await serve(reads(c.east), reads({ ...c.west, id: 1 }));
    const bad = await weft(['clustermesh', 'connect', '--context', 'kind-east', '--destination-context', 'kind-west', '--kubeconfig', kubeconfig]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /both have cluster id 1.*\[WEFT_ERR_MESH_CONFLICT\]\n$/);
    assert.deepEqual([writes(east), writes(west)], [[], []]);
  });
});

/** The CLI as a user runs it; asynchronously, so this process's replay servers keep answering. */
function weft(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = join(__dirname, '..', '..', 'cli', 'bin', 'weft.js');
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env: { ...process.env, KUBECONFIG: '' } }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}
