/**
 * Benchmark `policy`: policy at scale, side by side in one run, between two
 * pods on one node (network namespaces joined to a node namespace by veths):
 *   (a) no filtering: plain kernel forwarding;
 *   (b) Weft's eBPF policy: the real programs and maps, the server's ingress
 *       allowing N peer identities, the client's identity the last one added;
 *   (c) real iptables (nf_tables backend) in the node namespace: conntrack
 *       accepts established flows, then N rules, the client matching the last.
 * For N = 1k, 10k, 30k: new-connection rate (connect, request, reply, close;
 * 8 threads of a C load generator against a C server) and TCP throughput (iperf3). Everything runs in namespaces
 * this benchmark creates and removes.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap, ensureBpffs, encodeEndpointInfo, encodeEndpointKey, encodeIpcacheKey, encodeIpcacheValue, encodeNodeConfig, encodePolicyKey, encodePolicyValue, ipv4ToInt, IPCACHE_KEY, IPCACHE_VALUE, POLICY_KEY, POLICY_VALUE, EP_F_INGRESS_ENFORCE, MapName, ROUTING_DIRECT } from '@weft/datapath';
import { buildConnbench, CONNBENCH, inNs, output } from './proc.js';
import { finish, progress, round, type Target } from './report.js';

const REPO = join(__dirname, '..', '..');
const SIZES = (process.env.WEFT_BENCH_POLICY_SIZES ?? '1000,10000,30000').split(',').map(Number);
const CONN_MS = Number(process.env.WEFT_BENCH_CONN_MS ?? 3000);
const PARALLEL = 8;
const IPERF_S = Number(process.env.WEFT_BENCH_IPERF_S ?? 3);
const CLIENT_IP = '10.201.0.2';
const SERVER_IP = '10.201.0.3';
const GW = '169.254.1.1';
const CLIENT_EP = 1;
const SERVER_EP = 2;
const SERVER_ID = 65_537;

const sh = (cmd: string[], input?: string): string => execFileSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', input });

interface Net {
  node: string;
  client: string;
  server: string;
  pinRoot: string;
}

function setup(tag: string): Net {
  const net: Net = { node: `wtpb-${tag}-node`, client: `wtpb-${tag}-cl`, server: `wtpb-${tag}-sv`, pinRoot: `/sys/fs/bpf/wtpb-${tag}` };
  for (const ns of [net.node, net.client, net.server]) {
    sh(['ip', 'netns', 'add', ns]);
    sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  }
  sh(['ip', 'netns', 'exec', net.node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  for (const [pod, dev, ip] of [[net.client, 'cl0', CLIENT_IP], [net.server, 'sv0', SERVER_IP]] as const) {
    sh(['ip', '-n', net.node, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod]);
    sh(['ip', '-n', net.node, 'link', 'set', dev, 'up']);
    sh(['ip', '-n', pod, 'addr', 'add', `${ip}/32`, 'dev', 'eth0']);
    sh(['ip', '-n', pod, 'link', 'set', 'eth0', 'up']);
    const nodeMac = JSON.parse(sh(['ip', '-n', net.node, '-j', 'link', 'show', dev]))[0].address as string;
    const podMac = JSON.parse(sh(['ip', '-n', pod, '-j', 'link', 'show', 'eth0']))[0].address as string;
    sh(['ip', '-n', pod, 'neigh', 'replace', GW, 'lladdr', nodeMac, 'dev', 'eth0', 'nud', 'permanent']);
    sh(['ip', '-n', pod, 'route', 'replace', GW, 'dev', 'eth0', 'scope', 'link']);
    sh(['ip', '-n', pod, 'route', 'replace', 'default', 'via', GW, 'dev', 'eth0']);
    sh(['ip', '-n', net.node, 'neigh', 'replace', ip, 'lladdr', podMac, 'dev', dev, 'nud', 'permanent']);
    sh(['ip', '-n', net.node, 'route', 'replace', `${ip}/32`, 'dev', dev, 'scope', 'link']);
  }
  return net;
}

function teardown(net: Net): void {
  for (const ns of [net.node, net.client, net.server]) {
    const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean);
    for (const p of pids) spawnSync('kill', ['-9', p]);
    spawnSync('ip', ['netns', 'del', ns]);
  }
  rmSync(net.pinRoot, { recursive: true, force: true });
}

async function measure(net: Net): Promise<{ connPerSec: number; gbps: number }> {
  const conn = JSON.parse(await output(inNs(net.client, [CONNBENCH, 'client', SERVER_IP, '8080', String(PARALLEL), String(CONN_MS)]))) as { done: number; failed: number };
  const iperf = JSON.parse(await output(inNs(net.client, ['iperf3', '-c', SERVER_IP, '-t', String(IPERF_S), '-J']))) as { end: { sum_received: { bits_per_second: number } } };
  return { connPerSec: Math.round(conn.done / (CONN_MS / 1000)), gbps: round(iperf.end.sum_received.bits_per_second / 1e9, 2) };
}

/** Loads and attaches Weft's programs in the node namespace (tc attach must run there). */
function attachBpf(net: Net): void {
  const script = `
    const { BpfObject, attachTc, ensureBpffs } = require(${JSON.stringify(join(REPO, 'packages', 'datapath', 'dist', 'index.js'))});
    ensureBpffs();
    const o = BpfObject.open(${JSON.stringify(join(REPO, 'bpf', 'build', 'bpf_lxc.o'))}, { pinRoot: ${JSON.stringify(net.pinRoot)}, programs: ['from_container', 'to_container'] });
    o.load();
    const { execFileSync } = require('child_process');
    for (const dev of ['cl0', 'sv0']) {
      const ifindex = JSON.parse(execFileSync('ip', ['-j', 'link', 'show', dev]))[0].ifindex;
      attachTc({ ifindex, direction: 'ingress', programFd: o.programFd('from_container') });
      attachTc({ ifindex, direction: 'egress', programFd: o.programFd('to_container') });
    }`;
  execFileSync('nsenter', [`--net=/var/run/netns/${net.node}`, '--', process.execPath, '-e', script], { stdio: 'inherit' });
}

