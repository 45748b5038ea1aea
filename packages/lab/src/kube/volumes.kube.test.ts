import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { KubeApi } from './api.js';
import { ControlPlane } from './control-plane.js';
import { kubeTool } from './tools.js';
import { materializeVolumes, PodVolumeError, type PodForVolumes } from './volumes.js';

const CHART = resolve(__dirname, '..', '..', '..', '..', 'charts', 'weft');
const NS = 'kube-system';
const b64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8');

describe('lab kubelet: pod volumes from a real API server, with a node\'s own credential @etcd', function () {
  this.timeout(180_000);
  let scratch: string;
  let cp: ControlPlane;
  let admin: KubeApi;
  let pod: PodForVolumes;
  const node = (name: string): KubeApi => KubeApi.fromKubeconfig(join(cp.spec.dir, `node-${name}.kubeconfig`));

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'weft-volumes-'));
    cp = await ControlPlane.start({ cluster: 'vol', dir: join(scratch, 'cp'), controllers: true, nodes: ['n1', 'n2'] });
    admin = KubeApi.fromKubeconfig(cp.kubeconfig);
    const helm = spawnSync(kubeTool('helm'), ['install', 'weft', CHART, '--namespace', NS], { encoding: 'utf8', env: { ...process.env, KUBECONFIG: cp.kubeconfig, HELM_CACHE_HOME: join(scratch, 'helm'), HELM_CONFIG_HOME: join(scratch, 'helm'), HELM_DATA_HOME: join(scratch, 'helm') } });
    assert.equal(helm.status, 0, helm.stderr);
    // Each node registers itself, as kubelet does (the Node authorizer's graph starts from it).
    for (const n of ['n1', 'n2']) {
      const api = node(n);
      await api.expect([201], 'POST', '/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: n } });
      api.close();
    }
    // The chart's etcd pod, bound to n1 (as the scheduler binds it).
    const deployment = (await admin.expect<{ spec: { template: { spec: Record<string, unknown> } } }>([200], 'GET', `/apis/apps/v1/namespaces/${NS}/deployments/weft-etcd`)).body!;
    const created = await admin.expect<PodForVolumes>([201], 'POST', `/api/v1/namespaces/${NS}/pods`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'weft-etcd-test' }, spec: { ...deployment.spec.template.spec, nodeName: 'n1' } });
    pod = created.body!;
    // kube-root-ca.crt comes from the controller-manager.
    const deadline = Date.now() + 60_000;
    while ((await admin.call('GET', `/api/v1/namespaces/${NS}/configmaps/kube-root-ca.crt`)).status !== 200) {
      assert.ok(Date.now() < deadline, 'no kube-root-ca.crt');
      await new Promise((r) => setTimeout(r, 250));
    }
  });
  after(async () => {
    admin?.close();
    await cp?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('lays out the etcd pod\'s Secrets, ConfigMap, projected token and hostPath as kubelet does', async () => {
    const dir = join(scratch, 'pod');
    const api = node('n1');
    const volumes = await materializeVolumes(api, pod, dir, (p) => join(scratch, 'n1-root', p));
    api.close();
    assert.deepEqual([...volumes.keys()].sort(), ['api-token', 'data', 'etcd-ca', 'etcd-root', 'etcd-tls', 'issuer-config']);
    const secret = (await admin.expect<{ data: Record<string, string> }>([200], 'GET', `/api/v1/namespaces/${NS}/secrets/weft-etcd-server`)).body!;
    for (const key of ['ca.crt', 'tls.crt', 'tls.key']) {
      const file = join(volumes.get('etcd-tls')!, key);
      assert.equal(readFileSync(file, 'utf8'), b64(secret.data[key]!), key);
      assert.equal(statSync(file).mode & 0o777, 0o400, `${key}: the chart's defaultMode 0400`);
    }
    assert.ok(JSON.parse(readFileSync(join(volumes.get('issuer-config')!, 'config.json'), 'utf8')).etcdTls);
    // The token is the API server's, bound to this pod on n1, for the API server's own audience.
    const token = readFileSync(join(volumes.get('api-token')!, 'token'), 'utf8');
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { sub: string; 'kubernetes.io': { pod: { name: string; uid: string }; node: { name: string } } };
    assert.equal(claims.sub, 'system:serviceaccount:kube-system:weft-etcd');
    assert.deepEqual([claims['kubernetes.io'].pod.name, claims['kubernetes.io'].pod.uid, claims['kubernetes.io'].node.name], ['weft-etcd-test', pod.metadata.uid, 'n1']);
    assert.equal(readFileSync(join(volumes.get('api-token')!, 'ca.crt'), 'utf8'), cp.files.ca.cert);
    assert.equal(readFileSync(join(volumes.get('api-token')!, 'namespace'), 'utf8'), NS);
    assert.equal(volumes.get('data'), join(scratch, 'n1-root', '/var/lib/weft/etcd'));
    assert.ok(statSync(volumes.get('data')!).isDirectory(), 'DirectoryOrCreate');
  });

  it('is refused another node\'s pod by the Node authorizer, naming what it could not read', async () => {
    const api = node('n2');
    await assert.rejects(materializeVolumes(api, pod, join(scratch, 'other'), (p) => join(scratch, 'n2-root', p)), (e: Error) => e instanceof PodVolumeError && /cannot read Secret kube-system\/weft-etcd-server: 403 .*no relationship found between node 'n2' and this object/.test(e.message));
    api.close();
  });

  it('refuses an item path that leaves its volume', async () => {
    const api = node('n1');
    const evil: PodForVolumes = { ...pod, spec: { ...pod.spec, volumes: [{ name: 'x', secret: { secretName: 'weft-etcd-server', items: [{ key: 'tls.key', path: '../../escaped' }] } }] } };
    await assert.rejects(materializeVolumes(api, evil, join(scratch, 'evil'), (p) => p), /volume x of pod kube-system\/weft-etcd-test: path "\.\.\/\.\.\/escaped" leaves its volume/);
    api.close();
  });
});
