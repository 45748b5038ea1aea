// The policy advisor against fixtures (testdata/advisor: flows as `weft observe -o json` prints
// them, and the YAML expected for each run), and the suggested policies against Weft's own parser
// and resolver: they parse, and they admit exactly the connections observed.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LabelSet } from '@weft/identity';
import { parsePolicy, policyCidrs, prefixContains, resolveEndpoint, type Policy } from '@weft/policy';
import { stringifyYamlDocuments, validateResource } from '@weft/resources';
import { suggestPolicies, type AdvisorOptions, type PolicyDocument } from './advisor.js';
import { WorkloadRegistry } from './advisor-model.js';
import { PolicyAdvisorError } from './errors.js';
import { makeFlow } from './testing.js';
import type { Flow, FlowEndpoint } from './types.js';

const TESTDATA = join(__dirname, '..', 'testdata', 'advisor');

interface Fixture {
  name: string;
  flows: Flow[];
  /** Expected file -> the options of its run. */
  expect: Record<string, AdvisorOptions>;
}

function loadFixtures(): Fixture[] {
  return readdirSync(TESTDATA)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const raw = JSON.parse(readFileSync(join(TESTDATA, f), 'utf8')) as { flows: Array<Record<string, unknown>>; expect: Record<string, AdvisorOptions> };
      // The advisor reads no time; the rest of each flow is as the fixture has it.
      const flows = raw.flows.map(({ time: _time, ...rest }) => makeFlow(rest as Parameters<typeof makeFlow>[0]));
      return { name: f.replace(/\.json$/, ''), flows, expect: raw.expect };
    });
}

const yamlOf = (flows: Iterable<Flow>, options?: AdvisorOptions): string => stringifyYamlDocuments(suggestPolicies(flows, options).documents);

/** A seeded shuffle (mulberry32), so a failure repeats. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  let s = seed >>> 0;
  const rand = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const PROTOCOL_NUMBER: Record<string, number> = { TCP: 6, UDP: 17, SCTP: 132, ICMP: 1 };

/**
 * Whether Weft's resolver lets the connection through the policies: the subject's policy map in
 * `direction`, towards the peer's identity (a world address also by the CIDR identity the node
 * would give it), on the server's port. What the datapath does with the same entries.
 */
function admitted(policies: readonly Policy[], cluster: string, identities: Map<number, LabelSet>, subject: FlowEndpoint, direction: 'ingress' | 'egress', peer: FlowEndpoint, protocol: string, port: number): boolean {
  const cidrs = policyCidrs(policies).map((cidr, i) => ({ id: 256 + i, cidr }));
  const u = { cluster, identities: [...identities].map(([id, labels]) => ({ id, labels })), cidrIdentities: cidrs };
  const r = resolveEndpoint({ epId: 1, namespace: subject.namespace, labels: LabelSet.parse(subject.labels) }, policies, u);
  if (!(direction === 'egress' ? r.egressEnforced : r.ingressEnforced)) return true;
  const ids = [peer.identity, ...cidrs.filter((c) => c.cidr === `${peer.ip}/32`).map((c) => c.id)];
  const proto = PROTOCOL_NUMBER[protocol]!;
  return r.entries.some(
    (e) => !e.deny && e.egress === (direction === 'egress') && (e.identity === 0 || ids.includes(e.identity)) && (e.protocol === 0 || (e.protocol === proto && (e.port === undefined || prefixContains(e.port, { port, bits: 16 })))),
  );
}

/** The connections of the flows, as the advisor counts them (from its documented rules, written out again here). */
function connections(flows: readonly Flow[]): Array<{ cluster: string; local: FlowEndpoint; remote: FlowEndpoint; direction: 'ingress' | 'egress'; protocol: string; port: number }> {
  return flows
    .filter((f) => (f.verdict === 'FORWARDED' || f.verdict === 'AUDIT') && !f.related && (f.point === 'from-endpoint' || f.point === 'to-endpoint') && (f.newConnection || f.verdict === 'AUDIT'))
    .map((f) => {
      const fromLocal = f.point === 'from-endpoint';
      const local = fromLocal ? f.source! : f.destination!;
      const remote = fromLocal ? f.destination! : f.source!;
      const server = f.isReply ? f.source! : f.destination!;
      return { cluster: f.cluster, local, remote, direction: (fromLocal !== f.isReply ? 'egress' : 'ingress') as 'ingress' | 'egress', protocol: f.protocol, port: f.protocol === 'ICMP' ? 0 : server.port };
    });
}

