// Kubernetes' NetworkPolicy e2e cases (kubernetes/kubernetes test/e2e/network/netpol), ported to
// the lab, as root, in both routing modes (issue 13 item 6). As upstream: namespaces x, y, z
// (labelled ns: x...; kubernetes.io/metadata.name is Weft's own, from the namespace's name), pods
// a, b, c in each (labelled pod: a...), each serving TCP and UDP on ports 80 and 81 with the named
// container ports serve-80-tcp, serve-81-tcp, serve-80-udp and serve-81-udp. Each case applies its
// policies with `weft apply`, sets the expected truth table and probes all 72 pairs (loopback
// left out, as upstream) until the table matches or a deadline passes.
//
// Differences from upstream, and why:
//  - One lab and one set of 9 pods per routing mode, not fresh namespaces per case: a lab takes
//    long to build on a shared 2-core machine. After each case its policies are deleted and its
//    relabels undone, and the next case starts only once no endpoint of x, y, z names a policy.
//  - All 9 pods in every case (the original suite's model; newer upstream creates a subset per
//    case). Where upstream's expectations were written for a subset, the table here is the one
//    NetworkPolicy gives for all 9 pods (e.g. "Multiple PodSelectors and NamespaceSelectors":
//    z/a is denied too, as its pod label is neither b nor c).
//  - Pods spread over both nodes (a, c and so on alternate), so same-namespace and cross-namespace
//    pairs take both node-local and tunnelled/routed paths.
//  - Probes go to pod addresses: upstream probes each pod through its own Service by DNS name;
//    the lab has no DNS, and the Service path is e2e/services.e2e.test.js's.
//  - Each pod has two containers (cont-80, cont-81), each serving TCP and UDP on its port and
//    naming both (upstream: one container per port and protocol). Named ports resolve per pod
//    from all its containers' ports either way.
//  - endPort cases are Weft's: upstream's suite has no reachability case with endPort.
//
// Not ported:
//  - The SCTP connectivity cases ("NetworkPolicy between server and client using SCTP":
//    default-deny-ingress, Ports, PodSelector and NamespaceSelector): Weft's datapath reads no
//    SCTP header (bpf/lib/common.h takes ports from TCP and UDP only), so an SCTP port rule can
//    never match, and the lab's echo server (Node) has no SCTP sockets. The two cases that probe
//    TCP against SCTP policies ("should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP'",
//    "should properly isolate pods that are selected by a policy allowing SCTP") are ported.
//  - network_legacy.go: the suite's older cases, which probe through Services and DNS with their
//    own pods; upstream rewrote them as the truth-table cases ported here.
'use strict';
const assert = require('node:assert/strict');
const { existsSync, mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { execFileSync } = require('node:child_process');
const { weft, isRoot } = require('./helpers');
const { NAMESPACES, PODS, Reachability, mismatches, describeMismatch, selectorMatches } = require('./netpol-model');
const { PodProber } = require('./netpol-prober');

const NODES = ['c1-node1', 'c1-node2'];
/** Probe timeouts: a denied pair costs both; an allowed one answers in milliseconds. */
const PROBE = { timeoutMs: 1000, retryTimeoutMs: 1000 };
/** How long a table may take to match after its barrier (identities of relabelled pods travel). */
const DEADLINE_MS = 15_000;

const baseNamespaceLabels = (ns) => ({ ns });
const basePodLabels = (ref) => ({ pod: ref.split('/')[1] });

function namespaceDoc(ns, labels) {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels } };
}

function podDoc(ref, labels) {
  const [ns, name] = ref.split('/');
  const container = (port) => ({
    name: `cont-${port}`,
    command: ['weft', 'echo-server', '--tcp', String(port), '--udp', String(port), '--name', `${ns}-${name}-${port}`],
    ports: [{ name: `serve-${port}-tcp`, containerPort: port, protocol: 'TCP' }, { name: `serve-${port}-udp`, containerPort: port, protocol: 'UDP' }],
  });
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels }, spec: { nodeName: NODES[PODS.indexOf(ref) % 2], containers: [container(80), container(81)] } };
}

/** A NetworkPolicy; `types` lists its policyTypes (upstream's SetSpecIngressRules/SetSpecEgressRules set them). */
function policy(name, ns, podSelector, { ingress, egress }) {
  const spec = { podSelector, policyTypes: [] };
  if (ingress) {
    spec.policyTypes.push('Ingress');
    spec.ingress = ingress;
  }
  if (egress) {
    spec.policyTypes.push('Egress');
    spec.egress = egress;
  }
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: ns }, spec };
}

