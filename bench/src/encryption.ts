/**
 * Benchmark `encryption`: pod to pod across two nodes of a lab, side by side
 * in one run, plaintext VXLAN against Weft's default (VXLAN inside
 * WireGuard, wireguard-go here), and a bare wireguard-go tunnel between two
 * namespaces on the same machine as the reference for what wireguard-go
 * itself can do. Throughput: iperf3, one TCP stream. Request/response: new
 * TCP connections per second, each with a request and its reply (the C load
 * generator of the policy benchmark, 8 threads). Target: Weft's WireGuard
 * path >= 90% of the bare tunnel's throughput.
 * (IPsec and kernel WireGuard need the kernel lane: not measured here.)
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { podNetnsName } from '@weft/agent';
import { applyAndWait, demoResources, labDown, labUp } from '@weft/lab';
import { ensureWireGuardGo, generatePrivateKey, Ip, netns, publicKeyOf } from '@weft/net';
import { buildConnbench, CONNBENCH, inNs, output } from './proc.js';
import { finish, progress, round, type Target } from './report.js';

const IPERF_S = Number(process.env.WEFT_BENCH_IPERF_S ?? 5);
const CONN_MS = Number(process.env.WEFT_BENCH_CONN_MS ?? 3000);
const PARALLEL = 8;
/** WEFT_BENCH_ROUTING=direct: WireGuard without the inner VXLAN header. */
const ROUTING = process.env.WEFT_BENCH_ROUTING === 'direct' ? 'direct' : 'vxlan';

interface Result {
  gbps: number;
  connPerSec: number;
}

async function measure(clientNs: string, serverNs: string, serverIp: string): Promise<Result> {
  const servers = [inNs(serverNs, ['iperf3', '-s']), inNs(serverNs, [CONNBENCH, 'server', '7070'])];
  try {
    await new Promise((r) => setTimeout(r, 500));
    const iperf = JSON.parse(await output(inNs(clientNs, ['iperf3', '-c', serverIp, '-t', String(IPERF_S), '-J']))) as { end: { sum_received: { bits_per_second: number } } };
    const conn = JSON.parse(await output(inNs(clientNs, [CONNBENCH, 'client', serverIp, '7070', String(PARALLEL), String(CONN_MS)]))) as { done: number };
    return { gbps: round(iperf.end.sum_received.bits_per_second / 1e9, 2), connPerSec: Math.round(conn.done / (CONN_MS / 1000)) };
  } finally {
    for (const s of servers) s.kill('SIGKILL');
  }
}

async function labPath(encryption: 'off' | 'wireguard'): Promise<Result> {
  progress(`encryption: lab of two nodes, ${ROUTING} routing, encryption ${encryption}`);
  const state = await labUp({ clusters: [{ name: 'c1', id: 1 }], nodes: 2, routing: ROUTING, encryption }, () => undefined);
  try {
    const c = state.clusters[0]!;
    const node2 = c.nodes[1]!;
    await applyAndWait(c, demoResources(c));
    const eps = JSON.parse(spawnSync(process.execPath, [`${__dirname}/../../packages/cli/bin/weft.js`, 'endpoint', 'list', '-o', 'json'], { encoding: 'utf8' }).stdout) as Array<{ pod: string; ip: string }>;
    const server = eps.find((e) => e.pod === `echo-${node2.index}`);
    if (!server) throw new Error(`encryption: no endpoint for demo/echo-${node2.index}`);
    return await measure(podNetnsName('c1', 'demo', 'client'), podNetnsName('c1', 'demo', `echo-${node2.index}`), server.ip);
  } finally {
    await labDown(() => undefined);
  }
}

/** Two namespaces joined by a veth, a wireguard-go device in each: what wireguard-go alone achieves here. */
async function bareWireGuard(): Promise<Result> {
  progress('encryption: bare wireguard-go tunnel between two namespaces');
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
    const [da, db] = [await ensureWireGuardGo(wa, { netns: a }), await ensureWireGuardGo(wb, { netns: b })];
    await da.configure(ka, 51820);
    await db.configure(kb, 51820);
    await da.setPeers([{ publicKey: publicKeyOf(kb).toString('base64'), endpoint: '10.254.0.2:51820', allowedIps: ['10.255.0.2/32'] }], []);
    await db.setPeers([{ publicKey: publicKeyOf(ka).toString('base64'), endpoint: '10.254.0.1:51820', allowedIps: ['10.255.0.1/32'] }], []);
    await ipa.addAddress(wa, '10.255.0.1/24');
    await ipb.addAddress(wb, '10.255.0.2/24');
    await ipa.run(['link', 'set', wa, 'mtu', '1440', 'up']);
    await ipb.run(['link', 'set', wb, 'mtu', '1440', 'up']);
    return await measure(a, b, '10.255.0.2');
  } finally {
    for (const ns of [a, b]) {
      for (const p of spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean)) spawnSync('kill', ['-9', p]);
      await netns.delete(ns);
    }
    for (const d of [wa, wb]) spawnSync('rm', ['-f', `/var/run/wireguard/${d}.sock`]);
  }
}

export async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('Cannot run the encryption benchmark: it needs root (the lab)');
  buildConnbench();
  const plain = await labPath('off');
  const wireguard = await labPath('wireguard');
  const bare = await bareWireGuard();
  const ratio = round(wireguard.gbps / bare.gbps, 3);
  const targets: Target[] = [
    { name: "Weft's WireGuard path vs a bare wireguard-go tunnel, throughput ratio", value: ratio, goal: '>= 0.9', met: ratio >= 0.9 },
  ];
  finish('encryption', {
    routing: ROUTING,
    iperfSeconds: IPERF_S,
    plaintext: plain,
    weftWireGuard: wireguard,
    bareWireGuardGo: bare,
    weftWireGuardVsPlaintext: { throughput: round(wireguard.gbps / plain.gbps, 3), connPerSec: round(wireguard.connPerSec / plain.connPerSec, 3) },
    weftWireGuardVsBare: { throughput: ratio, connPerSec: round(wireguard.connPerSec / bare.connPerSec, 3) },
    notMeasuredHere: 'IPsec and kernel WireGuard (no ESP or WireGuard in this kernel: kernel lane)',
  }, targets);
}
