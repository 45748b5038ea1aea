/**
 * The Kubernetes source against API traffic in the API server's wire format
 * (testdata/*.json) replayed by a local server, through the real
 * @kubernetes/client-node configured by a kubeconfig file.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Backoff } from '@weft/common';
import { parseYamlDocuments, resourceKey, validateResource, type Resource, type ResourceKind, type ResourceWatchHandler } from '@weft/resources';
import { KubeClient } from './client.js';
import { toResource } from './convert.js';
import { KubernetesApiError, KubernetesConfigError } from './errors.js';
import type { Reflector } from './reflector.js';
import { KubernetesSource } from './source.js';
import { REPLAY_TOKEN, ReplayServer, type Recording } from './testing.js';

const TESTDATA = join(__dirname, '..', 'testdata');
const CLUSTER = 'c1';

function recording(name: string): Recording {
  return JSON.parse(readFileSync(join(TESTDATA, name), 'utf8')) as Recording;
}

/** What a consumer (ServiceManager, PolicyEngine) keeps: objects by key, and the invalid ones. */
class Model {
  readonly items = new Map<string, Resource>();
  readonly invalid = new Map<string, string>();
  readonly log: string[] = [];
  synced = 0;
  readonly handler: ResourceWatchHandler = {
    onChange: (type, key, r) => {
      this.log.push(`${type} ${key.replace('weft/resources/v1/', '')}`);
      this.invalid.delete(key);
      if (type === 'delete') this.items.delete(key);
      else this.items.set(key, r!);
    },
    onSynced: () => this.synced++,
    onInvalid: (key, err) => this.invalid.set(key, `${(err as { code?: string }).code}: ${err.message}`),
  };
}

