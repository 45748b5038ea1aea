import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useTestEtcd } from '@weft/kvstore';
import { InvalidResourceError, ResourceNotFoundError } from './errors.js';
import { loadResourceFiles } from './load.js';
import { ResourceStore } from './store.js';

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
  });
});
