/**
 * Trust on the wire, with the real programs (bpf/build/*.o loaded by the
 * agent's BpfDatapath) on real devices: a victim node `a` with a pod, its
 * underlay veth on a bridge, its collect-metadata VXLAN device; real peers
 * on the bridge (`b` of cluster 1, `c` of cluster 2) and an attacker `x`
 * (the world). Every packet is a real UDP datagram sent from one of those
 * namespaces (a VXLAN payload, or a pod-addressed packet), never
 * BPF_PROG_TEST_RUN: the tunnel key only exists on a real tunnel device.
 *
 * For each attack the pod's policy admits the identity claimed, so only the
 * trust checks stand between the packet and the pod. A case passes when the
 * datapath reports the drop with its reason; if the packet reaches the pod's
 * socket instead, the case fails saying so. Legitimate traffic from the same
 * places must still arrive.
 *
 * Needs root (namespaces, bpf(2), bpffs) and the built objects. Everything is
 * named wtt-<random> and removed after the run, also when a case fails.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BpfMap, decodeFlowEvent, dropReasonName, intToIpv4, IPCACHE_F_ENCRYPTED, IPCACHE_F_LOCAL_ENDPOINT, IPCACHE_F_REMOTE_NODE, NODE_ADDR_F_ENCRYPTED_ONLY, RingBufferReader, vxlanPayload, type FlowRecord } from '@weft/datapath';

const IS_ROOT = process.getuid?.() === 0;
const REPO = join(__dirname, '..', '..', '..');
const BPF_DIR = join(REPO, 'bpf', 'build');
const DIST = __dirname;

const VXLAN_PORT = 8472;
const POD_PORT = 9999;

// Addresses: the underlay 10.77.0.0/24; pod CIDRs 10.201.<n>.0/24 (cluster 1) and 10.202.1.0/24 (cluster 2).
const A = '10.77.0.1';
const B = '10.77.0.2';
const C = '10.77.0.3';
const D = '10.77.0.4'; // a node reached encrypted (no namespace: only its addresses matter)
const X = '10.77.0.99';
const SIDE_A = '10.78.0.1'; // a second way into `a`, not the underlay (as a WireGuard device is)
const SIDE_X = '10.78.0.2';
const POD_A = '10.201.1.5';
const POD_B = '10.201.2.7';
const POD_C = '10.202.1.9';
const ROUTER_D = '10.201.4.1';
const POD_D = '10.201.4.8';
const ID_A = (1 << 16) | 100;
const ID_B = (1 << 16) | 300;
const ID_C = (2 << 16) | 400;
const ID_D = (1 << 16) | 500;
const HOST = 1;
const WORLD = 2;
const HEALTH = 4;
const REMOTE_NODE = 6;

/** Sends one datagram from `ns`, bound to bind:port (the kernel builds the outer headers). */
const SENDER = `
  const a = JSON.parse(process.argv[1]);
  const s = require('node:dgram').createSocket('udp4');
  s.bind(a.port, a.bind, () => s.send(Buffer.from(a.payload, 'hex'), a.dport, a.to, (err) => {
    if (err) { process.stderr.write(err.message); process.exit(1); }
    s.close();
  }));
`;

/** Prints every datagram it receives on 0.0.0.0:PORT as a line of text. */
const SINK = `
  const s = require('node:dgram').createSocket('udp4');
  s.on('message', (m) => process.stdout.write(m.toString('latin1') + '\\n'));
  s.bind(Number(process.argv[1]), '0.0.0.0', () => process.stdout.write('ready\\n'));
  setTimeout(() => process.exit(0), 600_000).unref();
`;

/** Starts the agent's BpfDatapath in namespace `ns` with this state, then leaves (programs and maps stay). */
const PROGRAM = `
  const a = JSON.parse(process.argv[1]);
  const { BpfDatapath } = require(a.dist + '/bpf-datapath.js');
  const { validateAgentConfig } = require(a.dist + '/config.js');
  const { silentLogger } = require('@weft/common');
  (async () => {
    const dp = new BpfDatapath(validateAgentConfig(a.config), silentLogger());
    await dp.start();
    await dp.syncIpcache(a.ipcache);
    await dp.syncNodes(a.nodes);
    const outcome = await dp.programEndpoint(a.endpoint, a.policy, 1);
    if (outcome.state !== 'ok') throw new Error('policy not in force: ' + JSON.stringify(outcome));
    await dp.stop();
  })().then(() => process.exit(0), (err) => { process.stderr.write(err.stack); process.exit(1); });
`;