async function eventually(test: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > until) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('Kubernetes source (replayed API traffic)', function () {
  this.timeout(20_000);
  let server: ReplayServer;
  let source: KubernetesSource;
  const watches: Array<{ stop(): Promise<void> }> = [];

  async function replay(name: string): Promise<void> {
    server = await new ReplayServer(recording(name)).start();
    source = await KubernetesSource.create({ cluster: CLUSTER, kubeconfig: server.kubeconfig(), backoff: () => new Backoff({ initialMs: 5, maxMs: 20 }) });
  }

  function watch(kind: ResourceKind, model: Model): Reflector {
    const w = source.watch(kind, model.handler);
    watches.push(w);
    return w as Reflector;
  }

  const watchQueries = (path: string): string[] => server.received(path, true).map((r) => r.query.resourceVersion ?? '');

  afterEach(async () => {
    await Promise.all(watches.splice(0).map((w) => w.stop()));
    const mismatches = server.mismatches;
    await server.close();
    assert.deepEqual(mismatches, [], 'every request matched the recording');
  });

  it('delivers namespaces, pods, services and policies exactly as standalone mode does for the same objects in YAML', async () => {
    await replay('cluster.json');
    const kinds: ResourceKind[] = ['Namespace', 'Pod', 'Service', 'NetworkPolicy', 'WeftNetworkPolicy', 'WeftClusterwideNetworkPolicy'];
    const model = new Model();
    await Promise.all(kinds.map((k) => watch(k, model).waitSynced()));

    // What `weft apply -f cluster.yaml` validates and ResourceStore stores (JSON) and watches back.
    const yamlText = readFileSync(join(TESTDATA, 'cluster.yaml'), 'utf8');
    const standalone = parseYamlDocuments(yamlText, 'cluster.yaml').map((d) => JSON.parse(JSON.stringify(validateResource(d.value, `#${d.index}`, CLUSTER))) as Resource);
    assert.equal(standalone.length, 10);
    for (const r of standalone) assert.deepEqual(model.items.get(resourceKey(r)), r, resourceKey(r));

    // Only Kubernetes has these: a pod kubelet runs from its image's entrypoint, and a LoadBalancer Service.
    const extra = [...model.items.keys()].filter((k) => !standalone.some((r) => resourceKey(r) === k)).sort();
    assert.deepEqual(extra, ['weft/resources/v1/Pod/kube-system/coredns-5d78c9869d-7lq2w', 'weft/resources/v1/Service/shop/shop-lb']);
    const lb = model.items.get('weft/resources/v1/Service/shop/shop-lb')!;
    assert.deepEqual(lb.spec, { type: 'ClusterIP', clusterIP: '10.96.7.7', selector: { app: 'web' }, ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }] });
    assert.equal((model.items.get('weft/resources/v1/Pod/kube-system/coredns-5d78c9869d-7lq2w')!.spec as { nodeName: string }).nodeName, 'n1');

    // The headless Service is not Weft's (nothing to load-balance): neither delivered nor invalid.
    assert.ok(!model.items.has('weft/resources/v1/Service/shop/db'));
    assert.deepEqual([...model.invalid.keys()].sort(), ['weft/resources/v1/Service/shop/legacy']);
    assert.match(model.invalid.get('weft/resources/v1/Service/shop/legacy')!, /^WEFT_ERR_RESOURCE_INVALID: Invalid resource Service shop\/legacy \(from Kubernetes\): spec\.ports\[0\]\.targetPort: must be a port number 1-65535$/);

    // Through the kubeconfig's credentials, and every watch asked for bookmarks from the list's version.
    assert.ok(server.requests.every((r) => r.headers.authorization === `Bearer ${REPLAY_TOKEN}`));
    await server.until(() => server.exhausted, 'the six watches');
    for (const r of server.requests.filter((q) => q.query.watch === 'true')) {
      assert.equal(r.query.allowWatchBookmarks, 'true');
      assert.equal(r.query.resourceVersion, '1400');
    }
  });

  it('reads one object from the API server, undefined when it does not exist, a typed error when refused', async () => {
    await replay('get.json');
    const pod = await source.get('Pod', 'web-1', 'shop');
    assert.deepEqual(pod, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-1', namespace: 'shop', labels: { app: 'web' }, annotations: {} }, spec: { nodeName: 'n1', containers: [{ name: 'web', command: [], ports: [{ containerPort: 80, protocol: 'TCP' }] }] } });
    assert.deepEqual((await source.get('Namespace', 'shop'))?.metadata.labels, { 'kubernetes.io/metadata.name': 'shop', team: 'retail' });
    assert.equal(await source.get('Pod', 'gone', 'shop'), undefined);
    await assert.rejects(source.get('Pod', 'web-1', 'shop'), (err: unknown) => err instanceof KubernetesApiError && err.code === 'WEFT_ERR_KUBERNETES_API' && err.status === 403 && err.reason === 'Forbidden' && /^Cannot read Pod shop\/web-1: HTTP 403 Forbidden: pods "web-1" is forbidden/.test(err.message));
  });

  it('relists after 410 Gone (an ERROR event, or the HTTP status) and reports what vanished meanwhile as deleted', async () => {
    await replay('relist-410.json');
    const model = new Model();
    const r = watch('Pod', model);
    await server.until(() => server.exhausted, 'the whole recording');
    await eventually(() => model.synced === 3, 'three lists delivered');
    assert.deepEqual(model.log, [
      'upsert Pod/shop/a', 'upsert Pod/shop/b', 'upsert Pod/shop/c', // list at 100
      'upsert Pod/shop/d', 'upsert Pod/shop/a', // watch from 100, then ERROR 410
      'upsert Pod/shop/e', 'delete Pod/shop/b', 'delete Pod/shop/c', // relist at 200: only the differences
      'delete Pod/shop/d', // HTTP 410 on the watch from 200, relist at 300
    ]);
    assert.deepEqual([...model.items.keys()].sort(), ['weft/resources/v1/Pod/shop/a', 'weft/resources/v1/Pod/shop/e']);
    assert.deepEqual(model.items.get('weft/resources/v1/Pod/shop/a')!.metadata.labels, { app: 'a', tier: 'front' });
    assert.deepEqual(watchQueries('/api/v1/pods'), ['100', '200', '300']);
    assert.equal(r.stats.lists, 3);
    assert.equal(r.stats.expired, 2);
    assert.equal(r.resourceVersion, '300');
  });

  it('advances the resource version on a bookmark without any event, and resumes from it', async () => {
    await replay('bookmark.json');
    const model = new Model();
    const r = watch('Namespace', model);
    await eventually(() => model.items.has('weft/resources/v1/Namespace/_/shop'), 'namespace shop');
    assert.deepEqual(model.log, ['upsert Namespace/_/default', 'upsert Namespace/_/shop']);
    assert.deepEqual(watchQueries('/api/v1/namespaces'), ['300', '350'], 'the second watch starts at the bookmark');
    assert.equal(r.stats.bookmarks, 1);
    assert.equal(r.stats.lists, 1, 'no relist');
    assert.equal(r.resourceVersion, '360');
  });

  it('resumes from the last delivered version after a connection dropped mid-event, backing off on a refused reconnect', async () => {
    await replay('dropped.json');
    const model = new Model();
    const r = watch('Service', model);
    await eventually(() => model.log.length === 4, 'four changes');
    assert.deepEqual(model.log, ['upsert Service/shop/web', 'upsert Service/shop/api', 'upsert Service/shop/web', 'delete Service/shop/api']);
    assert.deepEqual(watchQueries('/api/v1/services'), ['500', '502', '502'], 'resumed at 502 after the drop, and again after the 500');
    assert.equal(r.stats.lists, 1, 'no relist');
    assert.equal(r.stats.failures, 2);
    assert.equal((model.items.get('weft/resources/v1/Service/shop/web')!.spec as { ports: Array<{ port: number }> }).ports[0]!.port, 81);
  });

  it('reports invalid objects with kind, namespace and name and skips them; an update that turns invalid removes the valid version', async () => {
    await replay('policy-updates.json');
    const model = new Model();
    const invalidSeen: string[] = [];
    const onInvalid = model.handler.onInvalid!;
    model.handler.onInvalid = (key, err) => {
      invalidSeen.push(err.message);
      onInvalid(key, err);
    };
    watch('NetworkPolicy', model);
    await eventually(() => model.log.length === 6, 'six changes');
    assert.deepEqual(model.log, [
      'upsert NetworkPolicy/shop/db-ingress',
      'delete NetworkPolicy/shop/named', // invalid in the list: skipped
      'delete NetworkPolicy/shop/db-ingress', // 701 made it invalid: its valid version goes
      'upsert NetworkPolicy/shop/db-ingress', // 702 fixed it
      'upsert NetworkPolicy/shop/named', // 703 fixed it
      'delete NetworkPolicy/shop/db-ingress', // 704 deleted
    ]);
    assert.deepEqual(invalidSeen, [
      'Invalid resource NetworkPolicy shop/named (from Kubernetes): spec.ingress[0].ports[0].port: "PG_main" is neither a port number nor a valid port name (1-15 of a-z, 0-9 and -, at least one letter)',
      'Invalid resource NetworkPolicy shop/db-ingress (from Kubernetes): spec.ingress[0].ports[0].port: "PG_main" is neither a port number nor a valid port name (1-15 of a-z, 0-9 and -, at least one letter)',
    ]);
    assert.equal(model.invalid.size, 0, 'nothing invalid left');
    assert.deepEqual([...model.items.keys()], ['weft/resources/v1/NetworkPolicy/shop/named']);
  });

  it('maps EndpointSlices to each Service\'s ready IPv4 addresses, over several slices', async () => {
    await replay('endpointslices.json');
    const ready = new Map<string, string[] | undefined>();
    const history: string[] = [];
    let synced!: () => void;
    const done = new Promise<void>((r) => (synced = r));
    watches.push(
      source.watchServiceEndpoints({
        onChange: (key, set) => {
          const v = set ? [...set].sort() : undefined;
          ready.set(key, v);
          history.push(`${key.replace('weft/resources/v1/Service/', '')}=${v?.join(',') ?? '-'}`);
        },
        onSynced: () => synced(),
      }),
    );
    await done;
    assert.deepEqual(ready.get('weft/resources/v1/Service/shop/web'), ['10.244.1.5', '10.244.3.7'], 'not-ready 10.244.2.6 left out; no condition counts as ready; IPv6 slice ignored');
    assert.deepEqual(ready.get('weft/resources/v1/Service/shop/api'), ['10.244.1.9']);
    await eventually(() => history.length === 6, 'the watch events');
    assert.deepEqual(history.slice(3), ['shop/web=10.244.1.5,10.244.2.6,10.244.3.7', 'shop/web=10.244.3.7', 'shop/api=-']);
  });

  it('takes the pod CIDR from the Node (waiting for node IPAM) and publishes the node record as WeftNode status', async () => {
    await replay('node.json');
    const node = await source.node('n1');
    assert.deepEqual(node, { name: 'n1', uid: '44444444-0000-4000-8000-000000000001', podCidr: '10.244.1.0/24' });
    assert.equal(server.received('/api/v1/nodes/n1', false).length, 2, 'read again until the pod CIDR was there');

    const spec = { cluster: CLUSTER, clusterId: 1, nodeIp: '192.168.56.11', podCidr: '10.244.1.0/24', routing: 'vxlan' };
    const status = { wireguard: { lanes: [{ publicKey: 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=', port: 51871 }, { publicKey: 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=', port: 51872 }], epoch: 3 } };
    const publisher = source.weftNodePublisher(node);
    publisher.publish({ spec, status });
    await publisher.flush();
    await publisher.stop();
    const [apply, applied] = server.requests.filter((r) => r.method === 'PATCH');
    assert.equal(apply!.path, '/apis/weft.io/v1/weftnodes/n1');
    assert.equal(apply!.headers['content-type'], 'application/apply-patch+yaml');
    assert.deepEqual(JSON.parse(apply!.body), { apiVersion: 'weft.io/v1', kind: 'WeftNode', metadata: { name: 'n1', ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: 'n1', uid: node.uid }] }, spec });
    assert.equal(applied!.path, '/apis/weft.io/v1/weftnodes/n1/status');
    assert.deepEqual(JSON.parse(applied!.body), { apiVersion: 'weft.io/v1', kind: 'WeftNode', metadata: { name: 'n1' }, status });
    assert.equal(publisher.stats.published, 1);
  });

  it('stops a running watch promptly and sends nothing after', async () => {
    await replay('bookmark.json');
    const model = new Model();
    const r = watch('Namespace', model);
    await eventually(() => model.items.size === 2, 'both namespaces');
    const before = server.requests.length;
    await r.stop();
    assert.equal(r.state, 'closed');
    await new Promise((res) => setTimeout(res, 50));
    assert.equal(server.requests.length, before);
  });
});

