/**
 * Benchmark `encryption`: pod to pod across two nodes of a lab, plaintext VXLAN
 * against Weft's default (pod packets routed into WireGuard as they are,
 * wireguard-go here), beside two anchors with nothing of Weft: wireguard-go
 * routing a pod namespace on each of two node namespaces over a bridge (what a
 * plain routed network with WireGuard does with a pod's traffic: the target's
 * reference), and a bare wireguard-go tunnel between two namespaces (what
 * wireguard-go itself does here). Weft and the routed anchor are up at the same
 * time and measured in turns, ROUNDS rounds in alternating order, so a drift
 * of the shared machine falls on both; each figure is the median of its
 * rounds, and every round's ratio is reported. Throughput: iperf3, one TCP
 * stream and four. Request/response: new TCP connections per second, each with
 * a request and its reply (the C load generator of the policy benchmark, 8
 * threads). Targets: Weft / routed anchor >= 0.9 for each.
 *
 * Then the same in the kernel lane (hack/kernel-lane/run.sh: Debian's stock
 * kernel under qemu TCG), where ESP and kernel WireGuard exist: plaintext
 * VXLAN, Weft with kernel WireGuard, Weft with IPsec, a bare and a routed
 * kernel WireGuard, one round each. Emulation makes the guest's absolute
 * figures meaningless; its ratios are what it reports.
 * WEFT_BENCH_LANE=0 skips the lane.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { applyAndWait, demoResources, labDown, labUp, podNetnsName } from '@weft/lab';
import { ensureWireGuard, ensureWireGuardGo, generatePrivateKey, Ip, netns, publicKeyOf, type WireGuardDevice } from '@weft/net';
import { buildConnbench, CONNBENCH, inNs, output } from './proc.js';
import { finish, percentile, progress, round, type Target } from './report.js';

const IN_LANE = process.env.WEFT_KERNEL_LANE === '1';
/** Under emulation, longer runs and a pause after the lab comes up (its agents still settling) steady the figures. */
const IPERF_S = Number(process.env.WEFT_BENCH_IPERF_S ?? (IN_LANE ? 10 : 5));
const CONN_MS = Number(process.env.WEFT_BENCH_CONN_MS ?? (IN_LANE ? 8000 : 3000));
const SETTLE_MS = IN_LANE ? 15_000 : 0;
const PARALLEL = 8;
/** Rounds of Weft and the routed anchor in turns (host). */
const ROUNDS = Number(process.env.WEFT_BENCH_ROUNDS ?? (IN_LANE ? 1 : 3));
/**
 * WEFT_BENCH_PERF=DIR: a system-wide `perf record -g` over each iperf3 run, to DIR/<path>.data (the
 * evidence behind docs/encryption.md's "where the time goes"); `perf report -i` reads it.
 */
const PERF_DIR = process.env.WEFT_BENCH_PERF;
/** WEFT_BENCH_ROUTING=direct: the lab in direct routing (with WireGuard the same path; plaintext without VXLAN). */
const ROUTING = process.env.WEFT_BENCH_ROUTING === 'direct' ? 'direct' : 'vxlan';

interface Result {
  /** One TCP stream. */
  gbps: number;
  /** Four TCP streams at once (iperf3 -P 4). */
  gbps4: number;
  connPerSec: number;
}