describe('trust on the wire: tunnel and underlay checks with the real programs (root)', function () {
  this.timeout(120_000);
  const tag = randomBytes(3).toString('hex');
  const ns = { ul: `wtt-${tag}-ul`, a: `wtt-${tag}-a`, pa: `wtt-${tag}-pa`, b: `wtt-${tag}-b`, c: `wtt-${tag}-c`, x: `wtt-${tag}-x` };
  const pinRoot = `/sys/fs/bpf/wtt-${tag}`;
  let stateDir = '';
  let sink: ChildProcess | undefined;
  let received: string[] = [];
  let events: FlowRecord[] = [];
  let reader: RingBufferReader | undefined;
  let eventsMap: BpfMap | undefined;
  let podMac = '';
  let hostMac = '';
  let seq = 0;

  const sh = (args: string[]): string => execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const inNs = (name: string, args: string[]): string => sh(['ip', 'netns', 'exec', name, ...args]);
  const ip = (name: string, ...args: string[]): string => sh(['ip', '-n', name, ...args]);

  before(async function () {
    if (!IS_ROOT) {
      console.log('    (skipped: these tests need root for namespaces, bpf(2) and bpffs)');
      return this.skip();
    }
    if (!existsSync(join(BPF_DIR, 'bpf_host.o'))) throw new Error(`${BPF_DIR}/*.o missing: run npm run build`);
    stateDir = mkdtempSync(join(tmpdir(), `wtt-${tag}-`));
    for (const n of Object.values(ns)) {
      sh(['ip', 'netns', 'add', n]);
      inNs(n, ['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
      ip(n, 'link', 'set', 'lo', 'up');
    }
    ip(ns.ul, 'link', 'add', 'br0', 'type', 'bridge');
    ip(ns.ul, 'link', 'set', 'br0', 'up');
    for (const [name, addr] of [[ns.a, A], [ns.b, B], [ns.c, C], [ns.x, X]] as const) {
      const port = `p${name.slice(-1)}`;
      ip(ns.ul, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'ul0', 'netns', name);
      ip(ns.ul, 'link', 'set', port, 'master', 'br0', 'up');
      ip(name, 'addr', 'add', `${addr}/24`, 'dev', 'ul0');
      ip(name, 'link', 'set', 'ul0', 'up');
      // ARP asks and answers with the subnet's own address only: a borrowed /32 never becomes a neighbour.
      inNs(name, ['sysctl', '-qw', 'net.ipv4.conf.ul0.arp_announce=2', 'net.ipv4.conf.ul0.arp_ignore=2']);
    }
    inNs(ns.a, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    // The side door: a link into `a` that is not its underlay device.
    ip(ns.a, 'link', 'add', 'side0', 'type', 'veth', 'peer', 'name', 'side0', 'netns', ns.x);
    ip(ns.a, 'addr', 'add', `${SIDE_A}/30`, 'dev', 'side0');
    ip(ns.x, 'addr', 'add', `${SIDE_X}/30`, 'dev', 'side0');
    ip(ns.a, 'link', 'set', 'side0', 'up');
    ip(ns.x, 'link', 'set', 'side0', 'up');
    // The pod of `a`, wired as the agent wires one (endpoint-manager.ts).
    ip(ns.a, 'link', 'add', 'lxcwtt', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.pa);
    ip(ns.pa, 'addr', 'add', `${POD_A}/32`, 'dev', 'eth0');
    ip(ns.pa, 'link', 'set', 'eth0', 'up');
    ip(ns.a, 'link', 'set', 'lxcwtt', 'up');
    podMac = (JSON.parse(ip(ns.pa, '-j', 'link', 'show', 'eth0')) as Array<{ address: string }>)[0]!.address;
    hostMac = (JSON.parse(ip(ns.a, '-j', 'link', 'show', 'lxcwtt')) as Array<{ address: string }>)[0]!.address;
    ip(ns.a, 'neigh', 'replace', POD_A, 'lladdr', podMac, 'dev', 'lxcwtt', 'nud', 'permanent');
    ip(ns.a, 'route', 'replace', `${POD_A}/32`, 'dev', 'lxcwtt', 'scope', 'link');
    // Pods of other nodes as their nodes would route them (direct routing).
    ip(ns.a, 'route', 'add', '10.201.2.0/24', 'via', B);
    ip(ns.b, 'addr', 'add', `${POD_B}/32`, 'dev', 'lo');
    for (const n of [ns.b, ns.x]) ip(n, 'route', 'add', '10.201.1.0/24', 'via', A);

    sink = spawn('ip', ['netns', 'exec', ns.pa, process.execPath, '-e', SINK, String(POD_PORT)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    sink.stdout!.setEncoding('latin1').on('data', (d: string) => {
      out += d;
      const lines = out.split('\n');
      out = lines.pop()!;
      received.push(...lines);
    });
    await until(() => received.includes('ready'), 'the pod\'s UDP socket');
  });

  after(() => {
    sink?.kill('SIGKILL');
    reader?.stop();
    eventsMap?.close();
    for (const n of Object.values(ns)) spawnSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
    rmSync(pinRoot, { recursive: true, force: true });
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  /** Loads the datapath of `a` (routing mode as given) through the agent's own BpfDatapath. */
  function program(routing: 'vxlan' | 'direct'): void {
    // Admits every identity an attack below claims, except host (a node claiming itself becomes remote-node).
    const policy = [ID_B, ID_C, ID_D, WORLD, HEALTH, REMOTE_NODE, 256]
      .map((identity, i) => ({ egress: false, identity, protocol: 17, port: { port: POD_PORT, bits: 16 }, deny: false, ruleId: i + 1 }));
    const state = {
      dist: DIST,
      config: { cluster: 'c1', clusterId: 1, node: 'a', etcd: ['http://127.0.0.1:1'], nodeIp: A, podCidr: '10.201.1.0/24', routing, bpfDir: BPF_DIR, pinRoot, stateDir, encryption: 'off', underlayDevice: 'ul0', vxlanPort: VXLAN_PORT },
      ipcache: [
        { cidr: `${POD_A}/32`, identity: ID_A, flags: IPCACHE_F_LOCAL_ENDPOINT, clusterId: 1 },
        { cidr: `${A}/32`, identity: HOST, flags: IPCACHE_F_REMOTE_NODE, clusterId: 1 },
        { cidr: `${B}/32`, identity: REMOTE_NODE, flags: IPCACHE_F_REMOTE_NODE, clusterId: 1 },
        { cidr: `${C}/32`, identity: REMOTE_NODE, flags: IPCACHE_F_REMOTE_NODE, clusterId: 2 },
        { cidr: `${D}/32`, identity: REMOTE_NODE, flags: IPCACHE_F_REMOTE_NODE, clusterId: 1 },
        { cidr: `${POD_B}/32`, identity: ID_B, tunnelIp: B, flags: 0, clusterId: 1 },
        { cidr: `${POD_C}/32`, identity: ID_C, tunnelIp: C, flags: 0, clusterId: 2 },
        { cidr: `${POD_D}/32`, identity: ID_D, tunnelIp: ROUTER_D, flags: IPCACHE_F_ENCRYPTED, clusterId: 1 },
      ],
      nodes: [
        { addr: B, nodeIp: B, clusterId: 1, flags: 0 },
        { addr: C, nodeIp: C, clusterId: 2, flags: 0 },
        { addr: D, nodeIp: D, routerIp: ROUTER_D, clusterId: 1, flags: NODE_ADDR_F_ENCRYPTED_ONLY },
        { addr: ROUTER_D, nodeIp: D, routerIp: ROUTER_D, clusterId: 1, flags: NODE_ADDR_F_ENCRYPTED_ONLY },
      ],
      endpoint: { epId: 1, ip: POD_A, ifname: 'lxcwtt', identity: ID_A, mac: podMac, nodeMac: hostMac, ingressEnforced: true, egressEnforced: false, audit: false },
      policy,
    };
    // nsenter, not `ip netns exec`: that remounts /sys, and the pins would land in a private bpffs.
    const r = spawnSync('nsenter', [`--net=/var/run/netns/${ns.a}`, '--', process.execPath, '-e', PROGRAM, JSON.stringify(state)], { encoding: 'utf8', cwd: REPO, timeout: 60_000 });
    assert.equal(r.status, 0, `the datapath of a did not start: ${r.stderr}`);
    if (!reader) {
      eventsMap = BpfMap.openPinned(join(pinRoot, 'weft_events'));
      reader = new RingBufferReader(eventsMap);
    }
  }

  function send(from: string, bind: string, to: string, dport: number, payload: Buffer, port: number): void {
    inNs(from, [process.execPath, '-e', SENDER, JSON.stringify({ bind, port, to, dport, payload: payload.toString('hex') })]);
  }

  interface Outcome {
    arrived: boolean;
    drop?: { reason: string; point: number; srcIdentity: number; saddr: string };
  }

  /**
   * Sends a datagram and waits for its fate: it reaches the pod's socket, or the datapath reports
   * dropping it (an event with its unique source port, inner or outer). Whichever comes first.
   */
  async function fate(from: string, bind: string, to: string, dport: number, build: (port: number, text: Buffer) => Buffer): Promise<Outcome> {
    const port = 20000 + ++seq;
    const text = `wtt-${tag}-${port}`;
    send(from, bind, to, dport, build(port, Buffer.from(text)), port);
    let drop: FlowRecord | undefined;
    await until(() => {
      reader!.consume((b) => events.push(decodeFlowEvent(b)));
      drop = events.find((e) => e.verdict === 2 && e.sport === port);
      return drop !== undefined || received.includes(text);
    }, `datagram ${port} to reach the pod or be reported dropped`);
    const out: Outcome = { arrived: received.includes(text) };
    if (drop) out.drop = { reason: dropReasonName(drop.dropReason), point: drop.point, srcIdentity: drop.srcIdentity, saddr: intToIpv4(drop.saddr) };
    return out;
  }

  const vxlan = (vni: number, innerSrc: string) => (port: number, text: Buffer): Buffer => vxlanPayload({ vni, src: innerSrc, dst: POD_A, sport: port, dport: POD_PORT, data: text });
  const plain = () => (_port: number, text: Buffer): Buffer => text;
  const FROM_OVERLAY = 3;
  const FROM_UNDERLAY = 4;

  function assertDropped(o: Outcome, reason: string, point: number, what: string): void {
    assert.equal(o.arrived, false, `${what}: the packet reached the pod (its policy admits the identity claimed)`);
    assert.ok(o.drop, `${what}: no drop reported`);
    assert.deepEqual([o.drop.reason, o.drop.point], [reason, point], `${what}: ${JSON.stringify(o.drop)}`);
  }

  describe('VXLAN (encryption off)', () => {
    before(function () {
      if (!IS_ROOT) return this.skip();
      program('vxlan');
    });

    it('delivers a node\'s own pod with the identity in its VNI, and a node claiming itself as remote-node', async () => {
      const o = await fate(ns.b, B, A, VXLAN_PORT, vxlan(ID_B, POD_B));
      assert.deepEqual(o, { arrived: true });
      const self = await fate(ns.b, B, A, VXLAN_PORT, vxlan(HOST, B));
      assert.deepEqual(self, { arrived: true }, 'VNI host from the node\'s own address is remote-node, which the policy admits');
      const cross = await fate(ns.c, C, A, VXLAN_PORT, vxlan(ID_C, POD_C));
      assert.deepEqual(cross, { arrived: true }, 'a node of cluster 2 with an identity of cluster 2');
    });

    it('refuses a VNI from a host that is no node (on the underlay and through another device)', async () => {
      assertDropped(await fate(ns.x, X, A, VXLAN_PORT, vxlan(ID_B, POD_B)), 'TUNNEL_SOURCE_NOT_NODE', FROM_UNDERLAY, 'VXLAN from the world on the underlay');
      const side = await fate(ns.x, SIDE_X, SIDE_A, VXLAN_PORT, vxlan(ID_B, POD_B));
      assertDropped(side, 'TUNNEL_SOURCE_NOT_NODE', FROM_OVERLAY, 'VXLAN from the world through a device that is not the underlay');
      assert.equal(side.drop!.srcIdentity, ID_B, 'the event names the identity claimed');
    });

    it('refuses an inner source that is not the sending node\'s', async () => {
      for (const [src, what] of [[POD_C, 'a pod of another node'], [POD_D, 'a pod of a third node'], [X, 'the world'], [POD_A, 'the pod itself']] as const) {
        assertDropped(await fate(ns.b, B, A, VXLAN_PORT, vxlan(ID_B, src)), 'INNER_SOURCE_MISMATCH', FROM_OVERLAY, `node b claiming ${what} (${src})`);
      }
    });

    it('refuses a VNI of another cluster than the sending node\'s', async () => {
      assertDropped(await fate(ns.b, B, A, VXLAN_PORT, vxlan(ID_C, POD_B)), 'TUNNEL_CLUSTER_MISMATCH', FROM_OVERLAY, 'node b (cluster 1) claiming an identity of cluster 2');
      assertDropped(await fate(ns.c, C, A, VXLAN_PORT, vxlan(ID_B, POD_C)), 'TUNNEL_CLUSTER_MISMATCH', FROM_OVERLAY, 'node c (cluster 2) claiming an identity of cluster 1');
    });

    it('refuses reserved and node-local identities a node may not claim', async () => {
      for (const [vni, src, what] of [[WORLD, POD_B, 'world'], [HEALTH, POD_B, 'health'], [HOST, POD_B, 'host for a pod'], [256, POD_B, 'a node-local CIDR identity'], [0, POD_B, 'identity 0']] as const) {
        assertDropped(await fate(ns.b, B, A, VXLAN_PORT, vxlan(vni, src)), 'RESERVED_IDENTITY_CLAIM', FROM_OVERLAY, `node b claiming ${what}`);
      }
    });

    it('refuses a node\'s address from another machine, and clear tunnel traffic from a node that must encrypt', async () => {
      // x borrows b's address (b's MAC is what `a` knows from b's traffic above).
      ip(ns.x, 'addr', 'add', `${B}/32`, 'dev', 'ul0');
      ip(ns.x, 'addr', 'add', `${D}/32`, 'dev', 'ul0');
      ip(ns.x, 'addr', 'add', `${ROUTER_D}/32`, 'dev', 'ul0');
      try {
        assertDropped(await fate(ns.x, B, A, VXLAN_PORT, vxlan(ID_B, POD_B)), 'SOURCE_NOT_FROM_OWNER', FROM_UNDERLAY, 'VXLAN with node b\'s address from another MAC');
        assertDropped(await fate(ns.x, D, A, VXLAN_PORT, vxlan(ID_D, POD_D)), 'UNENCRYPTED_INGRESS', FROM_UNDERLAY, 'clear VXLAN from the node IP of a peer reached encrypted');
        assertDropped(await fate(ns.x, ROUTER_D, A, VXLAN_PORT, vxlan(ID_D, POD_D)), 'UNENCRYPTED_INGRESS', FROM_UNDERLAY, 'clear VXLAN from a router IP');
      } finally {
        for (const addr of [B, D, ROUTER_D]) ip(ns.x, 'addr', 'del', `${addr}/32`, 'dev', 'ul0');
      }
      assert.deepEqual(await fate(ns.b, B, A, VXLAN_PORT, vxlan(ID_B, POD_B)), { arrived: true }, 'node b itself still gets through');
    });

    it('refuses a clear packet with a pod address of another node (tunnel mode routes none)', async () => {
      assertDropped(await fate(ns.b, POD_B, POD_A, POD_PORT, plain()), 'SOURCE_NOT_FROM_OWNER', FROM_UNDERLAY, 'node b\'s pod, routed in the clear in tunnel mode');
    });
  });

  describe('direct routing (encryption off)', () => {
    before(function () {
      if (!IS_ROOT) return this.skip();
      program('direct');
    });

    it('delivers a pod of another node routed by that node', async () => {
      assert.deepEqual(await fate(ns.b, POD_B, POD_A, POD_PORT, plain()), { arrived: true });
      assert.deepEqual(await fate(ns.b, B, POD_A, POD_PORT, plain()), { arrived: true }, 'the node itself (remote-node)');
    });

    it('refuses a pod\'s or a node\'s address sent by another machine', async () => {
      ip(ns.x, 'addr', 'add', `${POD_B}/32`, 'dev', 'ul0');
      ip(ns.x, 'addr', 'add', `${B}/32`, 'dev', 'ul0');
      try {
        const o = await fate(ns.x, POD_B, POD_A, POD_PORT, plain());
        assertDropped(o, 'SOURCE_NOT_FROM_OWNER', FROM_UNDERLAY, 'node b\'s pod address from the attacker\'s MAC');
        assert.equal(o.drop!.srcIdentity, ID_B, 'the event names the identity the address would have had');
        assertDropped(await fate(ns.x, B, POD_A, POD_PORT, plain()), 'SOURCE_NOT_FROM_OWNER', FROM_UNDERLAY, 'node b\'s address from the attacker\'s MAC');
      } finally {
        for (const addr of [POD_B, B]) ip(ns.x, 'addr', 'del', `${addr}/32`, 'dev', 'ul0');
      }
      assert.deepEqual(await fate(ns.b, POD_B, POD_A, POD_PORT, plain()), { arrived: true }, 'node b\'s pod itself still gets through');
    });
  });
});

async function until(cond: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