describe('Kubernetes client configuration and conversion', () => {
  it('refuses to start without a kubeconfig outside a pod, with a typed error', async () => {
    const saved = process.env.KUBERNETES_SERVICE_HOST;
    delete process.env.KUBERNETES_SERVICE_HOST;
    try {
      await assert.rejects(KubeClient.create(), (err: unknown) => err instanceof KubernetesConfigError && err.code === 'WEFT_ERR_KUBERNETES_CONFIG' && /KUBERNETES_SERVICE_HOST is unset/.test(err.message));
      await assert.rejects(KubeClient.create({ kubeconfig: '/nonexistent/kubeconfig' }), (err: unknown) => err instanceof KubernetesConfigError);
    } finally {
      if (saved !== undefined) process.env.KUBERNETES_SERVICE_HOST = saved;
    }
  });

  it('reports an unreachable API server as a typed error with status 0', async () => {
    const server = await new ReplayServer({ exchanges: [] }).start();
    const client = await KubeClient.create({ kubeconfig: server.kubeconfig() });
    const url = server.url;
    await server.close();
    await assert.rejects(client.request('list pods', 'GET', '/api/v1/pods'), (err: unknown) => err instanceof KubernetesApiError && err.status === 0 && err.message.startsWith('Cannot list pods: no answer from the API server'));
    assert.ok(url.startsWith('http://127.0.0.1:'));
  });

  it('refuses an object whose kind is not the one listed, and ignores headless and ExternalName Services', () => {
    assert.throws(() => toResource('Pod', { kind: 'Service', metadata: { name: 'x', namespace: 'a' } }, CLUSTER), /Invalid resource Pod a\/x \(from Kubernetes\): kind: "Service" where Pod was listed/);
    assert.equal(toResource('Service', { metadata: { name: 'h', namespace: 'a' }, spec: { clusterIP: 'None', ports: [{ port: 80 }] } }, CLUSTER), undefined);
    assert.equal(toResource('Service', { metadata: { name: 'e', namespace: 'a' }, spec: { type: 'ExternalName', externalName: 'example.org' } }, CLUSTER), undefined);
    // NodePort is Kubernetes-only; standalone still refuses it.
    const np = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'n', namespace: 'a' }, spec: { type: 'NodePort', clusterIP: '10.96.1.1', ports: [{ port: 80, nodePort: 30080 }] } };
    assert.equal((toResource('Service', np, CLUSTER)!.spec as { type: string }).type, 'ClusterIP');
    assert.throws(() => validateResource(np, 'n.yaml', CLUSTER), /spec\.type: "NodePort" is not supported \(ClusterIP\)/);
  });
});