const ALL = {};
const podIs = (pod) => ({ matchLabels: { pod } });
const nsIs = (ns) => ({ matchLabels: { 'kubernetes.io/metadata.name': ns } });
const nsNotIn = (...ns) => ({ matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ns }] });
const R = () => new Reachability(true);
const sameLabels = (a, b) => JSON.stringify(Object.entries(a ?? {}).sort()) === JSON.stringify(Object.entries(b ?? {}).sort());

/** The lab, its 9 pods, a prober in each, and what each case changed (to undo it). */
class NetpolLab {
  async up(routing) {
    this.dir = mkdtempSync(join(tmpdir(), 'weft-netpol-'));
    this.fileCount = 0;
    this.probers = new Map();
    this.podLabels = new Map(PODS.map((p) => [p, basePodLabels(p)]));
    this.nsLabels = new Map(NAMESPACES.map((n) => [n, baseNamespaceLabels(n)]));
    this.applied = new Map();
    this.relabelled = { pods: new Set(), namespaces: new Set() };
    const t0 = (this.t0 = Date.now());
    const up = await weft(['lab', 'up', '--nodes', '2', '--routing', routing, '--no-demo'], { timeout: 300_000 });
    assert.equal(up.code, 0, up.stderr);
    const { readLabState, agentSocket, podNetnsName } = require('@weft/lab');
    const { AgentClient } = require('@weft/agent');
    this.agents = readLabState().clusters[0].nodes.map((n) => new AgentClient(agentSocket(n)));
    await this.applyDocs([...NAMESPACES.map((n) => namespaceDoc(n, baseNamespaceLabels(n))), ...PODS.map((p) => podDoc(p, basePodLabels(p)))]);
    await this.until(async () => (await this.endpoints()).length === PODS.length, 'the 9 pods to become endpoints', 120_000);
    this.ips = new Map((await this.endpoints()).map((e) => [`${e.namespace}/${e.pod}`, e.ip]));
    for (const p of PODS) this.probers.set(p, new PodProber(podNetnsName('c1', ...p.split('/'))));
    await Promise.all([...this.probers.values()].map((p) => p.ready));
    this.log(`lab (${routing}) with 9 pods up in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  }

  async down() {
    await Promise.all([...(this.probers?.values() ?? [])].map((p) => p.close()));
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    const down = await weft(['lab', 'down'], { timeout: 300_000 });
    assert.equal(down.code, 0, down.stderr);
    const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('weft-'));
    assert.deepEqual(left, [], 'no lab namespace left');
    assert.equal(existsSync('/sys/fs/bpf/weft'), false, 'no bpffs pins left');
    if (this.t0) this.log(`lab up, cases and lab down took ${((Date.now() - this.t0) / 1000).toFixed(1)}s`);
  }

  log(line) {
    if (process.env.WEFT_NETPOL_VERBOSE) process.stderr.write(`      [netpol] ${line}\n`);
  }

  async until(cond, what, timeoutMs = DEADLINE_MS) {
    const deadline = Date.now() + timeoutMs;
    while (!(await cond())) {
      if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The endpoints of x, y and z on both nodes, as the agents report them. */
  async endpoints() {
    const all = (await Promise.all(this.agents.map((a) => a.endpoints()))).flat();
    return all.filter((e) => NAMESPACES.includes(e.namespace));
  }

  async applyDocs(docs, verb = 'apply') {
    const path = join(this.dir, `${verb}-${++this.fileCount}.yaml`);
    writeFileSync(path, docs.map((d) => JSON.stringify(d)).join('\n---\n') + '\n');
    const r = await weft([verb, '-f', path]);
    assert.equal(r.code, 0, `weft ${verb} failed: ${r.stderr}`);
  }

  /**
   * Applies (creates or updates) policies as a user does, then waits until every agent knows them
   * and every pod they select has them in force: a table probed before that could match by luck.
   */
  async apply(...policies) {
    await this.applyDocs(policies);
    for (const p of policies) this.applied.set(`${p.metadata.namespace}/${p.metadata.name}`, p);
    await this.policiesInForce(policies);
  }

  async policiesInForce(policies) {
    const ids = policies.map((p) => `NetworkPolicy/${p.metadata.namespace}/${p.metadata.name}`);
    await this.until(async () => {
      const known = await Promise.all(this.agents.map(async (a) => new Set((await a.policies()).map((p) => p.id))));
      if (!ids.every((id) => known.every((k) => k.has(id)))) return false;
      const eps = await this.endpoints();
      return policies.every((p, i) => PODS.filter((ref) => ref.startsWith(`${p.metadata.namespace}/`) && selectorMatches(p.spec.podSelector, this.podLabels.get(ref)))
        .every((ref) => {
          const e = eps.find((x) => `${x.namespace}/${x.pod}` === ref);
          return e?.policy?.state === 'ok' && e.policy.policies.includes(ids[i]);
        }));
    }, `policies ${ids.join(', ')} to be in force`);
  }

  /** Deletes policies by name (`ns/name`) and waits until no agent and no endpoint has them. */
  async delete(...refs) {
    const docs = refs.map((r) => this.applied.get(r));
    await this.applyDocs(docs, 'delete');
    for (const r of refs) this.applied.delete(r);
    const ids = refs.map((r) => `NetworkPolicy/${r}`);
    await this.until(async () => {
      const known = (await Promise.all(this.agents.map((a) => a.policies()))).flat().map((p) => p.id);
      const inForce = (await this.endpoints()).flatMap((e) => e.policy?.policies ?? []);
      return !ids.some((id) => known.includes(id) || inForce.includes(id));
    }, `policies ${ids.join(', ')} to go`);
  }

  /** Gives a running pod new labels (the pod stays; its endpoint is regenerated) and waits for it. */
  async relabelPod(ref, labels) {
    await this.applyDocs([podDoc(ref, labels)]);
    this.podLabels.set(ref, labels);
    this.relabelled.pods.add(ref);
    await this.podsLabelled([ref]);
  }

  async podsLabelled(refs) {
    await this.until(async () => {
      const eps = await this.endpoints();
      return refs.every((ref) => {
        const e = eps.find((x) => `${x.namespace}/${x.pod}` === ref);
        const want = this.podLabels.get(ref);
        return e && e.regeneration?.state !== 'regenerating' && sameLabels(e.labels, want);
      });
    }, `pods ${refs.join(', ')} to carry their labels`);
  }

  async relabelNamespace(ns, labels) {
    await this.applyDocs([namespaceDoc(ns, labels)]);
    this.nsLabels.set(ns, labels);
    this.relabelled.namespaces.add(ns);
    await this.namespacesLabelled([ns]);
  }

  async namespacesLabelled(namespaces) {
    await this.until(async () => {
      const eps = await this.endpoints();
      return namespaces.every((ns) => eps.filter((e) => e.namespace === ns).every((e) => e.regeneration?.state !== 'regenerating' && sameLabels(e.namespaceLabels, this.nsLabels.get(ns))));
    }, `namespaces ${namespaces.join(', ')} to carry their labels`);
  }

  /** Undoes a case: its policies deleted, its relabels reverted; the next case starts clean. */
  async reset() {
    if (!this.agents) return;
    const restore = [];
    for (const ns of this.relabelled.namespaces) {
      this.nsLabels.set(ns, baseNamespaceLabels(ns));
      restore.push(namespaceDoc(ns, baseNamespaceLabels(ns)));
    }
    for (const ref of this.relabelled.pods) {
      this.podLabels.set(ref, basePodLabels(ref));
      restore.push(podDoc(ref, basePodLabels(ref)));
    }
    if (restore.length > 0) await this.applyDocs(restore);
    if (this.applied.size > 0) await this.delete(...this.applied.keys());
    await this.namespacesLabelled([...this.relabelled.namespaces]);
    await this.podsLabelled([...this.relabelled.pods]);
    this.relabelled = { pods: new Set(), namespaces: new Set() };
    await this.until(async () => (await this.endpoints()).every((e) => (e.policy?.policies ?? []).length === 0 && e.policy?.state !== 'error'), 'no endpoint of x, y, z to name a policy');
  }

  /** One probe round: every pod to every other on `port`/`protocol`; a Map `from>to` -> allowed. */
  async probeAll(port, protocol) {
    const observed = new Map();
    await Promise.all(PODS.map(async (from) => {
      const to = PODS.filter((p) => p !== from);
      const results = await this.probers.get(from).probe(to.map((p) => ({ ip: this.ips.get(p), port, protocol })), PROBE);
      to.forEach((p, i) => observed.set(`${from}>${p}`, results[i]));
    }));
    return observed;
  }

  /** Probes until the table matches `expected`, or fails with upstream-style tables of the difference. */
  async validate(port, protocol, expected, deadlineMs = DEADLINE_MS) {
    const t0 = Date.now();
    let rounds = 0;
    for (;;) {
      const observed = await this.probeAll(port, protocol);
      rounds++;
      if (mismatches(expected, observed).length === 0) {
        this.log(`${protocol}/${port} matched after ${rounds} round(s), ${Date.now() - t0}ms`);
        return;
      }
      if (Date.now() - t0 > deadlineMs) assert.fail(describeMismatch(`${protocol}/${port} after ${rounds} probe rounds in ${((Date.now() - t0) / 1000).toFixed(1)}s`, expected, observed));
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

for (const routing of ['vxlan', 'direct']) {
  describe(`NetworkPolicy cases of Kubernetes' netpol e2e, x/y/z pods a/b/c on two nodes, ${routing} routing (e2e, root)`, function () {
    this.timeout(300_000);
    const lab = new NetpolLab();
    const X = 'x';
    const Y = 'y';
    const Z = 'z';

    before(async function () {
      if (!isRoot()) return this.skip();
      this.timeout(600_000);
      await lab.up(routing);
    });

    afterEach(async function () {
      if (!isRoot()) return;
      await lab.reset();
    });

    after(async function () {
      if (!isRoot()) return;
      this.timeout(600_000);
      await lab.down();
    });

    it('allows everything without a policy (TCP and UDP, ports 80 and 81)', async () => {
      // The servers start with the pods: give them time to listen.
      for (const [port, protocol] of [[80, 'TCP'], [81, 'TCP'], [80, 'UDP'], [81, 'UDP']]) await lab.validate(port, protocol, R(), 60_000);
    });

    describe('TCP', () => {
      it("should support a 'default-deny-ingress' policy", async () => {
        await lab.apply(policy('deny-ingress', X, ALL, { ingress: [] }));
        await lab.validate(80, 'TCP', R().expectPeer({}, { namespace: X }, false));
      });

      it("should support a 'default-deny-all' policy", async () => {
        await lab.apply(policy('deny-all', X, ALL, { ingress: [], egress: [] }));
        await lab.validate(80, 'TCP', R().expectPeer({}, { namespace: X }, false).expectPeer({ namespace: X }, {}, false));
      });

      it('should enforce policy to allow traffic from pods within server namespace based on PodSelector', async () => {
        await lab.apply(policy('x-a-allows-x-b', X, podIs('a'), { ingress: [{ from: [{ podSelector: podIs('b') }] }] }));
        await lab.validate(80, 'TCP', R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true));
      });

      it('should enforce policy to allow ingress traffic for a target', async () => {
        await lab.apply(
          policy('deny-all', X, ALL, { ingress: [] }),
          policy('allow-all-to-a', X, podIs('a'), { ingress: [{ from: [{ podSelector: {}, namespaceSelector: {} }] }] }),
        );
        await lab.validate(80, 'TCP', R().expectPeer({}, { namespace: X }, false).expectAllIngress('x/a', true));
      });

      it('should enforce policy to allow ingress traffic from pods in all namespaces', async () => {
        await lab.apply(policy('allow-from-another-ns', X, podIs('a'), { ingress: [{ from: [{ namespaceSelector: { matchLabels: {} } }] }] }));
        await lab.validate(80, 'TCP', R());
      });

      it('should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector', async () => {
        await lab.apply(policy('allow-client-a-via-ns-selector', X, podIs('a'), { ingress: [{ from: [{ namespaceSelector: nsIs(Y) }] }] }));
        await lab.validate(80, 'TCP', R().expectPeer({ namespace: X }, { namespace: X, pod: 'a' }, false).expectPeer({ namespace: Z }, { namespace: X, pod: 'a' }, false));
      });

      it('should enforce policy based on PodSelector with MatchExpressions', async () => {
        await lab.apply(policy('x-a-allows-x-b', X, podIs('a'), { ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b'] }] } }] }] }));
        await lab.validate(80, 'TCP', R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true));
      });

      it('should enforce policy based on NamespaceSelector with MatchExpressions', async () => {
        await lab.apply(policy('allow-ns-y-match-selector', X, podIs('a'), { ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: [Y] }] } }] }] }));
        await lab.validate(80, 'TCP', R().expectPeer({ namespace: X }, { namespace: X, pod: 'a' }, false).expectPeer({ namespace: Z }, { namespace: X, pod: 'a' }, false));
      });

      it('should enforce policy based on PodSelector or NamespaceSelector', async () => {
        await lab.apply(policy('allow-ns-y-match-selector', X, podIs('a'), { ingress: [{ from: [{ namespaceSelector: nsNotIn(X) }, { podSelector: podIs('b') }] }] }));
        await lab.validate(80, 'TCP', R().expect('x/c', 'x/a', false));
      });

      it('should enforce policy based on PodSelector and NamespaceSelector', async () => {
        await lab.apply(policy('allow-ns-y-podselector-and-nsselector', X, podIs('a'), { ingress: [{ from: [{ namespaceSelector: nsNotIn(X), podSelector: podIs('b') }] }] }));
        await lab.validate(80, 'TCP', R().expectAllIngress('x/a', false).expect('y/b', 'x/a', true).expect('z/b', 'x/a', true));
      });

      it('should enforce policy based on Multiple PodSelectors and NamespaceSelectors', async () => {
        await lab.apply(policy('allow-ns-y-z-pod-b-c', X, podIs('a'), { ingress: [{ from: [{ namespaceSelector: nsNotIn(X), podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'c'] }] } }] }] }));
        // All 9 pods: z/a (pod a) is denied like y/a; upstream's subset had no z/a.
        const reach = R().expectAllIngress('x/a', false);
        for (const from of ['y/b', 'y/c', 'z/b', 'z/c']) reach.expect(from, 'x/a', true);
        await lab.validate(80, 'TCP', reach);
      });

      it('should enforce policy based on any PodSelectors', async () => {
        await lab.apply(policy('allow-ns-x-pod-b-c', X, podIs('a'), { ingress: [{ from: [{ podSelector: podIs('b') }, { podSelector: podIs('c') }] }] }));
        await lab.validate(80, 'TCP', R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true).expect('x/c', 'x/a', true));
      });

      it('should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector', async () => {
        await lab.apply(policy('allow-ns-y-pod-a-via-namespace-pod-selector', X, podIs('a'), { ingress: [{ from: [{ namespaceSelector: nsIs(Y), podSelector: podIs('a') }] }] }));
        await lab.validate(80, 'TCP', R().expectAllIngress('x/a', false).expect('y/a', 'x/a', true));
      });

      it('should enforce policy based on Ports', async () => {
        await lab.apply(policy('allow-client-a-via-ns-selector', X, podIs('a'), { ingress: [{ from: [{ namespaceSelector: nsIs(Y) }], ports: [{ port: 81, protocol: 'TCP' }] }] }));
        await lab.validate(81, 'TCP', R().expectPeer({ namespace: X }, { namespace: X, pod: 'a' }, false).expectPeer({ namespace: Z }, { namespace: X, pod: 'a' }, false));
      });

      it('should enforce multiple, stacked policies with overlapping podSelectors', async () => {
        const allowFromY = (name, port) => policy(name, X, podIs('a'), { ingress: [{ from: [{ namespaceSelector: nsIs(Y) }], ports: [{ port, protocol: 'TCP' }] }] });
        await lab.apply(allowFromY('allow-client-a-via-ns-selector', 81));
        const allow = () => R().expectPeer({ namespace: X }, { namespace: X, pod: 'a' }, false).expectPeer({ namespace: Z }, { namespace: X, pod: 'a' }, false);
        await lab.validate(81, 'TCP', allow());
        await lab.validate(80, 'TCP', R().expectAllIngress('x/a', false));
        await lab.apply(allowFromY('allow-client-a-via-ns-selector-80', 80));
        await lab.validate(80, 'TCP', allow());
      });

      it('should support allow-all policy', async () => {
        await lab.apply(policy('allow-all', X, ALL, { ingress: [{}] }));
        await lab.validate(80, 'TCP', R());
        await lab.validate(81, 'TCP', R());
      });

      it('should allow ingress access on one named port', async () => {
        await lab.apply(policy('allow-all', X, ALL, { ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] }));
        await lab.validate(81, 'TCP', R());
        await lab.validate(80, 'TCP', R().expectPeer({}, { namespace: X }, false));
      });

      it('should allow ingress access from namespace on one named port', async () => {
        await lab.apply(policy('allow-client-a-via-ns-selector-80', X, podIs('a'), { ingress: [{ from: [{ namespaceSelector: nsIs(Y) }], ports: [{ port: 'serve-80-tcp', protocol: 'TCP' }] }] }));
        await lab.validate(80, 'TCP', R().expectPeer({ namespace: X }, { namespace: X, pod: 'a' }, false).expectPeer({ namespace: Z }, { namespace: X, pod: 'a' }, false));
        await lab.validate(81, 'TCP', R().expectAllIngress('x/a', false));
      });

      it('should allow egress access on one named port', async () => {
        await lab.apply(policy('allow-egress', X, ALL, { egress: [{ ports: [{ port: 'serve-80-tcp' }] }] }));
        await lab.validate(80, 'TCP', R());
        await lab.validate(81, 'TCP', R().expectPeer({ namespace: X }, {}, false));
      });

      it('should enforce updated policy', async () => {
        await lab.apply(policy('allow-all-mutate-to-deny-all', X, ALL, { ingress: [{}] }));
        await lab.validate(81, 'TCP', R());
        await lab.apply(policy('allow-all-mutate-to-deny-all', X, ALL, { ingress: [] }));
        await lab.validate(81, 'TCP', R().expectPeer({}, { namespace: X }, false));
      });

      it('should allow ingress access from updated namespace', async () => {
        await lab.apply(policy('allow-client-a-via-ns-selector', X, podIs('a'), { ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns2: 'updated' } } }] }] }));
        await lab.validate(80, 'TCP', R().expectAllIngress('x/a', false));
        await lab.relabelNamespace(Y, { ns: Y, ns2: 'updated' });
        await lab.validate(80, 'TCP', R().expectAllIngress('x/a', false).expectPeer({ namespace: Y }, {}, true));
      });

      it('should allow ingress access from updated pod', async () => {
        await lab.apply(policy('allow-client-a-via-pod-selector', X, podIs('a'), { ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b', pod2: 'updated' } } }] }] }));
        await lab.validate(80, 'TCP', R().expectAllIngress('x/a', false));
        await lab.relabelPod('x/b', { pod: 'b', pod2: 'updated' });
        await lab.validate(80, 'TCP', R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true));
      });

      it('should deny ingress from pods on other namespaces', async () => {
        await lab.apply(policy('deny-empty-policy', X, ALL, { ingress: [{ from: [{ podSelector: { matchLabels: {} } }] }] }));
        await lab.validate(80, 'TCP', R().expectPeer({ namespace: Y }, { namespace: X }, false).expectPeer({ namespace: Z }, { namespace: X }, false));
      });

      it('should deny ingress access to updated pod', async () => {
        await lab.apply(policy('deny-ingress-via-label-selector', X, { matchLabels: { target: 'isolated' } }, { ingress: [] }));
        await lab.validate(80, 'TCP', R());
        await lab.relabelPod('x/a', { pod: 'a', target: 'isolated' });
        await lab.validate(80, 'TCP', R().expectAllIngress('x/a', false));
      });

      it('should deny egress from pods based on PodSelector', async () => {
        await lab.apply(policy('deny-egress-pod-a', X, podIs('a'), { egress: [] }));
        await lab.validate(80, 'TCP', R().expectAllEgress('x/a', false));
      });

      it('should deny egress from all pods in a namespace', async () => {
        await lab.apply(policy('deny-egress-ns-x', X, ALL, { egress: [] }));
        await lab.validate(80, 'TCP', R().expectPeer({ namespace: X }, {}, false));
      });

      it('should work with Ingress, Egress specified together', async () => {
        await lab.apply(policy('allow-client-a-via-pod-selector', X, podIs('a'), { ingress: [{ from: [{ podSelector: podIs('b') }] }], egress: [{ ports: [{ port: 80 }] }] }));
        await lab.validate(80, 'TCP', R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true));
        await lab.validate(81, 'TCP', R().expectAllIngress('x/a', false).expectAllEgress('x/a', false).expect('x/b', 'x/a', true));
      });

      it('should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)', async () => {
        const fromXa = [{ from: [{ namespaceSelector: nsIs(X), podSelector: podIs('a') }] }];
        await lab.apply(
          policy('allow-to-ns-y-pod-a', X, podIs('a'), { egress: [{ to: [{ namespaceSelector: nsIs(Y), podSelector: podIs('a') }] }] }),
          policy('allow-from-xa-on-ya-match-selector', Y, podIs('a'), { ingress: fromXa }),
          policy('allow-from-xa-on-yb-match-selector', Y, podIs('b'), { ingress: fromXa }),
        );
        await lab.validate(80, 'TCP', R()
          .expectPeer({ namespace: X, pod: 'a' }, {}, false)
          .expectPeer({}, { namespace: Y, pod: 'a' }, false)
          .expectPeer({ namespace: X, pod: 'a' }, { namespace: Y, pod: 'a' }, true)
          .expectPeer({}, { namespace: Y, pod: 'b' }, false));
      });

      it('should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector', async () => {
        await lab.apply(policy('allow-to-ns-y-pod-a', X, podIs('a'), { egress: [{ to: [{ namespaceSelector: nsIs(Y), podSelector: podIs('a') }] }] }));
        await lab.validate(80, 'TCP', R().expectAllEgress('x/a', false).expect('x/a', 'y/a', true));
      });

      it('should enforce multiple ingress policies with ingress allow-all policy taking precedence', async () => {
        await lab.apply(policy('allow-ingress-port-80', X, ALL, { ingress: [{ ports: [{ port: 80 }] }] }));
        await lab.validate(81, 'TCP', R().expectPeer({}, { namespace: X }, false));
        await lab.apply(policy('allow-ingress', X, ALL, { ingress: [{}] }));
        await lab.validate(81, 'TCP', R());
      });

      it('should enforce multiple egress policies with egress allow-all policy taking precedence', async () => {
        await lab.apply(policy('allow-egress-port-80', X, ALL, { egress: [{ ports: [{ port: 80 }] }] }));
        await lab.validate(81, 'TCP', R().expectPeer({ namespace: X }, {}, false));
        await lab.apply(policy('allow-egress', X, ALL, { egress: [{}] }));
        await lab.validate(81, 'TCP', R());
      });

      it('should stop enforcing policies after they are deleted', async () => {
        await lab.apply(policy('deny-all', X, ALL, { ingress: [], egress: [] }));
        await lab.validate(80, 'TCP', R().expectPeer({ namespace: X }, {}, false).expectPeer({}, { namespace: X }, false));
        await lab.delete('x/deny-all');
        await lab.validate(80, 'TCP', R());
      });

      // An ipBlock matches pod addresses (weft_policy_cidrs, bpf/lib/policy.h).
      it('should allow egress access to server in CIDR block', async () => {
        await lab.apply(policy('allow-client-a-via-cidr-egress-rule', X, podIs('a'), { egress: [{ to: [{ ipBlock: { cidr: `${lab.ips.get('y/b')}/32` } }] }] }));
        await lab.validate(80, 'TCP', R().expectAllEgress('x/a', false).expect('x/a', 'y/b', true));
      });

      // An ipBlock matches pod addresses (weft_policy_cidrs, bpf/lib/policy.h).
      it('should enforce except clause while egress access to server in CIDR block', async () => {
        await lab.apply(policy('allow-client-a-via-cidr-egress-rule', X, podIs('a'), { egress: [{ to: [{ ipBlock: { cidr: largeCidr(lab.ips.get('x/b')), except: [`${lab.ips.get('x/b')}/32`] } }] }] }));
        await lab.validate(80, 'TCP', R().expect('x/a', 'x/b', false));
      });

      // An ipBlock matches pod addresses (weft_policy_cidrs, bpf/lib/policy.h).
      it('should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed', async () => {
        const xb = `${lab.ips.get('x/b')}/32`;
        await lab.apply(policy('allow-client-a-via-cidr-egress-rule', X, podIs('a'), { egress: [{ to: [{ ipBlock: { cidr: largeCidr(lab.ips.get('x/b')), except: [xb] } }] }] }));
        await lab.validate(80, 'TCP', R().expect('x/a', 'x/b', false));
        // Upstream updates the same policy to allow x/b's address alone.
        await lab.apply(policy('allow-client-a-via-cidr-egress-rule', X, podIs('a'), { egress: [{ to: [{ ipBlock: { cidr: xb } }] }] }));
        await lab.validate(80, 'TCP', R().expectAllEgress('x/a', false).expect('x/a', 'x/b', true));
      });

      it('should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector', async () => {
        await lab.apply(policy('allow-egress-for-target', X, podIs('a'), { egress: [{}] }));
        await lab.validate(80, 'TCP', R());
        await lab.apply(policy('deny-ingress-via-label-selector', X, podIs('a'), { ingress: [] }));
        await lab.validate(80, 'TCP', R().expectAllIngress('x/a', false));
      });

      it("should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP", async () => {
        await lab.apply(
          policy('deny-ingress', X, ALL, { ingress: [] }),
          policy('allow-only-sctp-ingress-on-port-81', X, podIs('a'), { ingress: [{ ports: [{ port: 81, protocol: 'SCTP' }] }] }),
        );
        await lab.validate(81, 'TCP', R().expectPeer({}, { namespace: X }, false));
      });

      it("should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP", async () => {
        await lab.apply(policy('allow-only-sctp-ingress-on-port-80', X, podIs('a'), { ingress: [{ ports: [{ port: 80, protocol: 'SCTP' }] }] }));
        await lab.validate(81, 'TCP', R().expectAllIngress('x/a', false));
      });

      it('should not allow access by TCP when a policy specifies only UDP', async () => {
        await lab.apply(policy('allow-only-udp-ingress-on-port-81', X, podIs('a'), { ingress: [{ ports: [{ port: 81, protocol: 'UDP' }] }] }));
        await lab.validate(81, 'TCP', R().expectAllIngress('x/a', false));
      });

      it('should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label', async () => {
        await lab.apply(policy('allow-client-a-via-ns-selector-for-immutable-ns-label', X, podIs('a'), { ingress: [{ from: [{ namespaceSelector: nsIs(Y) }] }] }));
        await lab.validate(80, 'TCP', R().expectPeer({ namespace: X }, { namespace: X, pod: 'a' }, false).expectPeer({ namespace: Z }, { namespace: X, pod: 'a' }, false));
      });

      it('defaults policyTypes as the API server does: an empty egress list alone isolates no egress (Weft)', async () => {
        // No policyTypes: Kubernetes stores [Ingress] here (Egress only with egress rules).
        await lab.apply({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'no-types', namespace: X }, spec: { podSelector: podIs('a'), ingress: [{ from: [{ podSelector: podIs('b') }] }], egress: [] } });
        await lab.validate(80, 'TCP', R().expectAllIngress('x/a', false).expect('x/b', 'x/a', true));
      });

      it('should enforce policy based on NamespaceSelector with MatchExpressions using default ns label', async () => {
        await lab.apply(policy('allow-ns-y-match-selector-for-immutable-ns-label', X, podIs('a'), { egress: [{ to: [{ namespaceSelector: nsNotIn(Y) }] }] }));
        await lab.validate(80, 'TCP', R().expectPeer({ namespace: X, pod: 'a' }, { namespace: Y }, false));
      });
    });

    describe('TCP and UDP', () => {
      it('should enforce ingress policy allowing any port traffic to a server on a specific protocol', async () => {
        await lab.apply(policy('allow-ingress-by-proto', X, podIs('a'), { ingress: [{ ports: [{ protocol: 'TCP' }] }] }));
        await lab.validate(80, 'TCP', R());
        await lab.validate(80, 'UDP', R().expectAllIngress('x/a', false));
      });
    });

    describe('UDP', () => {
      it("should support a 'default-deny-ingress' policy", async () => {
        await lab.apply(policy('deny-all', X, ALL, { ingress: [] }));
        await lab.validate(80, 'UDP', R().expectPeer({}, { namespace: X }, false));
      });

      it('should enforce policy based on Ports', async () => {
        await lab.apply(policy('allow-ingress-on-port-81-ns-x', X, podIs('a'), { ingress: [{ from: [{ namespaceSelector: nsIs(Y) }], ports: [{ port: 81, protocol: 'UDP' }] }] }));
        await lab.validate(81, 'UDP', R().expectPeer({ namespace: X }, { namespace: X, pod: 'a' }, false).expectPeer({ namespace: Z }, { namespace: X, pod: 'a' }, false));
      });

      it('should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector', async () => {
        await lab.apply(policy('allow-ns-y-pod-a-via-namespace-pod-selector', X, podIs('a'), { ingress: [{ from: [{ namespaceSelector: nsIs(Y), podSelector: podIs('a') }] }] }));
        await lab.validate(80, 'UDP', R().expectAllIngress('x/a', false).expect('y/a', 'x/a', true));
      });

      it('should allow egress access on one named UDP port, not the TCP port of the same number (Weft)', async () => {
        await lab.apply(policy('allow-egress-udp', X, ALL, { egress: [{ ports: [{ port: 'serve-81-udp', protocol: 'UDP' }] }] }));
        await lab.validate(81, 'UDP', R());
        await lab.validate(81, 'TCP', R().expectPeer({ namespace: X }, {}, false));
      });
    });

    describe('port ranges (endPort; Weft, not upstream)', () => {
      it('allows ingress on every port of a range from one namespace', async () => {
        await lab.apply(policy('allow-range-from-y', X, podIs('a'), { ingress: [{ from: [{ namespaceSelector: nsIs(Y) }], ports: [{ port: 80, endPort: 81, protocol: 'TCP' }] }] }));
        const fromY = () => R().expectPeer({ namespace: X }, { namespace: X, pod: 'a' }, false).expectPeer({ namespace: Z }, { namespace: X, pod: 'a' }, false);
        await lab.validate(80, 'TCP', fromY());
        await lab.validate(81, 'TCP', fromY());
      });

      it('allows egress into a range that starts above port 80, and not to 80', async () => {
        await lab.apply(policy('allow-egress-81-to-90', X, ALL, { egress: [{ ports: [{ port: 81, endPort: 90, protocol: 'UDP' }] }] }));
        await lab.validate(81, 'UDP', R());
        await lab.validate(80, 'UDP', R().expectPeer({ namespace: X }, {}, false));
      });
    });
  });
}

/** Upstream's makeLargeCIDRForIP: the address's /4 (for 10.x.y.z, 0.0.0.0/4). */
function largeCidr(ip) {
  const first = Number(ip.split('.')[0]) & 0xf0;
  return `${first}.0.0.0/4`;
}