async function measure(label: string, clientNs: string, serverNs: string, serverIp: string): Promise<Result> {
  const servers = [inNs(serverNs, ['iperf3', '-s']), inNs(serverNs, [CONNBENCH, 'server', '7070'])];
  try {
    await new Promise((r) => setTimeout(r, 500));
    const perf = PERF_DIR ? spawn('perf', ['record', '-a', '-g', '-F', '499', '-o', `${PERF_DIR}/${label}.data`, '--', 'sleep', String(IPERF_S)], { stdio: 'ignore' }) : undefined;
    const iperf = JSON.parse(await output(inNs(clientNs, ['iperf3', '-c', serverIp, '-t', String(IPERF_S), '-J']))) as { end: { sum_received: { bits_per_second: number } } };
    if (perf) await new Promise((r) => perf.once('close', r));
    const iperf4 = JSON.parse(await output(inNs(clientNs, ['iperf3', '-c', serverIp, '-t', String(IPERF_S), '-P', '4', '-J']))) as { end: { sum_received: { bits_per_second: number } } };
    const conn = JSON.parse(await output(inNs(clientNs, [CONNBENCH, 'client', serverIp, '7070', String(PARALLEL), String(CONN_MS)]))) as { done: number };
    return { gbps: round(iperf.end.sum_received.bits_per_second / 1e9, 2), gbps4: round(iperf4.end.sum_received.bits_per_second / 1e9, 2), connPerSec: Math.round(conn.done / (CONN_MS / 1000)) };
  } finally {
    for (const s of servers) s.kill('SIGKILL');
  }
}

/** A path up: measures it once per call (a perf file per call is suffixed with the round). */
type Measure = (round?: number) => Promise<Result>;

/** A lab of two nodes with `encryption`, up while `fn` runs: pod to pod across the nodes. */
async function withLab<T>(encryption: 'off' | 'wireguard' | 'ipsec', fn: (m: Measure) => Promise<T>): Promise<T> {
  progress(`encryption: lab of two nodes, ${ROUTING} routing, encryption ${encryption}`);
  const state = await labUp({ clusters: [{ name: 'c1', id: 1 }], nodes: 2, routing: ROUTING, encryption }, () => undefined);
  try {
    const c = state.clusters[0]!;
    const node2 = c.nodes[1]!;
    await applyAndWait(c, demoResources(c));
    const eps = JSON.parse(spawnSync(process.execPath, [`${__dirname}/../../packages/cli/bin/weft.js`, 'endpoint', 'list', '-o', 'json'], { encoding: 'utf8' }).stdout) as Array<{ pod: string; ip: string }>;
    const server = eps.find((e) => e.pod === `echo-${node2.index}`);
    if (!server) throw new Error(`encryption: no endpoint for demo/echo-${node2.index}`);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    return await fn((round) => measure(`lab-${ROUTING}-${encryption}${round ? `-${round}` : ''}`, podNetnsName('c1', 'demo', 'client'), podNetnsName('c1', 'demo', `echo-${node2.index}`), server.ip));
  } finally {
    await labDown(() => undefined);
  }
}

/** Two namespaces joined by a veth, a WireGuard device in each: what WireGuard alone achieves here. */
async function bareWireGuard(implementation: 'userspace' | 'kernel'): Promise<Result> {
  progress(`encryption: bare ${implementation === 'kernel' ? 'kernel WireGuard' : 'wireguard-go'} tunnel between two namespaces`);
  const device = (ifname: string, ns: string): Promise<WireGuardDevice> =>
    implementation === 'kernel' ? ensureWireGuard(ifname, { implementation, netns: ns }) : ensureWireGuardGo(ifname, { netns: ns });
  const tag = randomBytes(3).toString('hex');
  const [a, b] = [`wbwg-a-${tag}`, `wbwg-b-${tag}`];
  const [wa, wb] = [`wbwa${tag}`, `wbwb${tag}`];
  try {
    await netns.add(a);
    await netns.add(b);
    const [ipa, ipb] = [new Ip(a), new Ip(b)];
    await ipa.addVeth('ua', 'ub', { peerNetns: b });
    await ipa.addAddress('ua', '10.254.0.1/30');
    await ipb.addAddress('ub', '10.254.0.2/30');
    await ipa.setUp('ua');
    await ipb.setUp('ub');
    const [ka, kb] = [generatePrivateKey(), generatePrivateKey()];
    const [da, db] = [await device(wa, a), await device(wb, b)];
    await da.configure(ka, 51820);
    await db.configure(kb, 51820);
    await da.setPeers([{ publicKey: publicKeyOf(kb).toString('base64'), endpoint: '10.254.0.2:51820', allowedIps: ['10.255.0.2/32'] }], []);
    await db.setPeers([{ publicKey: publicKeyOf(ka).toString('base64'), endpoint: '10.254.0.1:51820', allowedIps: ['10.255.0.1/32'] }], []);
    await ipa.addAddress(wa, '10.255.0.1/24');
    await ipb.addAddress(wb, '10.255.0.2/24');
    await ipa.run(['link', 'set', wa, 'mtu', '1440', 'up']);
    await ipb.run(['link', 'set', wb, 'mtu', '1440', 'up']);
    return await measure(`bare-${implementation}`, a, b, '10.255.0.2');
  } finally {
    for (const ns of [a, b]) {
      for (const p of spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean)) spawnSync('kill', ['-9', p]);
      await netns.delete(ns);
    }
    for (const d of [wa, wb]) spawnSync('rm', ['-f', `/var/run/wireguard/${d}.sock`]);
  }
}