function detachBpf(net: Net): void {
  for (const dev of ['cl0', 'sv0']) spawnSync('tc', ['-n', net.node, 'qdisc', 'del', 'dev', dev, 'clsact']);
}

/** Fills the pinned maps: N peer identities allowed into the server, the client's identity last. */
function programPolicy(net: Net, n: number): void {
  const open = (name: string): BpfMap => BpfMap.openPinned(join(net.pinRoot, name));
  const [config, endpoints, ipcache, policy] = [open(MapName.config), open(MapName.endpoints), open(MapName.ipcache), open(MapName.policy)];
  try {
    config.update(Buffer.alloc(4), encodeNodeConfig({ nodeIp: 0, tunnelIfindex: 0, routingMode: ROUTING_DIRECT, clusterId: 1, flags: 0 }));
    const clientId = 70_000 + n - 1;
    const link = (ns: string, dev: string): { ifindex: number; address: string } => JSON.parse(sh(['ip', '-n', ns, '-j', 'link', 'show', dev]))[0];
    for (const [ep, ip, dev, pod, id, flags] of [[CLIENT_EP, CLIENT_IP, 'cl0', net.client, clientId, 0], [SERVER_EP, SERVER_IP, 'sv0', net.server, SERVER_ID, EP_F_INGRESS_ENFORCE]] as const) {
      const host = link(net.node, dev);
      endpoints.update(encodeEndpointKey(ipv4ToInt(ip)), encodeEndpointInfo({ ip: ipv4ToInt(ip), ifindex: host.ifindex, epId: ep, flags, identity: id, policyRev: n, mac: link(pod, 'eth0').address, nodeMac: host.address }));
    }
    // N peers in the ipcache (the client is the last), and N allow entries for the server's ingress.
    const ik = Buffer.alloc(n * IPCACHE_KEY.size);
    const iv = Buffer.alloc(n * IPCACHE_VALUE.size);
    const pk = Buffer.alloc(n * POLICY_KEY.size);
    const pv = Buffer.alloc(n * POLICY_VALUE.size);
    for (let i = 0; i < n; i++) {
      const ip = i === n - 1 ? ipv4ToInt(CLIENT_IP) : (0x0ad20000 + i) >>> 0;
      encodeIpcacheKey(ik, i * IPCACHE_KEY.size, ip, 32);
      encodeIpcacheValue(iv, i * IPCACHE_VALUE.size, { identity: 70_000 + i, tunnelIp: 0, flags: 0, clusterId: 1 });
      encodePolicyKey(pk, i * POLICY_KEY.size, { epId: SERVER_EP, egress: false, identity: 70_000 + i, protocol: 6 });
      encodePolicyValue(pv, i * POLICY_VALUE.size, false, i + 1);
    }
    ipcache.updateBatch(ik, iv, n);
    policy.updateBatch(pk, pv, n);
  } finally {
    for (const m of [config, endpoints, ipcache, policy]) m.close();
  }
}