describe('policy advisor', () => {
  const fixtures = loadFixtures();

  it('has fixtures', () => assert.ok(fixtures.length >= 5 && fixtures.every((f) => Object.keys(f.expect).length > 0)));

  for (const fx of loadFixtures()) {
    for (const [file, options] of Object.entries(fx.expect)) {
      it(`writes ${file} from ${fx.name}.json`, () => {
        assert.equal(yamlOf(fx.flows, options), readFileSync(join(TESTDATA, file), 'utf8'));
      });
    }
  }

  it('collapses two replicas into one workload, their per-pod labels left out of every selector', () => {
    const fx = fixtures.find((f) => f.name === 'replicas')!;
    const s = suggestPolicies(fx.flows);
    assert.deepEqual(s.documents.map((d) => d.metadata.name), ['weft-suggested-backend', 'weft-suggested-frontend']);
    const text = JSON.stringify(s.documents);
    for (const noise of ['pod-template-hash', 'statefulset.kubernetes.io/pod-name', '7c9f', 'backend-0']) assert.ok(!text.includes(noise), noise);
    assert.equal(s.stats.workloads, 2);
  });

  it('gives the same bytes for the same flows in any order, and however often each was seen', () => {
    for (const fx of fixtures) {
      for (const [file, options] of Object.entries(fx.expect)) {
        const want = yamlOf(fx.flows, options);
        for (let seed = 1; seed <= 20; seed++) {
          const flows = shuffled([...fx.flows, ...fx.flows.slice(0, seed % fx.flows.length)], seed);
          assert.equal(yamlOf(flows, options), want, `${file}, seed ${seed}`);
        }
      }
    }
  });

  it('writes documents that Weft parses (its policy parser and weft apply\'s validation) without an error', () => {
    for (const fx of fixtures) {
      for (const [file, options] of Object.entries(fx.expect)) {
        const s = suggestPolicies(fx.flows, options);
        assert.ok(s.documents.length > 0, file);
        s.documents.forEach((d, i) => {
          const p = parsePolicy(d, s.cluster!);
          assert.deepEqual(p.enforces.sort(), ['egress', 'ingress'], `${file} #${i + 1}: both directions enforced`);
          validateResource(d, `${file} #${i + 1}`, s.cluster!);
        });
      }
    }
  });

  it('admits exactly the connections observed: Weft\'s resolver allows each, and nothing else between the endpoints seen', () => {
    let total = 0;
    for (const fx of fixtures) {
      const identities = new Map<number, LabelSet>();
      for (const f of fx.flows) for (const ep of [f.source!, f.destination!]) if (ep.labels.length > 0 && !ep.labels.some((l) => l.startsWith('reserved:'))) identities.set(ep.identity, LabelSet.parse(ep.labels));
      const conns = connections(fx.flows);
      const ports = [...new Set(conns.map((c) => `${c.protocol}/${c.port}`))].map((p) => p.split('/') as [string, string]);
      const registry = new WorkloadRegistry();
      const placeOf = (ep: FlowEndpoint): string => {
        const side = registry.side(ep);
        return side.kind === 'workload' ? side.workload.key : side.kind === 'world' ? side.ip : side.kind === 'entity' ? side.entity : '?';
      };
      for (const [file, options] of Object.entries(fx.expect)) {
        const s = suggestPolicies(fx.flows, options);
        const cluster = s.cluster!;
        const policies = s.documents.map((d) => parsePolicy(d, cluster));
        const mine = conns.filter((c) => c.cluster === cluster && (!options.namespaces || options.namespaces.includes(c.local.namespace)));
        const observed = new Set(mine.map((c) => `${placeOf(c.local)}|${c.direction}|${placeOf(c.remote)}|${c.protocol}/${c.port}`));
        const subjects = [...new Map(mine.map((c) => [c.local.ip, c.local])).values()];
        const peers = [...new Map(fx.flows.flatMap((f) => [f.source!, f.destination!]).map((ep) => [ep.ip, ep])).values()];
        let checked = 0;
        for (const subject of subjects) {
          for (const peer of peers) {
            if (peer.ip === subject.ip) continue;
            for (const direction of ['ingress', 'egress'] as const) {
              for (const [protocol, port] of ports) {
                const want = observed.has(`${placeOf(subject)}|${direction}|${placeOf(peer)}|${protocol}/${port}`);
                const got = admitted(policies, cluster, identities, subject, direction, peer, protocol, Number(port));
                assert.equal(got, want, `${file}: ${subject.pod} ${direction} ${direction === 'ingress' ? 'from' : 'to'} ${peer.pod || peer.ip} on ${protocol}/${port}`);
                checked++;
              }
            }
          }
        }
        assert.ok(checked > 0, file);
        total += checked;
      }
    }
    assert.ok(total > 200, `${total} cases checked`);
  });

  it('writes for a namespace exactly what it writes for the whole cluster in that namespace', () => {
    for (const fx of fixtures) {
      for (const options of Object.values(fx.expect)) {
        const all = suggestPolicies(fx.flows, { ...options, namespaces: [] }).documents;
        for (const ns of new Set(all.map((d) => d.metadata.namespace))) {
          assert.deepEqual(suggestPolicies(fx.flows, { ...options, namespaces: [ns] }).documents, all.filter((d) => d.metadata.namespace === ns), `${fx.name} ${ns}`);
        }
      }
    }
  });

  it('places a namespace\'s peers among every workload seen, also those only other namespaces talked to', () => {
    const ep = (cluster: string, ns: string, labels: Record<string, string>, ip: string, identity: number, port = 0): FlowEndpoint => ({
      ip, port, identity, namespace: ns, pod: ip, cluster,
      labels: [...Object.entries(labels).map(([k, v]) => `k8s:${k}=${v}`), `k8s:io.kubernetes.pod.namespace=${ns}`, `k8s:weft.io/cluster=${cluster}`],
    });
    // shop/a calls c2's db; other/b calls c2's db canary (app=db plus track=canary), seen by no flow of shop.
    const flows = [
      makeFlow({ point: 'from-endpoint', source: ep('c1', 'shop', { app: 'a' }, '10.101.1.1', 65800), destination: ep('c2', 'data', { app: 'db' }, '10.102.1.1', 131328, 5432) }),
      makeFlow({ point: 'from-endpoint', source: ep('c1', 'other', { app: 'b' }, '10.101.1.2', 65801), destination: ep('c2', 'data', { app: 'db', track: 'canary' }, '10.102.1.2', 131329, 5432) }),
    ];
    const shop = suggestPolicies(flows, { namespaces: ['shop'] }).documents;
    assert.deepEqual(shop, suggestPolicies(flows).documents.filter((d) => d.metadata.namespace === 'shop'));
    assert.deepEqual((shop[0]!.spec.egress as Array<{ toEndpoints: unknown[] }>)[0]!.toEndpoints, [
      { matchLabels: { app: 'db', 'io.kubernetes.pod.namespace': 'data', 'weft.io/cluster': 'c2' }, matchExpressions: [{ key: 'track', operator: 'DoesNotExist' }] },
    ]);
  });

  describe('what it does not admit', () => {
    const fx = (): Fixture => fixtures.find((f) => f.name === 'replicas')!;
    const [frontendA, backend] = [fx().flows[0]!.source!, fx().flows[0]!.destination!];
    const db = { ...backend, ip: '10.101.1.40', identity: 65803, pod: 'db-0', labels: ['k8s:app=db', 'k8s:io.kubernetes.pod.namespace=shop', 'k8s:weft.io/cluster=c1'], port: 5432 };

    it('ignores dropped flows, related ICMP errors, the overlay and underlay points and packets after the first; counts each', () => {
      const noise = [
        makeFlow({ verdict: 'DROPPED', dropReason: 'POLICY_DENIED', point: 'from-endpoint', source: frontendA, destination: db }),
        makeFlow({ verdict: 'DROPPED', dropReason: 'POLICY_DENIED', point: 'to-endpoint', trafficDirection: 'INGRESS', source: frontendA, destination: db }),
        makeFlow({ verdict: 'FORWARDED', related: true, newConnection: false, protocol: 'ICMP', point: 'to-endpoint', source: db, destination: frontendA }),
        makeFlow({ verdict: 'DROPPED', point: 'from-overlay', source: frontendA, destination: db }),
        makeFlow({ verdict: 'FORWARDED', point: 'from-overlay', source: frontendA, destination: db }),
        makeFlow({ verdict: 'FORWARDED', newConnection: false, isReply: true, point: 'from-endpoint', source: { ...backend, port: 8080 }, destination: { ...frontendA, port: 40000 } }),
        makeFlow({ verdict: 'VERDICT_UNKNOWN', point: 'from-endpoint', source: frontendA, destination: db }),
      ];
      const s = suggestPolicies([...noise, ...fx().flows]);
      assert.equal(stringifyYamlDocuments(s.documents), readFileSync(join(TESTDATA, 'replicas.yaml'), 'utf8'));
      assert.deepEqual(s.stats.ignored, { verdict: 4, related: 1, point: 1, 'not-new': 1, 'other-cluster': 0, 'dropped-by-peer': 0, namespace: 0, 'unknown-subject': 0, 'unknown-peer': 0, protocol: 0 });
      assert.deepEqual(s.warnings, []);
    });

    it('does not admit at the client a connection the server\'s end dropped (its egress let it out), unless the same connection got through there', () => {
      const tool = { ...frontendA, ip: '10.101.1.50', identity: 65804, pod: 'tool', labels: ['k8s:app=tool', 'k8s:io.kubernetes.pod.namespace=shop', 'k8s:weft.io/cluster=c1'], port: 41000 };
      const out = makeFlow({ point: 'from-endpoint', source: tool, destination: { ...backend, port: 8080 } });
      const refused = makeFlow({ verdict: 'DROPPED', dropReason: 'POLICY_DENIED', point: 'to-endpoint', trafficDirection: 'INGRESS', source: tool, destination: { ...backend, port: 8080 } });
      const s = suggestPolicies([...fx().flows, out, refused]);
      assert.equal(stringifyYamlDocuments(s.documents), readFileSync(join(TESTDATA, 'replicas.yaml'), 'utf8'));
      assert.equal(s.stats.ignored['dropped-by-peer'], 1);
      const through = makeFlow({ point: 'to-endpoint', trafficDirection: 'INGRESS', source: tool, destination: { ...backend, port: 8080 } });
      const admitted = suggestPolicies([...fx().flows, out, refused, through]).documents.map((d) => d.metadata.name);
      assert.deepEqual(admitted, ['weft-suggested-backend', 'weft-suggested-frontend', 'weft-suggested-tool']);
      const elsewhere = makeFlow({ ...refused, cluster: 'c2', node: 'c2-node1', source: tool, destination: { ...backend, port: 8080 } });
      assert.equal(suggestPolicies([...fx().flows, out, elsewhere], { cluster: 'c1' }).documents.length, 3, 'a drop another cluster saw is not this cluster\'s');
    });

    it('admits what audit mode let through, also an established connection audited on a reply (turned round)', () => {
      const audits = fx().flows.map(({ source, destination, ...f }) =>
        f.point === 'from-endpoint'
          ? // The client's node: the reply arriving at the client.
            makeFlow({ ...f, verdict: 'AUDIT', dropReason: 'POLICY_REVOKED', newConnection: false, isReply: true, point: 'to-endpoint', trafficDirection: 'EGRESS', source: destination!, destination: source! })
          : // The server's node: a new connection audit mode admitted.
            makeFlow({ ...f, verdict: 'AUDIT', dropReason: 'POLICY_DENIED', source: source!, destination: destination! }),
      );
      assert.equal(yamlOf(audits), readFileSync(join(TESTDATA, 'replicas.yaml'), 'utf8'));
    });

    it('warns about a peer no policy can name (an identity the node did not know, a reserved one) and an IP protocol without ports, and admits none of them', () => {
      const unknown = { ip: '10.102.9.9', identity: 132000, namespace: '', pod: '', labels: [], cluster: '', port: 80 };
      const s = suggestPolicies([
        ...fx().flows,
        makeFlow({ point: 'from-endpoint', source: frontendA, destination: unknown }),
        makeFlow({ point: 'from-endpoint', source: frontendA, destination: { ...unknown, identity: 7, ip: '10.96.0.1', labels: ['reserved:kube-apiserver'] } }),
        makeFlow({ point: 'from-endpoint', protocol: '47', source: frontendA, destination: backend }),
      ]);
      assert.equal(stringifyYamlDocuments(s.documents), readFileSync(join(TESTDATA, 'replicas.yaml'), 'utf8'));
      assert.equal(s.warnings.length, 3);
      assert.match(s.warnings.join('\n'), /Cannot admit shop\/app=frontend to 10\.102\.9\.9 \(identity 132000\) on TCP\/80: identity 132000 has no labels that place it/);
      assert.match(s.warnings.join('\n'), /reserved identity kube-apiserver has no policy entity/);
      assert.match(s.warnings.join('\n'), /IP protocol 47 has no policy port rule; the suggested policy denies it/);
      assert.deepEqual([s.stats.ignored['unknown-peer'], s.stats.ignored.protocol], [2, 1]);
    });
  });

  describe('the world', () => {
    const web = { ip: '10.101.1.30', identity: 65810, namespace: 'shop', pod: 'web-1', labels: ['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=shop', 'k8s:weft.io/cluster=c1'], cluster: 'c1', port: 40000 };
    const toWorld = (n: number, port: number): Flow[] =>
      Array.from({ length: n }, (_, i) => makeFlow({ point: 'from-endpoint', source: web, destination: { ip: `203.0.113.${i + 1}`, identity: 2, labels: ['reserved:world'], port } }));

    it('names each world address as a /32 up to the limit, then the world entity with every port seen', () => {
      const flows = [...toWorld(17, 443), ...toWorld(2, 80)];
      const over = suggestPolicies(flows).documents[0]! as PolicyDocument & { spec: { egress: unknown[] } };
      assert.equal(over.kind, 'WeftNetworkPolicy');
      assert.deepEqual(over.spec.egress, [{ toEntities: ['world'], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }, { port: '443', protocol: 'TCP' }] }] }]);
      const under = suggestPolicies(flows, { worldCidrLimit: 17 }).documents[0]! as PolicyDocument & { spec: { egress: Array<{ to: unknown[] }> } };
      assert.equal(under.kind, 'NetworkPolicy');
      assert.deepEqual(under.spec.egress.map((r) => r.to.length), [2, 15], 'the two addresses on both ports share a rule');
      assert.throws(() => suggestPolicies(flows, { worldCidrLimit: -1 }), (e: unknown) => e instanceof PolicyAdvisorError && e.code === 'WEFT_ERR_POLICY_ADVISOR');
    });

    it('reads a node-local CIDR identity (a world address a policy names) as the world', () => {
      const cidr = makeFlow({ point: 'from-endpoint', source: web, destination: { ip: '10.99.255.250', identity: 260, labels: [], port: 8080 } });
      const plain = makeFlow({ point: 'from-endpoint', source: web, destination: { ip: '10.99.255.250', identity: 2, labels: ['reserved:world'], port: 8080 } });
      assert.equal(yamlOf([cidr]), yamlOf([plain]));
      assert.match(yamlOf([cidr]), /cidr: 10\.99\.255\.250\/32/);
    });
  });

  describe('names', () => {
    const pod = (ns: string, labels: Record<string, string>, ip: string): FlowEndpoint => ({
      ip,
      port: 80,
      identity: 70000,
      namespace: ns,
      pod: 'p',
      labels: [...Object.entries(labels).map(([k, v]) => `k8s:${k}=${v}`), `k8s:io.kubernetes.pod.namespace=${ns}`, 'k8s:weft.io/cluster=c1'],
      cluster: 'c1',
    });
    const client = pod('shop', { app: 'client' }, '10.101.1.1');
    const names = (...servers: FlowEndpoint[]): string[] => suggestPolicies(servers.map((s) => makeFlow({ point: 'to-endpoint', source: client, destination: s }))).documents.map((d) => d.metadata.name);

    it('are the label values in key order, lowercased into a DNS label', () => {
      assert.deepEqual(names(pod('shop', { app: 'Web_API', tier: 'front' }, '10.101.1.2')), ['weft-suggested-web-api-front']);
      assert.deepEqual(names(pod('shop', {}, '10.101.1.2')), ['weft-suggested-unlabeled']);
    });

    it('end in a hash of the workload when two workloads of a namespace would share one, or when cut to 63 characters', () => {
      const [a, b] = names(pod('shop', { app: 'a-b' }, '10.101.1.2'), pod('shop', { app: 'a', x: 'b' }, '10.101.1.3'));
      assert.match(a!, /^weft-suggested-a-b-[0-9a-f]{8}$/);
      assert.match(b!, /^weft-suggested-a-b-[0-9a-f]{8}$/);
      assert.notEqual(a, b);
      assert.deepEqual(names(pod('other', { app: 'a-b' }, '10.101.1.2')), ['weft-suggested-a-b'], 'another namespace: no clash');
      const [long] = names(pod('shop', { app: 'x'.repeat(60) }, '10.101.1.2'));
      assert.equal(long!.length, 63);
      assert.match(long!, /^weft-suggested-x{39}-[0-9a-f]{8}$/);
    });
  });

  it('refuses flows of several clusters unless told which cluster\'s workloads get policies', () => {
    const fx = fixtures.find((f) => f.name === 'cross-cluster')!;
    assert.throws(() => suggestPolicies(fx.flows), (e: unknown) => e instanceof PolicyAdvisorError && /the flows come from 2 clusters \(c1, c2\); name the cluster/.test(e.message));
    assert.equal(suggestPolicies(fx.flows.filter((f) => f.cluster === 'c2')).cluster, 'c2');
    const none = suggestPolicies([]);
    assert.deepEqual([none.cluster, none.documents, none.stats.flows], [undefined, [], 0]);
  });
});