/**
 * The same WireGuard carrying pods as a plain routed network would, with nothing of Weft: two node
 * namespaces on an underlay bridge (as the lab's), a pod namespace behind each on a veth, the kernel
 * routing the pods' traffic into the WireGuard device. What Weft's path adds to this is Weft's cost:
 * its BPF programs, its VXLAN header, its agent; the namespace-to-namespace tunnel above also leaves
 * out the bridge and the pod's veth, which every path from a pod has.
 */
async function withRoutedWireGuard<T>(implementation: 'userspace' | 'kernel', fn: (m: Measure) => Promise<T>): Promise<T> {
  progress(`encryption: ${implementation === 'kernel' ? 'kernel WireGuard' : 'wireguard-go'} between two node namespaces on a bridge, routing a pod namespace each`);
  const tag = randomBytes(3).toString('hex');
  const ns = { ul: `wbr-u-${tag}`, na: `wbr-na-${tag}`, nb: `wbr-nb-${tag}`, pa: `wbr-pa-${tag}`, pb: `wbr-pb-${tag}` };
  const [wa, wb] = [`wbra${tag}`, `wbrb${tag}`];
  const device = (ifname: string, where: string): Promise<WireGuardDevice> =>
    implementation === 'kernel' ? ensureWireGuard(ifname, { implementation, netns: where }) : ensureWireGuardGo(ifname, { netns: where });
  try {
    for (const n of Object.values(ns)) await netns.add(n);
    const ul = new Ip(ns.ul);
    await ul.addBridge('br0');
    await ul.setUp('br0');
    const [ka, kb] = [generatePrivateKey(), generatePrivateKey()];
    const sides = [
      { node: ns.na, pod: ns.pa, ul: 'ua', underlay: '10.254.0.1', podNet: '10.255.1', wg: wa, key: ka },
      { node: ns.nb, pod: ns.pb, ul: 'ub', underlay: '10.254.0.2', podNet: '10.255.2', wg: wb, key: kb },
    ];
    for (const s of sides) {
      await ul.addVeth(s.ul, 'ul0', { peerNetns: s.node });
      await ul.setMaster(s.ul, 'br0');
      await ul.setUp(s.ul);
      const node = new Ip(s.node);
      await node.addAddress('ul0', `${s.underlay}/24`);
      await node.setUp('ul0');
      // The pod: a veth at WireGuard's MTU, its node the gateway, the node forwarding.
      await node.addVeth('p0', 'eth0', { peerNetns: s.pod, mtu: 1440 });
      await node.addAddress('p0', `${s.podNet}.1/24`);
      await node.setUp('p0');
      const pod = new Ip(s.pod);
      await pod.addAddress('eth0', `${s.podNet}.10/24`);
      await pod.setUp('eth0');
      await pod.setUp('lo');
      await pod.run(['route', 'add', 'default', 'via', `${s.podNet}.1`]);
      spawnSync('ip', ['netns', 'exec', s.node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    }
    const [da, db] = [await device(wa, ns.na), await device(wb, ns.nb)];
    await da.configure(ka, 51820);
    await db.configure(kb, 51820);
    await da.setPeers([{ publicKey: publicKeyOf(kb).toString('base64'), endpoint: '10.254.0.2:51820', allowedIps: ['10.255.2.0/24'] }], []);
    await db.setPeers([{ publicKey: publicKeyOf(ka).toString('base64'), endpoint: '10.254.0.1:51820', allowedIps: ['10.255.1.0/24'] }], []);
    for (const [s, other] of [[sides[0]!, sides[1]!], [sides[1]!, sides[0]!]] as const) {
      const node = new Ip(s.node);
      await node.run(['link', 'set', s.wg, 'mtu', '1440', 'up']);
      await node.run(['route', 'add', `${other.podNet}.0/24`, 'dev', s.wg]);
    }
    return await fn((round) => measure(`routed-${implementation}${round ? `-${round}` : ''}`, ns.pa, ns.pb, '10.255.2.10'));
  } finally {
    for (const n of Object.values(ns)) {
      for (const p of spawnSync('ip', ['netns', 'pids', n], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean)) spawnSync('kill', ['-9', p]);
      await netns.delete(n);
    }
    for (const d of [wa, wb]) spawnSync('rm', ['-f', `/var/run/wireguard/${d}.sock`]);
  }
}

const ratios = (a: Result, b: Result) => ({ throughput: round(a.gbps / b.gbps, 3), throughput4Streams: round(a.gbps4 / b.gbps4, 3), connPerSec: round(a.connPerSec / b.connPerSec, 3) });

/** The marker before the guest's result line on the lane's console. */
const LANE_RESULT = 'WEFT_BENCH_ENCRYPTION_LANE';

interface LaneResult {
  kernel: string;
  plaintext: Result;
  weftKernelWireGuard: Result;
  weftIpsec: Result;
  bareKernelWireGuard: Result;
  routedKernelWireGuard: Result;
}

/** Inside the kernel lane's guest (`npm run bench -- encryption-lane`): prints one marked JSON line. */
export async function laneMain(): Promise<void> {
  if (!IN_LANE) throw new Error('encryption-lane runs inside the kernel lane only (npm run bench -- encryption runs it there)');
  const kernelWireGuard = await withLab('wireguard', (weft) => withRoutedWireGuard('kernel', (routed) => sideBySide(weft, routed)));
  const result: LaneResult = {
    kernel: spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim(),
    plaintext: await withLab('off', (m) => m()),
    weftKernelWireGuard: kernelWireGuard.weft,
    weftIpsec: await withLab('ipsec', (m) => m()),
    bareKernelWireGuard: await bareWireGuard('kernel'),
    routedKernelWireGuard: kernelWireGuard.anchor,
  };
  process.stdout.write(`${LANE_RESULT} ${JSON.stringify(result)}\n`);
}

const median = (xs: number[]): number => percentile([...xs].sort((a, b) => a - b), 50);

/**
 * Weft and an anchor, both up, measured in turns for ROUNDS rounds (the first
 * round Weft first, the next the anchor first, ...): each figure the median of
 * its rounds, and every round's ratios.
 */
async function sideBySide(weft: Measure, anchor: Measure): Promise<{ weft: Result; anchor: Result; rounds: Array<ReturnType<typeof ratios>> }> {
  const w: Result[] = [];
  const a: Result[] = [];
  for (let i = 1; i <= ROUNDS; i++) {
    progress(`encryption: round ${i}/${ROUNDS}, Weft and the routed anchor in turns`);
    if (i % 2) {
      w.push(await weft(i));
      a.push(await anchor(i));
    } else {
      a.push(await anchor(i));
      w.push(await weft(i));
    }
  }
  const med = (rs: Result[]): Result => ({ gbps: median(rs.map((r) => r.gbps)), gbps4: median(rs.map((r) => r.gbps4)), connPerSec: median(rs.map((r) => r.connPerSec)) });
  return { weft: med(w), anchor: med(a), rounds: w.map((r, i) => ratios(r, a[i]!)) };
}

/** Boots the kernel lane, runs laneMain in it, and returns its result; the guest's progress is passed on. */
async function inKernelLane(): Promise<LaneResult> {
  progress('encryption: kernel lane (qemu TCG, Debian kernel): plaintext, kernel WireGuard, IPsec; some 15 minutes');
  const runSh = `${__dirname}/../../hack/kernel-lane/run.sh`;
  const env = { ...process.env, WEFT_KERNEL_LANE_TIMEOUT: process.env.WEFT_KERNEL_LANE_TIMEOUT ?? '2400' };
  const child = spawn('bash', [runSh, process.execPath, 'bench/dist/run.js', 'encryption-lane'], { cwd: `${__dirname}/../..`, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let line: string | undefined;
  let tail: string[] = [];
  let partial = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop()!;
    for (const l of lines) {
      const at = l.indexOf(`${LANE_RESULT} `);
      if (at >= 0) line = l.slice(at + LANE_RESULT.length + 1);
      else if (l.startsWith('[bench]') || l.startsWith('[kernel-lane]')) process.stderr.write(`[bench] lane: ${l}\n`);
      tail = [...tail.slice(-40), l];
    }
  });
  const code = await new Promise<number | null>((r) => child.on('close', r));
  if (code !== 0 || line === undefined) throw new Error(`encryption: the kernel lane failed (exit ${code}); its last lines:\n${tail.join('\n')}`);
  try {
    return JSON.parse(line) as LaneResult;
  } catch {
    throw new Error(`encryption: the kernel lane's result line is not JSON (a console message inside it?): ${line}`);
  }
}

export async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('Cannot run the encryption benchmark: it needs root (the lab)');
  buildConnbench();
  const plain = await withLab('off', (m) => m());
  const { weft: wireguard, anchor: routed, rounds } = await withLab('wireguard', (weft) => withRoutedWireGuard('userspace', (anchor) => sideBySide(weft, anchor)));
  const bare = await bareWireGuard('userspace');
  const lane = process.env.WEFT_BENCH_LANE === '0' ? undefined : await inKernelLane();
  const vsRouted = ratios(wireguard, routed);
  const targets: Target[] = [
    { name: "Weft's WireGuard path vs wireguard-go routing pods over the same kind of underlay, throughput ratio (1 stream)", value: vsRouted.throughput, goal: '>= 0.9', met: vsRouted.throughput >= 0.9 },
    { name: 'the same, 4 streams', value: vsRouted.throughput4Streams, goal: '>= 0.9', met: vsRouted.throughput4Streams >= 0.9 },
    { name: 'the same, connections/s', value: vsRouted.connPerSec, goal: '>= 0.9', met: vsRouted.connPerSec >= 0.9 },
  ];
  finish('encryption', {
    routing: ROUTING,
    iperfSeconds: IPERF_S,
    plaintext: plain,
    weftWireGuard: wireguard,
    bareWireGuardGo: bare,
    routedWireGuardGo: routed,
    weftWireGuardVsPlaintext: ratios(wireguard, plain),
    weftWireGuardVsBare: ratios(wireguard, bare),
    weftWireGuardVsRouted: vsRouted,
    rounds: ROUNDS,
    weftWireGuardVsRoutedByRound: rounds,
    kernelLane: lane && {
      ...lane,
      note: 'qemu TCG: absolute figures are emulation-bound; compare the ratios',
      weftKernelWireGuardVsPlaintext: ratios(lane.weftKernelWireGuard, lane.plaintext),
      weftIpsecVsPlaintext: ratios(lane.weftIpsec, lane.plaintext),
      weftKernelWireGuardVsBare: ratios(lane.weftKernelWireGuard, lane.bareKernelWireGuard),
      weftKernelWireGuardVsRouted: ratios(lane.weftKernelWireGuard, lane.routedKernelWireGuard),
    },
  }, targets);
}
