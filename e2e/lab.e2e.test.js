// End to end, as root, with real parts: the lab (network namespaces, veths,
// a bridge, VXLAN, real etcd, real agents loading real BPF programs), real
// packets between pods, and `weft` driven exactly as a user drives it.
'use strict';
const assert = require('node:assert/strict');
const { existsSync, readFileSync, writeFileSync, mkdtempSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { execFileSync, spawn } = require('node:child_process');
const { WEFT, weft, weftJson, probe, until, isRoot, pidInNetns, fromUnderlay, onUnderlay, tcpStream } = require('./helpers');

function ipOf(endpoints, pod) {
  const e = endpoints.find((x) => `${x.namespace}/${x.pod}` === pod);
  assert.ok(e, `endpoint ${pod} exists`);
  return e.ip;
}

function labNamespaces() {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('weft-'));
}

for (const routing of ['vxlan', 'direct']) {
  describe(`lab, one cluster of two nodes, ${routing} routing (e2e, root)`, function () {
    this.timeout(240_000);
    let dir;
    let eps;
    const file = (name, text) => {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    };

    before(async function () {
      if (!isRoot()) return this.skip();
      dir = mkdtempSync(join(tmpdir(), 'weft-e2e-'));
      const up = await weft(['lab', 'up', '--nodes', '2', '--routing', routing]);
      assert.equal(up.code, 0, up.stderr);
      assert.match(up.stderr, /\[lab [\d.]+s\] ready/);
      eps = await weftJson(['endpoint', 'list']);
    });

    after(async function () {
      if (!isRoot()) return;
      if (dir) rmSync(dir, { recursive: true, force: true });
      const down = await weft(['lab', 'down']);
      assert.equal(down.code, 0, down.stderr);
      assert.deepEqual(labNamespaces(), [], 'no lab namespace left');
      assert.equal(existsSync('/sys/fs/bpf/weft'), false, 'no bpffs pins left');
    });

    it('runs the demo pods as endpoints with cluster identities on both nodes', () => {
      const pods = eps.map((e) => `${e.node}:${e.namespace}/${e.pod}`).sort();
      assert.deepEqual(pods, ['c1-node1:demo/client', 'c1-node1:demo/echo-1', 'c1-node2:demo/echo-2']);
      for (const e of eps) assert.equal(e.identity >> 16, 1, 'cluster id 1 in bits 16-23');
      const echo = eps.filter((e) => e.labels.app === 'echo');
      assert.equal(echo[0].identity, echo[1].identity, 'same labels, same identity, on both nodes');
    });

    it('passes the built-in connectivity test', async () => {
      const r = await weftJson(['connectivity', 'test']);
      const failed = r.results.filter((x) => !x.ok);
      assert.deepEqual(failed, [], JSON.stringify(r.results, null, 1));
      assert.ok(r.passed >= 8);
    });

    it('programs every endpoint and node into the BPF ipcache of every node', async () => {
      const rows = await weftJson(['bpf', 'ipcache', 'list']);
      for (const node of ['c1-node1', 'c1-node2']) {
        const mine = rows.filter((r) => r.node === node);
        for (const e of eps) {
          const row = mine.find((r) => r.cidr === `${e.ip}/32`);
          assert.ok(row, `${node} knows ${e.ip}`);
          assert.equal(row.identity, e.identity);
          if (e.node === node) assert.equal(row.tunnelIp, undefined);
          else assert.ok(row.tunnelIp, 'remote endpoints carry their node');
        }
      }
    });

    it('gives each agent its own etcd identity: node1 may rewrite its own record, not node2\'s; etcd wants a certificate', async () => {
      const { KvClient, KvstorePermissionError } = require('../packages/kvstore/dist/index.js');
      const socket = 'unix:///var/run/weft/lab/c1/etcd/etcd:0';
      // Exactly what c1-node1's agent holds (its agent.json names the files).
      const config = JSON.parse(readFileSync('/var/run/weft/c1/c1-node1/agent.json', 'utf8'));
      assert.ok(config.etcdTls, 'the agent has its own etcd certificate');
      const tls = { ca: readFileSync(config.etcdTls.ca), cert: readFileSync(config.etcdTls.cert), key: readFileSync(config.etcdTls.key) };
      assert.equal(new (require('node:crypto').X509Certificate)(tls.cert).subject, 'CN=c1-node1');
      const node1 = new KvClient({ endpoints: [socket], tls, retry: { maxAttempts: 2, initialMs: 50, maxMs: 100 } });
      const plain = new KvClient({ endpoints: [socket], retry: { maxAttempts: 2, initialMs: 50, maxMs: 100 } });
      try {
        const own = await node1.get('weft/state/v1/nodes/c1-node1');
        const other = await node1.get('weft/state/v1/nodes/c1-node2');
        assert.ok(own && other, 'it reads every node record');
        await node1.put('weft/state/v1/nodes/c1-node1', own.value, { lease: own.lease });
        const victim = (await weftJson(['endpoint', 'list'])).find((e) => e.node === 'c1-node2');
        for (const [key, value] of [['weft/state/v1/nodes/c1-node2', JSON.stringify({ ...JSON.parse(other.value.toString()), podCidr: '10.101.0.0/16' })], [`weft/state/v1/endpoints/c1-node2/${victim.ip}`, '{}'], ['weft/resources/v1/Namespace//demo', '{}']]) {
          await assert.rejects(node1.put(key, value), (e) => e instanceof KvstorePermissionError && e.message.includes(key), key);
        }
        assert.equal((await node1.get('weft/state/v1/nodes/c1-node2')).value.toString(), other.value.toString(), 'node2\'s record is untouched');
        // Without a certificate, no answer at all.
        await assert.rejects(plain.get('weft/state/v1/nodes/c1-node1'));
      } finally {
        node1.close();
        plain.close();
      }
    });

    it('drops and reports a clear packet from the underlay claiming a pod of the other node (strict WireGuard), and lets the world in', async () => {
      const echo2 = ipOf(eps, 'demo/echo-2');
      const client = eps.find((e) => `${e.namespace}/${e.pod}` === 'demo/client');
      const [{ nodeIp }] = await weftJson(['status', '--node', 'c1-node2']);
      const outsider = '10.99.255.78'; // on the underlay bridge, no mesh node: the world
      const base = 40000 + Math.floor(Math.random() * 20000);
      const control = `weft-ul-control-${base}`;
      const undo = onUnderlay({ addresses: [`${outsider}/16`, `${client.ip}/32`], routes: [[`${echo2}/32`, nodeIp]] });
      try {
        const ok = await fromUnderlay({ bind: outsider, bindPort: base, to: echo2, port: 9090, payload: Buffer.from(control).toString('hex') });
        assert.ok(ok.replies.some((r) => r.data === control), `the world's packet was echoed (${JSON.stringify(ok)})`);
        // The client's address, sent in the clear from the underlay to the node of echo-2.
        await fromUnderlay({ bind: client.ip, bindPort: base + 1, to: echo2, port: 9090, payload: Buffer.from('forged').toString('hex'), waitMs: 200 });
        const flows = async (verdict) => (await weft(['observe', '--node', 'c1-node2', '--verdict', verdict, '--last', '10000', '-o', 'json'])).stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
        await until(async () => (await flows('DROPPED')).some((f) => f.dropReason === 'UNENCRYPTED_INGRESS' && f.point === 'from-underlay' &&
          f.source.pod === 'client' && f.source.port === base + 1 && f.destination.pod === 'echo-2'), 'the drop to be reported', 10_000);
        const admitted = (await flows('FORWARDED')).filter((f) => f.destination.ip === echo2 && f.source.port === base + 1);
        assert.deepEqual(admitted, [], 'the forged packet reached echo-2');
      } finally {
        undo();
      }
    });

    it('enforces a policy on live traffic within a second, and lifts it the same way', async () => {
      const echo2 = ipOf(eps, 'demo/echo-2');
      assert.equal(await probe('demo/client', ['--http', `http://${echo2}:8081/`]), true);
      const policy = file('deny.yaml', `apiVersion: weft.io/v1
kind: WeftNetworkPolicy
metadata: { name: only-8080, namespace: demo }
spec:
  endpointSelector: { matchLabels: { app: echo } }
  ingress:
  - fromEndpoints: [ { matchLabels: { app: client } } ]
    toPorts: [ { ports: [ { port: "8080", protocol: TCP } ] } ]
`);
      const applied = await weft(['apply', '-f', policy]);
      assert.equal(applied.code, 0, applied.stderr);
      // The agents apply it within tens of milliseconds; the bound only keeps a failure from hanging.
      await until(async () => !(await probe('demo/client', ['--http', `http://${echo2}:8081/`])), 'the policy to take effect', 5000);
      assert.equal(await probe('demo/client', ['--tcp', `${echo2}:8080`]), true, 'the allowed port still works');
      const bpf = await weftJson(['bpf', 'policy', 'get', 'demo/echo-2']);
      assert.ok(bpf.entries.some((e) => !e.egress && e.protocol === 6 && e.port && e.port.port === 8080 && !e.deny));
      const dropped = (await weft(['observe', '--pod', 'demo/echo-2', '--verdict', 'DROPPED', '-o', 'json'])).stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
      assert.ok(dropped.some((f) => f.dropReason === 'POLICY_DENIED' && f.destination.port === 8081 && f.source.pod === 'client'), 'the drop is observable with its reason');
      assert.equal((await weft(['delete', '-f', policy])).code, 0);
      await until(() => probe('demo/client', ['--http', `http://${echo2}:8081/`]), 'the policy to be lifted', 5000);
    });

    it('lets deny rules beat allow rules, and reports audit-mode drops as AUDIT while letting them pass', async () => {
      const echo1 = ipOf(eps, 'demo/echo-1');
      const deny = file('deny-beats.yaml', `apiVersion: weft.io/v1
kind: WeftNetworkPolicy
metadata: { name: allow-all-in, namespace: demo }
spec:
  endpointSelector: { matchLabels: { app: echo } }
  ingress: [ { fromEntities: [all] } ]
  ingressDeny: [ { fromEndpoints: [ { matchLabels: { app: client } } ], toPorts: [ { ports: [ { port: "8081" } ] } ] } ]
`);
      assert.equal((await weft(['apply', '-f', deny])).code, 0);
      await until(async () => !(await probe('demo/client', ['--http', `http://${echo1}:8081/`])), 'the deny rule');
      assert.equal(await probe('demo/client', ['--udp', `${echo1}:9090`]), true, 'other ports stay allowed');
      assert.equal((await weft(['delete', '-f', deny])).code, 0);
      const audit = file('audit.yaml', `apiVersion: weft.io/v1
kind: WeftNetworkPolicy
metadata: { name: audit-only, namespace: demo }
spec:
  endpointSelector: { matchLabels: { app: echo } }
  audit: true
  ingress: [ { fromEntities: [world] } ]
`);
      assert.equal((await weft(['apply', '-f', audit])).code, 0);
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(await probe('demo/client', ['--http', `http://${echo1}:8081/`]), true, 'audit mode lets it through');
      const flows = (await weft(['observe', '--pod', 'demo/echo-1', '--verdict', 'AUDIT', '-o', 'json'])).stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
      assert.ok(flows.some((f) => f.dropReason === 'POLICY_DENIED'), 'and reports what it would have dropped');
      assert.equal((await weft(['delete', '-f', audit])).code, 0);
    });

    it('selects the world by entity and by CIDR for egress', async () => {
      const egress = file('egress.yaml', `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: client-egress, namespace: demo }
spec:
  podSelector: { matchLabels: { app: client } }
  policyTypes: [Egress]
  egress:
  - to: [ { podSelector: { matchLabels: { app: echo } } } ]
  - to: [ { ipBlock: { cidr: 10.99.255.0/24, except: [10.99.255.250/32] } } ]
`);
      assert.equal((await weft(['apply', '-f', egress])).code, 0);
      await until(async () => !(await probe('demo/client', ['--http', 'http://10.99.255.250:8081/'])), 'the world to be cut off');
      assert.equal(await probe('demo/client', ['--http', `http://${ipOf(eps, 'demo/echo-2')}:8081/`]), true);
      assert.equal((await weft(['delete', '-f', egress])).code, 0);
      await until(() => probe('demo/client', ['--http', 'http://10.99.255.250:8081/']), 'the world to come back');
    });

    it('applies clusterwide policies with namespace-label selectors and port ranges', async () => {
      const echo2 = ipOf(eps, 'demo/echo-2');
      const cw = file('clusterwide.yaml', `apiVersion: weft.io/v1
kind: WeftClusterwideNetworkPolicy
metadata: { name: from-demo-namespaces }
spec:
  endpointSelector: { matchLabels: { app: echo } }
  ingress:
  - fromEndpoints: [ { matchLabels: { weft.io.namespace.labels.purpose: demo } } ]
    toPorts: [ { ports: [ { port: "8080", endPort: 8081, protocol: TCP } ] } ]
`);
      assert.equal((await weft(['apply', '-f', cw])).code, 0);
      await until(async () => !(await probe('demo/client', ['--udp', `${echo2}:9090`])), 'UDP to be cut off (outside the range)');
      assert.equal(await probe('demo/client', ['--tcp', `${echo2}:8080`]), true, 'first port of the range');
      assert.equal(await probe('demo/client', ['--http', `http://${echo2}:8081/`]), true, 'last port of the range');
      const ns = file('ns-selector.yaml', `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: only-from-ops, namespace: demo }
spec:
  podSelector: { matchLabels: { app: echo } }
  ingress: [ { from: [ { namespaceSelector: { matchLabels: { purpose: ops } } } ] } ]
`);
      assert.equal((await weft(['delete', '-f', cw])).code, 0);
      assert.equal((await weft(['apply', '-f', ns])).code, 0);
      await until(async () => !(await probe('demo/client', ['--http', `http://${echo2}:8081/`])), 'a namespace selector that excludes demo');
      assert.equal((await weft(['delete', '-f', ns])).code, 0);
      await until(() => probe('demo/client', ['--http', `http://${echo2}:8081/`]), 'access to return');
    });

    it('rejects an invalid file naming the field, and stores nothing', async () => {
      const bad = file('bad.yaml', `apiVersion: v1
kind: Pod
metadata: { name: fine, namespace: demo }
spec: { nodeName: c1-node1, containers: [ { name: a, command: [sleep, "60"] } ] }
---
apiVersion: weft.io/v1
kind: WeftNetworkPolicy
metadata: { name: broken, namespace: demo }
spec:
  endpointSelector: {}
  ingress: [ { toPorts: [ { ports: [ { port: "http" } ] } ] } ]
`);
      const r = await weft(['apply', '-f', bad]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /#2 \(WeftNetworkPolicy demo\/broken\) at .*bad\.yaml:6: spec\.ingress\[0\]\.toPorts\[0\]\.ports\[0\]\.port: named port "http" is not supported here \(NetworkPolicy takes names\); use a number/);
      const after = await weftJson(['endpoint', 'list']);
      assert.ok(!after.some((e) => e.pod === 'fine'), 'the valid pod of the same file was not stored either');
      const unknown = await weft(['lab', 'exec', 'demo/nope', '--', 'true']);
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, /Unknown pod demo\/nope/);
      const badNode = await weft(['status', '--node', 'c1-node9']);
      assert.equal(badNode.code, 2);
      assert.match(badNode.stderr, /Unknown node "c1-node9" in cluster c1/);
    });

    it('gives a replaced pod a new address and endpoint id and none of its predecessor\'s conntrack entries; weft status shows the pressure', async () => {
      const pod = file('ct-pod.yaml', `apiVersion: v1
kind: Pod
metadata: { name: ct-a, namespace: demo, labels: { app: ct } }
spec:
  nodeName: c1-node1
  containers: [ { name: echo, command: [weft, echo-server, --tcp, "8080", --udp, "9090", --http, "8081"] } ]
`);
      const endpointOf = async () => (await weftJson(['endpoint', 'list'])).find((e) => e.pod === 'ct-a');
      assert.equal((await weft(['apply', '-f', pod])).code, 0);
      await until(async () => (await endpointOf()) !== undefined, 'the pod to start');
      const old = await endpointOf();
      await until(() => probe('demo/client', ['--tcp', `${old.ip}:8080`]), 'the pod to answer');
      const status = async () => (await weftJson(['status', '--node', 'c1-node1']))[0].conntrack;
      const before = await status();
      assert.equal(before.capacity, 262144);
      assert.equal(before.quota, 65536);
      assert.ok(before.gc.runs >= 1, 'the agent swept once at start');
      assert.ok(before.topEndpoints.some((e) => e.id === old.id && e.pod === 'demo/ct-a' && e.entries >= 1), JSON.stringify(before));
      const text = await weft(['status']);
      assert.match(text.stdout, /CONNTRACK\s+BUSIEST ENDPOINT\s+REFUSED FULL\/QUOTA\s+LAST SWEEP/);
      assert.equal((await weft(['delete', '-f', pod])).code, 0);
      await until(async () => (await endpointOf()) === undefined, 'the pod to go');
      assert.ok(!(await status()).topEndpoints.some((e) => e.id === old.id), 'its conntrack entries were flushed');
      assert.equal((await weft(['apply', '-f', pod])).code, 0);
      await until(async () => (await endpointOf()) !== undefined, 'the pod to start again');
      const replaced = await endpointOf();
      assert.notEqual(replaced.ip, old.ip, 'a just-freed address is not handed out again first');
      assert.notEqual(replaced.id, old.id, 'nor a just-freed endpoint id');
      assert.ok(replaced.policy.revision > old.policy.revision, 'policy revisions only go forward on a node');
      assert.equal((await weft(['delete', '-f', pod])).code, 0);
      await until(async () => (await endpointOf()) === undefined, 'the pod to go');
    });

    it('resolves NetworkPolicy named ports per destination pod: ingress from the pod\'s own container ports, egress from the peer\'s', async () => {
      const pod = file('named-pod.yaml', `apiVersion: v1
kind: Pod
metadata: { name: named, namespace: demo, labels: { app: named } }
spec:
  nodeName: c1-node2
  containers:
  - name: srv
    command: [weft, echo-server, --tcp, "8080", --http, "8081"]
    ports: [ { name: web, containerPort: 8081 }, { name: raw, containerPort: 8080, protocol: UDP } ]
`);
      assert.equal((await weft(['apply', '-f', pod])).code, 0);
      let named;
      await until(async () => (named = (await weftJson(['endpoint', 'list'])).find((e) => e.pod === 'named')) !== undefined, 'the pod with named ports', 30_000);
      const web = () => probe('demo/client', ['--http', `http://${named.ip}:8081/`]);
      const tcp = () => probe('demo/client', ['--tcp', `${named.ip}:8080`]);
      await until(web, 'the pod to answer');
      const ingress = file('named-ingress.yaml', `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: named-in, namespace: demo }
spec:
  podSelector: { matchLabels: { app: named } }
  ingress: [ { from: [ { podSelector: { matchLabels: { app: client } } } ], ports: [ { port: web }, { port: raw } ] } ]
`);
      assert.equal((await weft(['apply', '-f', ingress])).code, 0);
      // "raw" is UDP 8080 on this pod; the rule's protocol is TCP (the default): it allows nothing.
      await until(async () => !(await tcp()), 'TCP 8080 (no named port of that protocol) to be cut off', 5000);
      assert.equal(await web(), true, 'the named port "web" is 8081 on this pod');
      const bpf = await weftJson(['bpf', 'policy', 'get', 'demo/named']);
      assert.deepEqual(bpf.entries.filter((e) => !e.egress && !e.deny).map((e) => `${e.protocol}/${e.port?.port}`), ['6/8081']);
      assert.equal((await weft(['delete', '-f', ingress])).code, 0);
      await until(tcp, 'the ingress policy to be lifted', 5000);

      const egress = file('named-egress.yaml', `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: client-named-out, namespace: demo }
spec:
  podSelector: { matchLabels: { app: client } }
  policyTypes: [Egress]
  egress: [ { to: [ { podSelector: {} } ], ports: [ { port: web } ] } ]
`);
      assert.equal((await weft(['apply', '-f', egress])).code, 0);
      const echo2 = ipOf(eps, 'demo/echo-2');
      await until(async () => !(await tcp()), 'egress to TCP 8080 to be cut off', 5000);
      assert.equal(await web(), true, 'egress to the peer\'s named port "web" (8081) is allowed');
      assert.equal(await probe('demo/client', ['--http', `http://${echo2}:8081/`]), false, 'echo-2 gives no port the name "web": nothing allowed there');
      assert.equal((await weft(['delete', '-f', egress])).code, 0);
      assert.equal((await weft(['delete', '-f', pod])).code, 0);
      await until(() => probe('demo/client', ['--http', `http://${echo2}:8081/`]), 'the egress policy to be lifted', 5000);
      await until(async () => !(await weftJson(['endpoint', 'list'])).some((e) => e.pod === 'named'), 'the pod to go', 30_000);
    });

    it('regenerates a running pod and a namespace when their labels change: in and out of a selector, a stream kept allowed loses no byte, no reference leaks', async () => {
      const echo2 = ipOf(eps, 'demo/echo-2');
      const http = () => probe('demo/client', ['--http', `http://${echo2}:8081/`]);
      const client = (labels) => file('client.yaml', `apiVersion: v1
kind: Pod
metadata: { name: client, namespace: demo, labels: ${JSON.stringify(labels)} }
spec: { nodeName: c1-node1, containers: [ { name: idle, command: [sleep, infinity] } ] }
`);
      const namespace = (labels) => file('ns.yaml', `apiVersion: v1
kind: Namespace
metadata: { name: demo, labels: ${JSON.stringify(labels)} }
`);
      const apply = async (path) => assert.equal((await weft(['apply', '-f', path])).code, 0);
      const endpoint = async (pod) => (await weftJson(['endpoint', 'list'])).find((e) => `${e.namespace}/${e.pod}` === pod);
      const policy = file('relabel-policy.yaml', `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: trusted-only, namespace: demo }
spec:
  podSelector: { matchLabels: { app: echo } }
  ingress:
  - from: [ { podSelector: { matchLabels: { role: trusted } } } ]
  - from: [ { namespaceSelector: { matchLabels: { access: granted } } } ]
`);
      const before = await endpoint('demo/client');
      await apply(policy);
      try {
        await until(async () => !(await http()), 'the client to be shut out');

        // The running pod relabelled into the selector: admitted, same pod, same address, new identity.
        await apply(client({ app: 'client', role: 'trusted' }));
        await until(http, 'the relabelled client to be admitted', 5000);
        const trusted = await endpoint('demo/client');
        assert.equal(trusted.ip, before.ip, 'no restart: the same address');
        assert.equal(trusted.id, before.id, 'no restart: the same endpoint');
        assert.notEqual(trusted.identity, before.identity);
        assert.equal(trusted.regeneration.state, 'ready');
        assert.equal(trusted.regeneration.reason, 'pod labels');
        const table = await weft(['endpoint', 'list']);
        assert.match(table.stdout, /REGENERATION/);
        assert.match(table.stdout, new RegExp(`ready ${before.identity}->${trusted.identity}`));

        // A relabel that keeps the stream allowed, in the middle of it: every byte comes back.
        const stream = tcpStream(await podNs('demo/client'), echo2, 8080, { everyMs: 10, forMs: 3000, drainMs: 1500 });
        await new Promise((r) => setTimeout(r, 1000));
        await apply(client({ app: 'client', role: 'trusted', track: 'canary' }));
        const result = await stream;
        assert.equal(result.code, 0, result.out);
        assert.ok(result.sent > 0);
        assert.equal(result.got, result.sent, 'every byte came back across the identity change');
        const canary = await endpoint('demo/client');
        assert.notEqual(canary.identity, trusted.identity, 'the relabel happened during the stream');

        // Out of the selector again.
        await apply(client({ app: 'client' }));
        await until(async () => !(await http()), 'the client to be shut out again', 5000);
        assert.equal((await endpoint('demo/client')).identity, before.identity, 'its first label set, its first identity');

        // The namespace relabelled into the namespace selector, and out.
        await apply(namespace({ purpose: 'demo', access: 'granted' }));
        await until(http, 'the relabelled namespace to be admitted', 5000);
        const inNs = await endpoint('demo/client');
        assert.equal(inNs.regeneration.reason, 'namespace labels');
        await apply(namespace({ purpose: 'demo' }));
        await until(async () => !(await http()), 'the namespace to be shut out again', 5000);
      } finally {
        await apply(namespace({ purpose: 'demo' }));
        await apply(client({ app: 'client' }));
        assert.equal((await weft(['delete', '-f', policy])).code, 0);
      }
      await until(http, 'access to return', 5000);

      // DEL after a namespace relabel: the pod's references go, whatever the namespace says now.
      const extra = file('relabel-extra.yaml', `apiVersion: v1
kind: Pod
metadata: { name: short-lived, namespace: demo, labels: { app: short-lived } }
spec: { nodeName: c1-node2, containers: [ { name: idle, command: [sleep, infinity] } ] }
`);
      await apply(extra);
      await until(async () => (await endpoint('demo/short-lived')) !== undefined, 'the extra pod to run', 30_000);
      await apply(namespace({ purpose: 'demo', era: 'next' }));
      await until(async () => (await endpoint('demo/short-lived'))?.regeneration?.state === 'ready', 'the extra pod to follow its namespace', 5000);
      assert.equal((await weft(['delete', '-f', extra])).code, 0);
      await until(async () => (await endpoint('demo/short-lived')) === undefined, 'the extra pod to go', 30_000);
      assert.deepEqual((await nodeRefs()).filter((r) => r.labels.includes('short-lived')), [], 'no reference to any label set of the deleted pod');
      await apply(namespace({ purpose: 'demo' }));
      // The other pods follow the namespace back (asynchronously); then nothing relabelled away is held.
      const away = async () => (await nodeRefs()).filter((r) => /canary|trusted|era=next/.test(r.labels));
      await until(async () => (await away()).length === 0, 'the references to label sets relabelled away to be released', 5000).catch(() => undefined);
      assert.deepEqual(await away(), [], 'none to the label sets relabelled away');
    });

    it('keeps established connections through an agent kill -9 and restart', async () => {
      const echo2 = ipOf(eps, 'demo/echo-2');
      // A long-lived TCP stream from client (node1) to echo-2 (node2), checked end to end.
      const stream = tcpStream(await podNs('demo/client'), echo2, 8080, { everyMs: 20, forMs: 6000, drainMs: 500 });
      await new Promise((r) => setTimeout(r, 1000));
      for (const node of ['c1-node1', 'c1-node2']) {
        const agentPid = pidInNetns(`weft-${node}`, 'agent\0--config');
        assert.ok(agentPid, `agent of ${node} found`);
        process.kill(Number(agentPid), 'SIGKILL');
      }
      await new Promise((r) => setTimeout(r, 1000));
      for (const node of ['c1-node1', 'c1-node2']) {
        const child = spawn('nsenter', [`--net=/var/run/netns/weft-${node}`, '--', process.execPath, WEFT, 'agent', '--config', `/var/run/weft/c1/${node}/agent.json`], { detached: true, stdio: ['ignore', 'ignore', 'ignore'] });
        child.unref();
      }
      const result = await stream;
      assert.equal(result.code, 0, result.out);
      assert.equal(result.got, result.sent, 'every byte came back while the agents were down and restarting');
      await until(async () => (await weft(['status'])).code === 0, 'agents to be back', 30_000);
      assert.equal(await probe('demo/client', ['--http', `http://${echo2}:8081/`]), true);
    });

    it('keeps enforcing while etcd is down and catches up when it returns', async () => {
      const echo1 = ipOf(eps, 'demo/echo-1');
      // The control plane's namespace also runs the relay: etcd is found by its command, not as the
      // lowest pid (pids wrap on a long run, and the relay's may be the lower).
      const etcdPid = pidInNetns('weft-c1-cp', 'etcd\0--name\0');
      assert.ok(etcdPid, 'no etcd in the control plane\'s namespace');
      const etcdCmd = readFileSync(`/proc/${etcdPid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      process.kill(etcdPid, 'SIGKILL');
      const dead = () => { try { return readFileSync(`/proc/${etcdPid}/stat`, 'utf8').split(') ')[1].startsWith('Z'); } catch { return true; } };
      await until(async () => dead(), 'the killed etcd to be gone', 10_000);
      assert.equal(await probe('demo/client', ['--http', `http://${echo1}:8081/`]), true, 'traffic flows without etcd');
      // A killed etcd leaves its unix socket behind; remove it as an operator would before restarting.
      rmSync('/var/run/weft/lab/c1/etcd/etcd:0', { force: true });
      const child = spawn('ip', ['netns', 'exec', 'weft-c1-cp', ...etcdCmd], { detached: true, stdio: 'ignore', cwd: '/var/run/weft/lab/c1/etcd' });
      child.unref();
      const deny = file('late.yaml', `apiVersion: weft.io/v1
kind: WeftNetworkPolicy
metadata: { name: late, namespace: demo }
spec:
  endpointSelector: { matchLabels: { app: echo } }
  ingressDeny: [ { fromEndpoints: [ { matchLabels: { app: client } } ] } ]
`);
      await until(async () => (await weft(['apply', '-f', deny])).code === 0, 'etcd to accept writes again', 30_000);
      await until(async () => !(await probe('demo/client', ['--http', `http://${echo1}:8081/`])), 'agents to catch up', 30_000);
      assert.equal((await weft(['delete', '-f', deny])).code, 0);
    });
  });
}

/** Every identity reference the lab's nodes hold in etcd: node, id and the labels it was taken for. */
async function nodeRefs() {
  const { labEtcdClient, readLabState } = require('../packages/lab/dist/index.js');
  const kv = labEtcdClient(readLabState().clusters[0]);
  try {
    const { items } = await kv.list('weft/identities/v1/noderefs/');
    return items.map((i) => {
      const [node, id] = i.key.slice('weft/identities/v1/noderefs/'.length).split('/');
      return { node, id: Number(id), labels: i.value.toString() };
    });
  } finally {
    kv.close();
  }
}

async function podNs(ref) {
  const [ns, name] = ref.split('/');
  const { podNetnsName } = require('../packages/lab/dist/index.js');
  return podNetnsName('c1', ns, name);
}

