// End to end, as root: ICMP errors and IP fragments through pods whose policy is enforced, with
// real packets in the lab. Direct routing, so a node's own kernel forwards pod traffic: a route
// with a smaller MTU on the client's node makes that kernel answer a too-big TCP segment with
// frag-needed (the signal path-MTU discovery lives on), and a UDP datagram larger than the pod's
// MTU leaves the client's stack in IP fragments that every veth program on the way sees as they are.
'use strict';
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const { existsSync, mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { WEFT, weft, weftJson, until, isRoot } = require('./helpers');

const NODE1 = 'weft-c1-node1';

/** `weft probe` from a pod with its JSON answer. */
async function probeJson(pod, args) {
  const r = await weft(['lab', 'exec', pod, '--', process.execPath, WEFT, 'probe', ...args]);
  try {
    return { code: r.code, ...JSON.parse(r.stdout) };
  } catch {
    return { code: r.code, ok: false, detail: r.stdout + r.stderr };
  }
}

async function flows(args) {
  const r = await weft(['observe', '--last', '10000', '-o', 'json', ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

describe('ICMP errors and IP fragments through pods with enforced policy (e2e, root)', function () {
  this.timeout(240_000);
  let dir;
  let ip;
  const applied = [];
  const apply = async (name, text) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    const r = await weft(['apply', '-f', p]);
    assert.equal(r.code, 0, r.stderr);
    applied.push(p);
  };

  before(async function () {
    if (!isRoot()) return this.skip();
    dir = mkdtempSync(join(tmpdir(), 'weft-pmtu-'));
    const up = await weft(['lab', 'up', '--nodes', '2', '--routing', 'direct']);
    assert.equal(up.code, 0, up.stderr);
    const eps = await weftJson(['endpoint', 'list']);
    ip = (pod) => {
      const e = eps.find((x) => `${x.namespace}/${x.pod}` === pod);
      assert.ok(e, `endpoint ${pod} exists`);
      return e.ip;
    };
  });

  afterEach(async () => {
    for (let p = applied.pop(); p; p = applied.pop()) await weft(['delete', '-f', p]);
  });

  after(async function () {
    if (!isRoot()) return;
    if (dir) rmSync(dir, { recursive: true, force: true });
    const down = await weft(['lab', 'down']);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('weft-')), [], 'no lab namespace left');
    assert.equal(existsSync('/sys/fs/bpf/weft'), false, 'no bpffs pins left');
  });

  it("lets a router's frag-needed reach a pod whose ingress admits no router: a TCP write larger than the path completes", async () => {
    const client = ip('demo/client');
    const echo2 = ip('demo/echo-2');
    // The client accepts only echo pods on TCP 8080: nothing from its node, nothing ICMP.
    await apply('client-ingress.yaml', `apiVersion: weft.io/v1
kind: WeftNetworkPolicy
metadata: { name: client-ingress, namespace: demo }
spec:
  endpointSelector: { matchLabels: { app: client } }
  ingress:
  - fromEndpoints: [ { matchLabels: { app: echo } } ]
    toPorts: [ { ports: [ { port: "8080", protocol: TCP } ] } ]
`);
    const ping = () => weft(['lab', 'exec', 'demo/echo-1', '--', 'ping', '-n', '-q', '-c', '1', '-W', '1', client]);
    await until(async () => (await ping()).code !== 0, "the client's ingress policy (echo-1's ping refused)", 10_000);

    // A smaller hop on the way to echo-2, in the client's node: its kernel answers a DF segment
    // too big for it with frag-needed, from the node's own address.
    const route = JSON.parse(execFileSync('ip', ['-n', NODE1, '-j', 'route', 'get', echo2], { encoding: 'utf8' }))[0];
    const add = ['-n', NODE1, 'route', 'add', `${echo2}/32`, ...(route.gateway ? ['via', route.gateway] : []), 'dev', route.dev, 'mtu', 'lock', '1200'];
    execFileSync('ip', add);
    try {
      const big = await probeJson('demo/client', ['--tcp', `${echo2}:8080`, '--size', '30000', '--timeout', '5000']);
      assert.equal(big.ok, true, `30000 bytes echoed through the 1200-byte hop (${JSON.stringify(big)})`);
      const related = (await flows(['--node', 'c1-node1', '--pod', 'demo/client', '--verdict', 'FORWARDED']))
        .filter((f) => f.related && f.protocol === 'ICMP' && f.point === 'to-endpoint' && f.destination.ip === client);
      assert.ok(related.length > 0, 'the frag-needed is reported as related');
      const dropped = (await flows(['--node', 'c1-node1', '--pod', 'demo/client', '--verdict', 'DROPPED'])).filter((f) => f.protocol === 'ICMP' && f.destination.ip === client);
      assert.ok(!dropped.some((f) => f.source.ip === related[0].source.ip), `no error from ${related[0].source.ip} was dropped: ${JSON.stringify(dropped.slice(-2))}`);
    } finally {
      execFileSync('ip', ['-n', NODE1, 'route', 'del', `${echo2}/32`]);
    }
    // And the policy still holds for the node's own ICMP that is about nothing.
    assert.notEqual((await ping()).code, 0, 'an echo request to the client is still refused');
  });

  it('delivers UDP datagrams larger than the MTU, in fragments, through egress and ingress policy and a service', async () => {
    const echo1 = ip('demo/echo-1');
    const echo2 = ip('demo/echo-2');
    // Port-exact rules on both sides: a later fragment judged on its own (port 0) would be refused.
    await apply('fragments.yaml', `apiVersion: weft.io/v1
kind: WeftNetworkPolicy
metadata: { name: client-egress, namespace: demo }
spec:
  endpointSelector: { matchLabels: { app: client } }
  egress:
  - toEndpoints: [ { matchLabels: { app: echo } } ]
    toPorts: [ { ports: [ { port: "9090", protocol: UDP } ] } ]
---
apiVersion: weft.io/v1
kind: WeftNetworkPolicy
metadata: { name: echo-ingress, namespace: demo }
spec:
  endpointSelector: { matchLabels: { app: echo } }
  ingress:
  - fromEndpoints: [ { matchLabels: { app: client } } ]
    toPorts: [ { ports: [ { port: "9090", protocol: UDP } ] } ]
---
apiVersion: v1
kind: Service
metadata: { name: big-udp, namespace: demo }
spec:
  selector: { app: echo }
  ports: [ { name: dns, protocol: UDP, port: 53, targetPort: 9090 } ]
`);
    const refused = async (pod, target) => !(await probeJson(pod, ['--tcp', target, '--timeout', '1000'])).ok;
    await until(() => refused('demo/client', `${echo2}:8080`), "the client's egress policy", 10_000);
    await until(() => refused('demo/echo-1', `${echo2}:8080`), "echo-2's ingress policy", 10_000);
    await until(() => refused('demo/echo-2', `${echo1}:8080`), "echo-1's ingress policy", 10_000);
    const vip = (await weftJson(['service', 'list'])).find((s) => s.name === 'big-udp').clusterIP;
    await until(async () => (await weftJson(['bpf', 'lb', 'list'])).filter((f) => f.vip === vip && f.backends.length === 2).length === 2, 'the service on both nodes', 10_000);

    for (const [what, target] of [['echo-1, same node', `${echo1}:9090`], ['echo-2, other node', `${echo2}:9090`]]) {
      assert.equal((await probeJson('demo/client', ['--udp', target, '--timeout', '1500'])).ok, true, `${what}: a small datagram`);
      const big = await probeJson('demo/client', ['--udp', target, '--size', '4000', '--timeout', '1500']);
      assert.equal(big.ok, true, `${what}: a 4000-byte datagram, in fragments both ways (${JSON.stringify(big)})`);
    }
    // Each datagram from a new port, so a new draw of a backend: a later fragment sent elsewhere than
    // its first would never reassemble, and the echo from the service address would not come back whole.
    for (let i = 0; i < 8; i++) {
      const big = await probeJson('demo/client', ['--udp', `${vip}:53`, '--size', '4000', '--timeout', '1500']);
      assert.equal(big.ok, true, `datagram ${i} of 4000 bytes through the service (${JSON.stringify(big)})`);
    }
    const noFirst = (await flows(['--namespace', 'demo', '--verdict', 'DROPPED'])).filter((f) => f.dropReason === 'FRAGMENT_NO_FIRST');
    assert.deepEqual(noFirst, [], 'no fragment lost its first');
  });
});