describe('why Weft has its own reflector: the client informer (makeInformer, 1.4.0)', function () {
  this.timeout(20_000);
  // A canary: if this fails, the client has learned bookmarks and retries; reconsider reflector.ts.
  it('never asks for bookmarks, and stops for good when a watch is refused', async () => {
    const server = await new ReplayServer(recording('bookmark.json')).start();
    const k8s = await import('@kubernetes/client-node');
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(server.kubeconfig());
    const api = kc.makeApiClient(k8s.CoreV1Api);
    const informer = k8s.makeInformer(kc, '/api/v1/namespaces', () => api.listNamespace({ limit: 500 }));
    const errors: unknown[] = [];
    informer.on('error', (err) => errors.push(err));
    try {
      await informer.start();
      await server.until(() => server.received('/api/v1/namespaces', true).length === 1, 'the informer\'s watch');
      const [w] = server.received('/api/v1/namespaces', true);
      assert.equal(w!.query.resourceVersion, '300');
      assert.equal(w!.query.allowWatchBookmarks, undefined, 'no bookmarks asked for');
      assert.equal(server.mismatches.length, 1, 'the recording (a real watch) expects allowWatchBookmarks');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(errors.length, 1, 'the refused watch was reported');
      assert.equal(server.received('/api/v1/namespaces', true).length, 1, 'and never retried');
    } finally {
      await informer.stop();
      await server.close();
    }
  });
});

