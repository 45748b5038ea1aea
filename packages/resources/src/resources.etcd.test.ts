import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvClient, until, useTestEtcd, type Compare, type TxnOp } from '@weft/kvstore';
import { clusterIPProblem } from './cluster-ip.js';
import { ClusterIPInUseError, InvalidResourceError, ResourceConflictError, ResourceNotFoundError } from './errors.js';
import { loadResourceFiles } from './load.js';
import { CLUSTER_IP_INDEX, clusterIPKey, RESOURCES_ROOT, resourceKey, ResourceStore } from './store.js';
import { NAMESPACED, type Resource, type ResourceKind, type ServiceSpec } from './types.js';
import { validateResource } from './validate.js';

const GOOD = `
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: { team: payments }
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
  labels: { app: web }
spec:
  nodeName: c1-node1
  containers:
  - name: echo
    command: ["weft", "echo-server", "--tcp", "8080"]
---
apiVersion: weft.io/v1
kind: WeftNetworkPolicy
metadata: { name: web-in, namespace: shop }
spec:
  endpointSelector: { matchLabels: { app: web } }
  ingress:
  - fromEntities: [cluster]
---
`;

describe('standalone resources', () => {
  let dir: string;
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'weft-res-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('loads and validates multi-document YAML', () => {
    const rs = loadResourceFiles([file('good.yaml', GOOD)], 'c1');
    assert.deepEqual(rs.map((r) => `${r.kind}/${r.metadata.namespace ?? ''}/${r.metadata.name}`), ['Namespace//shop', 'Pod/shop/web', 'WeftNetworkPolicy/shop/web-in']);
    assert.deepEqual((rs[1]!.spec as { containers: unknown[] }).containers, [{ name: 'echo', command: ['weft', 'echo-server', '--tcp', '8080'] }]);
  });

  it('names the document, line and field of a mistake', () => {
    const cases: Array<[string, RegExp]> = [
      ['apiVersion: v1\nkind: Pod\nmetadata: { name: x }\nspec: { containers: [] }\n', /#1 \(Pod x\) at .*bad\.yaml:1: spec\.containers: must list at least one container/],
      ['apiVersion: v1\nkind: Namespace\nmetadata: { name: ok }\n---\napiVersion: v1\nkind: Pod\nmetadata: { name: y, labels: { app: 3 } }\nspec: { containers: [{ name: a, command: [x] }] }\n', /#2 \(Pod y\) at .*:5: metadata\.labels\.app: value must be a string/],
      ['apiVersion: v1\nkind: Gadget\nmetadata: { name: z }\n', /kind: "Gadget" is not one of Namespace, Pod, Service/],
      ['apiVersion: weft.io/v1\nkind: WeftNetworkPolicy\nmetadata: { name: p }\nspec: { endpointSelector: {}, ingress: [ { toPorts: [ { ports: [ { port: "99999" } ] } ] } ] }\n', /spec\.ingress\[0\]\.toPorts\[0\]\.ports\[0\]\.port: must be a port number/],
      ['apiVersion: v1\nkind: Pod\nmetadata: { name: q\n', /YAML syntax error at line \d+/],
      ['apiVersion: v1\nkind: Service\nmetadata: { name: s }\nspec: { ports: [ { port: 80, protocol: ICMP } ] }\n', /spec\.ports\[0\]\.protocol: "ICMP" is not TCP or UDP/],
      ['apiVersion: v1\nkind: Service\nmetadata: { name: s, annotations: { weft.io/affinity: nearest } }\nspec: { ports: [ { port: 80 } ] }\n', /metadata\.annotations\["weft\.io\/affinity"\]: "nearest" is not one of local, remote, none/],
    ];
    for (const [text, message] of cases) {
      assert.throws(() => loadResourceFiles([file('bad.yaml', text)], 'c1'), (err: unknown) => {
        assert.ok(err instanceof InvalidResourceError, String(err));
        assert.match(err.message, message);
        return true;
      });
    }
  });

  describe('store @etcd', () => {
    const t = useTestEtcd('resources-test');

    it('applies every object or none, and reports created, configured and unchanged', async () => {
      const store = new ResourceStore(t.kv);
      const rs = loadResourceFiles([file('good.yaml', GOOD)], 'c1');
      assert.deepEqual((await store.apply(rs)).map((r) => r.action), ['created', 'created', 'created']);
      assert.deepEqual((await store.apply(rs)).map((r) => r.action), ['unchanged', 'unchanged', 'unchanged']);
      const pod = rs[1]!;
      const changed = { ...pod, metadata: { ...pod.metadata, labels: { app: 'web2' } } };
      assert.deepEqual((await store.apply([changed])).map((r) => r.action), ['configured']);
      assert.equal((await store.get('Pod', 'web', 'shop'))!.metadata.labels.app, 'web2');
      assert.equal((await store.list('Namespace')).length, 1);
    });

    it('deletes nothing when one object of the request is missing', async () => {
      const store = new ResourceStore(t.kv);
      await assert.rejects(store.delete([{ kind: 'Namespace', metadata: { name: 'shop' } }, { kind: 'Pod', metadata: { name: 'ghost', namespace: 'shop' } }]), (err: unknown) => {
        assert.ok(err instanceof ResourceNotFoundError);
        assert.match(err.message, /Resource Pod\/shop\/ghost not found/);
        return true;
      });
      assert.ok(await store.get('Namespace', 'shop'), 'the existing namespace was not deleted');
      assert.deepEqual(await store.delete([{ kind: 'Namespace', metadata: { name: 'shop' } }]), ['Namespace/shop']);
      assert.equal(await store.get('Namespace', 'shop'), undefined);
    });

    describe('requests larger than one etcd transaction (this etcd keeps the default --max-txn-ops, 128)', () => {
      /** `n` objects: namespaces, pods and Services without an address, in that rotation. */
      const many = (n: number, prefix: string): Resource[] =>
        Array.from({ length: n }, (_, i) => {
          if (i % 3 === 0) return validateResource({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `${prefix}-ns-${i}` } }, `#${i}`, 'c1');
          if (i % 3 === 1) return validateResource({ apiVersion: 'v1', kind: 'Pod', metadata: { name: `${prefix}-pod-${i}`, namespace: prefix }, spec: { containers: [{ name: 'main', command: ['x'] }] } }, `#${i}`, 'c1');
          return validateResource({ apiVersion: 'v1', kind: 'Service', metadata: { name: `${prefix}-svc-${i}`, namespace: prefix }, spec: { selector: { app: 'x' }, ports: [{ port: 80 }] } }, `#${i}`, 'c1');
        });
      /** A client that records the size of every transaction it sends. */
      const recording = (kv: KvClient): { kv: KvClient; txns: Array<{ action: string; compare: number; success: number }> } => {
        const txns: Array<{ action: string; compare: number; success: number }> = [];
        const wrapped = Object.create(kv) as KvClient;
        wrapped.txn = async (action, request, options) => {
          txns.push({ action, compare: request.compare.length, success: request.success.length });
          return kv.txn(action, request, options);
        };
        return { kv: wrapped, txns };
      };

      it('applies, re-applies and deletes 1,200 objects in transactions etcd accepts, every Service with its own address', async () => {
        const rs = many(1200, 'big');
        const { kv, txns } = recording(t.kv);
        const store = new ResourceStore(kv);
        const applied = await store.apply(rs);
        assert.equal(applied.length, 1200);
        assert.ok(applied.every((r) => r.action === 'created'));
        assert.ok(txns.every((x) => x.compare <= 128 && x.success <= 128), 'every transaction within --max-txn-ops');
        const writes = txns.filter((x) => x.action.startsWith('apply'));
        // 800 puts, 400 index claims and 800 guards in lists of at most 128: 2000 / 128 rounded up, with room for grouping.
        assert.ok(writes.length <= 20, `${writes.length} write transactions`);
        const ips = applied.filter((r) => r.clusterIP !== undefined).map((r) => r.clusterIP!);
        assert.equal(ips.length, 400);
        assert.equal(new Set(ips).size, 400, 'no two Services share an address');
        assert.equal((await t.kv.list(`${RESOURCES_ROOT}Pod/big/`)).items.length, 400);
        const indexed = new Map((await t.kv.list(CLUSTER_IP_INDEX)).items.map((kv) => [kv.key.slice(CLUSTER_IP_INDEX.length), kv.value.toString()]));
        for (const r of applied.filter((x) => x.clusterIP !== undefined)) assert.equal(indexed.get(r.clusterIP!), `${RESOURCES_ROOT}${r.ref}`);

        assert.ok((await store.apply(rs)).every((r) => r.action === 'unchanged'));
        assert.equal((await store.delete(rs)).length, 1200);
        assert.equal((await t.kv.list(`${RESOURCES_ROOT}Service/big/`)).items.length, 0);
        const left = (await t.kv.list(CLUSTER_IP_INDEX)).items.filter((kv) => kv.value.toString().startsWith(`${RESOURCES_ROOT}Service/big/`));
        assert.deepEqual(left, [], 'every address freed');
      });

      it('stores nothing of a large request whose last Service asks for a taken address, and deletes nothing when its last object is missing', async () => {
        const store = new ResourceStore(t.kv);
        const [holder] = await store.apply([validateResource({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'holder', namespace: 'big2' }, spec: { ports: [{ port: 80 }] } }, 'holder', 'c1')]);
        const taker = validateResource({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'taker', namespace: 'big2' }, spec: { ports: [{ port: 80 }], clusterIP: holder!.clusterIP } }, 'taker', 'c1');
        const rs = [...many(600, 'big2'), taker];
        await assert.rejects(store.apply(rs), (err: unknown) => err instanceof ClusterIPInUseError && !/objects were stored/.test(err.message));
        assert.equal((await t.kv.list(`${RESOURCES_ROOT}Pod/big2/`)).items.length, 0, 'no object of the request was stored');
        assert.equal((await t.kv.list(`${RESOURCES_ROOT}Service/big2/`)).items.length, 1, 'only the holder');

        const stored = many(600, 'big3');
        await store.apply(stored);
        await assert.rejects(store.delete([...stored, { kind: 'Pod', metadata: { name: 'ghost', namespace: 'big3' } }]), ResourceNotFoundError);
        assert.equal((await t.kv.list(`${RESOURCES_ROOT}Pod/big3/`)).items.length, 200, 'nothing was deleted');
        await store.delete(stored);
      });
    });

    describe('service clusterIPs', () => {
      const svc = (namespace: string, name: string, clusterIP?: string, port = 80): Resource =>
        validateResource(
          { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { selector: { app: name }, ports: [{ port }], ...(clusterIP !== undefined ? { clusterIP } : {}) } },
          `test Service ${namespace}/${name}`,
          'c1',
        );
      const ns = (name: string): Resource => validateResource({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }, `test Namespace ${name}`, 'c1');
      const storedIP = async (store: ResourceStore, namespace: string, name: string): Promise<string | undefined> =>
        (await store.get<ServiceSpec>('Service', name, namespace))?.spec.clusterIP;
      const indexOwner = async (ip: string): Promise<string | undefined> => (await t.kv.get(clusterIPKey(ip)))?.value.toString();
      /** Every index entry, as address -> owner key. */
      const index = async (): Promise<Map<string, string>> =>
        new Map((await t.kv.list(CLUSTER_IP_INDEX)).items.map((kv) => [kv.key.slice(CLUSTER_IP_INDEX.length), kv.value.toString()]));
      const ownedBy = async (r: Resource): Promise<string[]> => [...(await index())].filter(([, owner]) => owner === resourceKey(r)).map(([ip]) => ip);
      /** A client whose transactions run `hook` first: a concurrent writer that acts between our read and our write. */
      const interceptTxn = (kv: KvClient, hook: (action: string, request: { compare: Compare[]; success: TxnOp[] }) => Promise<void>): KvClient => {
        const wrapped = Object.create(kv) as KvClient;
        wrapped.txn = async (action, request, options) => {
          await hook(action, request);
          return kv.txn(action, request, options);
        };
        return wrapped;
      };
      /** The index keys a transaction requires absent, i.e. the addresses it claims. */
      const claimedKeys = (request: { compare: Compare[] }): string[] =>
        request.compare.filter((c) => c.key.startsWith(CLUSTER_IP_INDEX) && c.target === 'create' && c.op === '==' && c.value === 0).map((c) => c.key);

      it('allocates an address of the service range, stores and indexes it, and keeps it on re-apply', async () => {
        // The first Service of the suite: with a fixed random source its address is known (the middle of the range).
        assert.deepEqual(await new ResourceStore(t.kv, { random: () => 0.5 }).apply([svc('ip-alloc', 'pinned')]), [{ ref: 'Service/ip-alloc/pinned', action: 'created', clusterIP: '10.96.128.0' }]);
        const store = new ResourceStore(t.kv);
        const web = svc('ip-alloc', 'web');
        const [first] = await store.apply([web]);
        assert.equal(first!.action, 'created');
        const ip = first!.clusterIP!;
        assert.equal(clusterIPProblem(ip), undefined, `allocated ${ip}`);
        assert.equal(await storedIP(store, 'ip-alloc', 'web'), ip, 'readers see spec.clusterIP');
        assert.equal(await indexOwner(ip), resourceKey(web));
        assert.equal((web.spec as ServiceSpec).clusterIP, undefined, 'the caller\'s object is not modified');

        assert.deepEqual(await store.apply([web]), [{ ref: 'Service/ip-alloc/web', action: 'unchanged', clusterIP: ip }]);
        assert.deepEqual(await store.apply([svc('ip-alloc', 'web', ip)]), [{ ref: 'Service/ip-alloc/web', action: 'unchanged', clusterIP: ip }]);
        assert.deepEqual(await store.apply([svc('ip-alloc', 'web', undefined, 8080)]), [{ ref: 'Service/ip-alloc/web', action: 'configured', clusterIP: ip }]);
        assert.equal(await storedIP(store, 'ip-alloc', 'web'), ip);
        assert.deepEqual(await ownedBy(web), [ip], 'one index entry per Service');
      });

      it('gives every Service its own address, within one request too', async () => {
        // random() = 0 makes every pick start at the lowest free address: only the claims of the request keep them apart.
        const store = new ResourceStore(t.kv, { random: () => 0 });
        const results = await store.apply([svc('ip-two', 'a'), svc('ip-two', 'b'), ns('ip-two')]);
        const c = await store.apply([svc('ip-two', 'c')]);
        const ips = [results[0]!.clusterIP, results[1]!.clusterIP, c[0]!.clusterIP];
        assert.equal(new Set(ips).size, 3, `addresses ${ips.join(', ')}`);
        assert.equal(results[2]!.clusterIP, undefined, 'only Services get addresses');
        assert.equal(await storedIP(store, 'ip-two', 'b'), ips[1]);
        assert.equal(await indexOwner(ips[2]!), resourceKey(svc('ip-two', 'c')));
      });

      it('refuses an explicit address another Service holds, and stores nothing of that request', async () => {
        const store = new ResourceStore(t.kv);
        const [a] = await store.apply([svc('ip-taken', 'a')]);
        const ip = a!.clusterIP!;
        const request = [ns('ip-taken-other'), svc('ip-taken', 'b', ip)];
        await assert.rejects(store.apply(request), (err: unknown) => {
          assert.ok(err instanceof ClusterIPInUseError, String(err));
          assert.equal(err.code, 'WEFT_ERR_RESOURCE_CLUSTER_IP_IN_USE');
          assert.equal(err.message, `Cannot apply Service/ip-taken/b: spec.clusterIP ${ip} is in use by Service/ip-taken/a`);
          return true;
        });
        assert.equal(await store.get('Namespace', 'ip-taken-other'), undefined, 'the other object of the request was not stored');
        assert.equal(await store.get('Service', 'b', 'ip-taken'), undefined);
        assert.equal(await indexOwner(ip), resourceKey(svc('ip-taken', 'a')));

        // Two Services of one request asking for one free address.
        await assert.rejects(store.apply([svc('ip-taken', 'x', '10.96.123.45'), svc('ip-taken', 'y', '10.96.123.45')]), /spec\.clusterIP 10\.96\.123\.45 is in use by Service\/ip-taken\/x/);
        assert.equal(await store.get('Service', 'x', 'ip-taken'), undefined);
        assert.equal(await indexOwner('10.96.123.45'), undefined);
      });

      it('refuses an explicit address outside the service range', async () => {
        const store = new ResourceStore(t.kv);
        const cases: Array<[string, RegExp]> = [
          ['10.97.0.1', /Invalid resource Service\/ip-range\/s: spec\.clusterIP: "10\.97\.0\.1" is not in the service range 10\.96\.0\.0\/16/],
          ['192.168.1.1', /"192\.168\.1\.1" is not in the service range/],
          ['10.96.0.0', /"10\.96\.0\.0" is the network address/],
          ['10.96.255.255', /"10\.96\.255\.255" is the broadcast address/],
        ];
        for (const [ip, message] of cases) {
          await assert.rejects(store.apply([ns('ip-range'), svc('ip-range', 's', ip)]), (err: unknown) => {
            assert.ok(err instanceof InvalidResourceError, String(err));
            assert.match(err.message, message);
            return true;
          });
          assert.equal(await indexOwner(ip), undefined);
        }
        assert.equal(await store.get('Service', 's', 'ip-range'), undefined);
        assert.equal(await store.get('Namespace', 'ip-range'), undefined);
        assert.throws(() => svc('ip-range', 's', '10.96.01.1'), /spec\.clusterIP: "10\.96\.01\.1" is not an IPv4 address/);
      });

      it('keeps spec.clusterIP immutable', async () => {
        const store = new ResourceStore(t.kv);
        await store.apply([svc('ip-immutable', 's', '10.96.50.1')]);
        await assert.rejects(store.apply([svc('ip-immutable', 's', '10.96.50.2', 443)]), (err: unknown) => {
          assert.ok(err instanceof InvalidResourceError, String(err));
          assert.match(err.message, /^Invalid resource Service\/ip-immutable\/s: spec\.clusterIP is immutable: it is 10\.96\.50\.1, the request asks for 10\.96\.50\.2/);
          return true;
        });
        const stored = await store.get<ServiceSpec>('Service', 's', 'ip-immutable');
        assert.equal(stored!.spec.clusterIP, '10.96.50.1');
        assert.equal(stored!.spec.ports[0]!.port, 80, 'nothing of the refused apply was stored');
        assert.equal(await indexOwner('10.96.50.2'), undefined);
      });

      it('frees the address on delete, in the same transaction', async () => {
        const store = new ResourceStore(t.kv);
        const old = svc('ip-delete', 'old', '10.96.60.1');
        await store.apply([old]);
        await assert.rejects(store.delete([old, { kind: 'Pod', metadata: { name: 'ghost', namespace: 'ip-delete' } }]), ResourceNotFoundError);
        assert.equal(await indexOwner('10.96.60.1'), resourceKey(old), 'a refused delete frees nothing');

        assert.deepEqual(await store.delete([old]), ['Service/ip-delete/old']);
        assert.equal(await t.kv.get(clusterIPKey('10.96.60.1')), undefined, 'the index key is gone');
        assert.deepEqual(await store.apply([svc('ip-delete', 'new', '10.96.60.1')]), [{ ref: 'Service/ip-delete/new', action: 'created', clusterIP: '10.96.60.1' }]);
        assert.equal(await indexOwner('10.96.60.1'), resourceKey(svc('ip-delete', 'new')));

        // An allocated address goes too, and deleting a Service never frees another's address.
        const [auto] = await store.apply([svc('ip-delete', 'auto')]);
        assert.deepEqual(await store.delete([svc('ip-delete', 'auto'), svc('ip-delete', 'gone')], { ignoreNotFound: true }), ['Service/ip-delete/auto', 'Service/ip-delete/gone']);
        assert.equal(await indexOwner(auto!.clusterIP!), undefined);
        assert.equal(await indexOwner('10.96.60.1'), resourceKey(svc('ip-delete', 'new')));
      });

      it('never shows the index as objects of a kind', async () => {
        const store = new ResourceStore(t.kv);
        const seen: string[] = [];
        const watcher = store.watch('Service', { onChange: (_type, key) => seen.push(key) });
        try {
          await watcher.waitSynced();
          await store.apply([svc('ip-list', 'watched')]);
          await until(() => seen.includes(resourceKey(svc('ip-list', 'watched'))), 'the watcher to see the Service');
          assert.ok((await index()).size > 0);
          assert.deepEqual(seen.filter((k) => !k.startsWith(`${RESOURCES_ROOT}Service/`)), []);
        } finally {
          await watcher.stop();
        }
        for (const kind of Object.keys(NAMESPACED) as ResourceKind[]) {
          for (const r of await store.list(kind)) assert.equal(r.kind, kind);
        }
        await assert.rejects(store.list('_clusterips' as ResourceKind), InvalidResourceError);
      });

      it('never gives two Services one address when twenty are applied at once from two stores', async () => {
        const kv2 = new KvClient({ endpoints: [t.etcd.endpoint] });
        try {
          const stores = [new ResourceStore(t.kv), new ResourceStore(kv2)];
          const services = Array.from({ length: 20 }, (_, i) => svc('ip-race', `s${i}`));
          const results = await Promise.all(services.map((s, i) => stores[i % 2]!.apply([s])));
          const ips = results.map((r) => r[0]!.clusterIP!);
          assert.equal(new Set(ips).size, 20, `addresses ${ips.join(', ')}`);
          for (const [i, s] of services.entries()) assert.deepEqual(await ownedBy(s), [ips[i]]);
        } finally {
          kv2.close();
        }
      });

      it('never gives two Services one address when every applier wants the same one', async () => {
        // random() = 0: all twenty pick the lowest free address, so each round only one wins and the rest must retry.
        const kv2 = new KvClient({ endpoints: [t.etcd.endpoint] });
        try {
          const stores = [new ResourceStore(t.kv, { random: () => 0, maxAttempts: 30 }), new ResourceStore(kv2, { random: () => 0, maxAttempts: 30 })];
          const services = Array.from({ length: 20 }, (_, i) => svc('ip-contend', `s${i}`));
          const results = await Promise.all(services.map((s, i) => stores[i % 2]!.apply([s])));
          const ips = results.map((r) => r[0]!.clusterIP!);
          assert.equal(new Set(ips).size, 20, `addresses ${ips.join(', ')}`);
          for (const [i, s] of services.entries()) {
            assert.deepEqual(await ownedBy(s), [ips[i]]);
            assert.equal(await storedIP(stores[0]!, 'ip-contend', `s${i}`), ips[i]);
          }
        } finally {
          kv2.close();
        }
      });

      it('retries when an address is taken between its read and its write, then gives up', async () => {
        const thief = `${RESOURCES_ROOT}Service/ip-retry/thief`;
        let steals = 1;
        const kv = interceptTxn(t.kv, async (action, request) => {
          if (!action.startsWith('apply') || steals === 0) return;
          steals--;
          for (const key of claimedKeys(request)) await t.kv.put(key, thief);
        });
        const s = svc('ip-retry', 's');
        const [r] = await new ResourceStore(kv).apply([s]);
        assert.equal(steals, 0, 'the first write lost its address');
        assert.equal(await indexOwner(r!.clusterIP!), resourceKey(s));
        assert.equal([...(await index()).values()].filter((o) => o === thief).length, 1, 'the stolen address stays the thief\'s');

        steals = Infinity;
        await assert.rejects(new ResourceStore(kv, { maxAttempts: 3 }).apply([ns('ip-retry-lost'), svc('ip-retry', 'lost')]), (err: unknown) => {
          assert.ok(err instanceof ResourceConflictError, String(err));
          assert.match(err.message, /^Cannot apply Namespace\/ip-retry-lost, Service\/ip-retry\/lost: .* after 3 attempts/);
          return true;
        });
        assert.equal(await new ResourceStore(t.kv).get('Service', 'lost', 'ip-retry'), undefined);
        assert.equal(await new ResourceStore(t.kv).get('Namespace', 'ip-retry-lost'), undefined);
      });

      it('decides a Service\'s address from its latest version, never a stale read', async () => {
        // Store A applies the same new Service between store B's read and write: B must keep A's address, not add its own.
        const s = svc('ip-stale', 's');
        const a = new ResourceStore(t.kv, { random: () => 0.25 });
        let interleaved = false;
        const kv = interceptTxn(t.kv, async (action) => {
          if (!action.startsWith('apply') || interleaved) return;
          interleaved = true;
          await a.apply([s]);
        });
        const [b] = await new ResourceStore(kv, { random: () => 0.75 }).apply([s]);
        assert.ok(interleaved);
        const ip = await storedIP(a, 'ip-stale', 's');
        assert.equal(b!.clusterIP, ip);
        assert.equal(b!.action, 'unchanged');
        assert.deepEqual(await ownedBy(s), [ip], 'no address leaked to the Service');

        // A delete that found the Service absent must not remove it if it is created meanwhile, orphaning its index key.
        const late = svc('ip-stale', 'late');
        let raced = false;
        const kvDel = interceptTxn(t.kv, async (action) => {
          if (!action.startsWith('delete') || raced) return;
          raced = true;
          await a.apply([late]);
        });
        await new ResourceStore(kvDel).delete([late], { ignoreNotFound: true });
        assert.ok(raced);
        assert.equal(await new ResourceStore(t.kv).get('Service', 'late', 'ip-stale'), undefined);
        assert.deepEqual(await ownedBy(late), []);
      });
    });
  });
});