function iptables(net: Net, n: number | undefined): void {
  if (n === undefined) {
    sh(['ip', 'netns', 'exec', net.node, 'iptables', '-F', 'FORWARD']);
    sh(['ip', 'netns', 'exec', net.node, 'iptables', '-P', 'FORWARD', 'ACCEPT']);
    return;
  }
  const lines = ['*filter', ':FORWARD DROP [0:0]', '-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT'];
  for (let i = 0; i < n - 1; i++) lines.push(`-A FORWARD -s 10.210.${(i >> 8) & 255}.${i & 255}/32 -d ${SERVER_IP}/32 -p tcp -j ACCEPT`);
  lines.push(`-A FORWARD -s ${CLIENT_IP}/32 -d ${SERVER_IP}/32 -p tcp -j ACCEPT`, 'COMMIT', '');
  sh(['ip', 'netns', 'exec', net.node, 'iptables-restore'], lines.join('\n'));
}

export async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('Cannot run the policy benchmark: it needs root (namespaces, BPF, iptables)');
  ensureBpffs();
  const net = setup(randomBytes(3).toString('hex'));
  buildConnbench();
  const servers = [inNs(net.server, [CONNBENCH, 'server', '8080']), inNs(net.server, ['iperf3', '-s'])];
  const results: Record<string, unknown> = { connectionMs: CONN_MS, iperfSeconds: IPERF_S, parallelConnections: PARALLEL, loadGenerator: 'bench/c/connbench.c (C, threads, RST close)' };
  const targets: Target[] = [];
  try {
    await new Promise((r) => setTimeout(r, 500));
    for (const n of SIZES) {
      progress(`N=${n}: (a) no filtering`);
      detachBpf(net);
      iptables(net, undefined);
      const a = await measure(net);
      progress(`N=${n}: (a) ${a.connPerSec} conn/s, ${a.gbps} Gbit/s; (b) Weft eBPF policy`);
      attachBpf(net);
      programPolicy(net, n);
      const b = await measure(net);
      detachBpf(net);
      rmSync(net.pinRoot, { recursive: true, force: true });
      progress(`N=${n}: (b) ${b.connPerSec} conn/s, ${b.gbps} Gbit/s; (c) iptables with ${n} rules`);
      iptables(net, n);
      const c = await measure(net);
      iptables(net, undefined);
      progress(`N=${n}: (c) ${c.connPerSec} conn/s, ${c.gbps} Gbit/s`);
      const connRatio = round(b.connPerSec / a.connPerSec, 3);
      const tputRatio = round(b.gbps / a.gbps, 3);
      const vsIptables = round(b.connPerSec / Math.max(1, c.connPerSec), 2);
      results[`n${n}`] = { none: a, weft: b, iptables: c, weftVsNoneConn: connRatio, weftVsNoneThroughput: tputRatio, weftVsIptablesConn: vsIptables };
      targets.push({ name: `N=${n}: Weft new-connection rate / no filtering`, value: connRatio, goal: '>= 0.95', met: connRatio >= 0.95 });
      targets.push({ name: `N=${n}: Weft throughput / no filtering`, value: tputRatio, goal: '>= 0.95', met: tputRatio >= 0.95 });
      if (n === SIZES[SIZES.length - 1]) targets.push({ name: `N=${n}: Weft / iptables new-connection rate`, value: vsIptables, goal: '>= 10', met: vsIptables >= 10 });
    }
  } finally {
    for (const s of servers) s.kill('SIGKILL');
    teardown(net);
  }
  finish('policy', results, targets);
}