describe('identity mirror (replayed API traffic)', function () {
  this.timeout(20_000);
  it('writes nothing before the snapshot, then prunes and fills WeftIdentity objects, then follows changes', async () => {
    const server = await new ReplayServer(recording('identities.json')).start();
    const source = await KubernetesSource.create({ cluster: CLUSTER, kubeconfig: server.kubeconfig(), backoff: () => new Backoff({ initialMs: 5, maxMs: 20 }) });
    const mirror = source.identityMirror();
    const labels = (app: string): string => `k8s:app=${app};k8s:io.kubernetes.pod.namespace=shop;k8s:weft.io/cluster=c1`;
    try {
      mirror.upsert('65793', labels('web'));
      mirror.upsert('65794', labels('db'));
      mirror.upsert('65795', labels('api'));
      await new Promise((r) => setTimeout(r, 30));
      assert.equal(server.requests.length, 0, 'nothing before the snapshot is complete');
      mirror.synced();
      await mirror.flush();
      const seen = (): string[] => server.requests.map((r) => `${r.method} ${r.path.replace('/apis/weft.io/v1/weftidentities', '')}`);
      assert.deepEqual(seen()[0], 'GET ');
      // The stale one is replaced (its spec is immutable): refused, deleted, created.
      assert.deepEqual(seen().filter((s) => s.endsWith('/65794')), ['PATCH /65794', 'DELETE /65794', 'PATCH /65794']);
      assert.deepEqual(seen().slice(1).sort(), ['DELETE /65794', 'DELETE /65999', 'PATCH /65794', 'PATCH /65794', 'PATCH /65795']);
      const applied = server.requests.find((r) => r.path.endsWith('/65795'))!;
      assert.equal(applied.headers['content-type'], 'application/apply-patch+yaml');
      assert.deepEqual(JSON.parse(applied.body), { apiVersion: 'weft.io/v1', kind: 'WeftIdentity', metadata: { name: '65795', labels: { 'weft.io/cluster': CLUSTER } }, spec: { labels: { 'k8s:app': 'api', 'k8s:io.kubernetes.pod.namespace': 'shop', 'k8s:weft.io/cluster': CLUSTER } } });

      mirror.delete('65793');
      mirror.upsert('65796', labels('cache'));
      await mirror.flush();
      assert.deepEqual(seen().slice(6), ['DELETE /65793', 'PATCH /65796', 'PATCH /65796']);
      assert.deepEqual(mirror.stats, { applied: 3, deleted: 3, failures: 1, refused: 0 });
      assert.deepEqual(server.mismatches, []);
      assert.ok(server.exhausted);
    } finally {
      await mirror.stop();
      await server.close();
    }
  });
});
