/**
 * Benchmark `observe`: flows per second through agent -> relay -> client, at 1, 4 and 8 nodes, with
 * the CPU each part uses and the latency from a flow's verdict to the client.
 *
 * Each "node" is a process of its own doing what an agent does per datapath event in user space:
 * the agent's own `CapturedFlow` (pods, identities' labels, clusters, the rule) of a FlowSample
 * whose kernel timestamp is taken when it is made, into a LocalObserver served by an ObserverServer
 * over TCP with mutual TLS, as the chart's agents serve the relay (a follower has each built at
 * once). What it leaves out is the agent's ring buffer drain (the mapped ring, every 100 ms) and the
 * BPF program's event write, both in the kernel's account. The relay (the real Relay) is a process
 * too, serving TCP with mutual TLS as the chart's relay does, and the client (this process) follows
 * every flow through it, as `weft observe --follow`, decoding each.
 *
 * Per configuration: flows made, flows delivered, flows reported lost (LostEvents) and missing,
 * verdict-to-client latency p50/p99 (the flow's time to its arrival here, one clock), and CPU of
 * each part over the window (/proc/<pid>/stat), with the agents' and the relay's CPU per 10k flows/s,
 * and the whole machine's (/proc/stat, in % of one core: 200 is both cores of a 2-core machine
 * busy). Every node, the relay and the client share this one machine: where the machine is busy to
 * its last core, flows are lost to it, not to the relay; the relay's CPU per 10k flows/s says what
 * one relay takes where nodes are machines of their own.
 * `cpuNeededPct`: what a configuration asks of this machine at the CPU per flow of each part with
 * one node at the same rate; above the machine's cores not every flow can be carried here.
 * Targets (issue 16): no flow lost at 50k flows/s per node, p99 < 1 s.
 */
import { pidCpuSeconds as cpuSeconds } from './proc.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CapturedFlow, type FlowSample } from '@weft/agent';
import { silentLogger } from '@weft/common';
import { LabelSet } from '@weft/identity';
import { createCa, issue } from '@weft/kvstore';
import { LocalObserver, ObserverClient, ObserverServer, Relay, timestampMs, type ObserverNode, type TlsFiles } from '@weft/observer';
import { finish, percentile, progress, round, type Target } from './report.js';

const SECONDS = Number(process.env.WEFT_BENCH_SECONDS ?? 5);
/**
 * Seconds of flows before the window: every process starts cold (V8 compiles the flow path while
 * flows arrive), which delays the first second or two of flows by up to ~0.8 s at 8 nodes. Losses count
 * from the first flow; latency and CPU count in the window after it; the cold part's p99 is reported apart.
 */
const WARMUP = Number(process.env.WEFT_BENCH_WARMUP ?? 2);
const NODES = (process.env.WEFT_BENCH_NODES ?? '1,4,8').split(',').map(Number);
const RATES = (process.env.WEFT_BENCH_RATES ?? '10000,50000').split(',').map(Number);
const CLK_TCK = 100;
/** As `weft relay` holds back for a slow reader: a relay gathers many nodes' bursts. */
const RELAY_QUEUE = 50_000;

const wallNs = (): bigint => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));

/** The name every benchmark server's certificate carries, and every client asks for. */
const SERVER_NAME = 'observer.bench.weft';

/** A CA, one server certificate and one client certificate, in `dir`. */
async function writeTls(dir: string): Promise<void> {
  const ca = await createCa('weft-bench-observer');
  const server = await issue(ca, SERVER_NAME, { dnsNames: [SERVER_NAME], ips: ['127.0.0.1'] });
  const client = await issue(ca, 'weft-bench-client');
  writeFileSync(join(dir, 'ca.pem'), ca.cert);
  for (const [name, pem] of Object.entries({ server, client })) {
    writeFileSync(join(dir, `${name}.pem`), pem.cert);
    writeFileSync(join(dir, `${name}-key.pem`), pem.key);
  }
}

function readTls(dir: string, who: 'server' | 'client'): TlsFiles & { serverName: string } {
  const read = (f: string): Buffer => readFileSync(join(dir, f));
  return { ca: read('ca.pem'), cert: read(`${who}.pem`), key: read(`${who}-key.pem`), serverName: SERVER_NAME };
}

/** One node: `observe-node TLS-DIR NAME RATE SECONDS`; prints `ready PORT`, starts making flows on SIGUSR1, prints its count when done. */
export async function node(): Promise<void> {
  const [tlsDir, name, rateText, secondsText] = process.argv.slice(3);
  const rate = Number(rateText);
  const seconds = Number(secondsText);
  const local = new LocalObserver({ cluster: 'c1', node: name!, capacity: 10_000 });
  const server = new ObserverServer({ backend: local, cluster: 'c1', node: name!, listen: '127.0.0.1:0', tls: readTls(tlsDir!, 'server'), log: silentLogger() });
  await server.start();
  // 200 pods in 20 workloads, each a label set of three labels, as a busy node's would be.
  const identities = Array.from({ length: 20 }, (_, i) => LabelSet.parse([`k8s:app=app${i}`, `k8s:io.kubernetes.pod.namespace=ns${i % 4}`, 'k8s:weft.io/cluster=c1']));
  const pods = new Map(Array.from({ length: 200 }, (_, i) => [`10.101.${i >> 8}.${i & 255}`, { namespace: `ns${i % 4}`, pod: `app${i % 20}-${i}` }]));
  const ips = [...pods.keys()];
  const bootTimeNs = wallNs() - process.hrtime.bigint();
  const ctx = {
    cluster: 'c1', node: name!, bootTimeNs,
    podByIp: (ip: string) => pods.get(ip),
    labelsOf: (id: number) => identities[id - 1000],
    ruleName: (id: number) => (id ? `NetworkPolicy/ns${id % 4}/allow-app#ingress#0` : undefined),
  };
  let made = 0;
  const makeOne = (): void => {
    const a = made % 200;
    const b = (made * 7 + 3) % 200;
    const sample: FlowSample = {
      timestampNs: process.hrtime.bigint(), srcIdentity: 1000 + (a % 20), dstIdentity: 1000 + (b % 20), saddr: ips[a]!, daddr: ips[b]!,
      sport: 30000 + (made % 30000), dport: 8080, protocol: 6, verdict: made % 10 === 0 ? 2 : 1, dropReason: made % 10 === 0 ? 1 : 0, point: 1 + (made % 2), epId: a, flags: 2, length: 60, ruleId: made % 3, tcpFlags: 0x02, servicePort: 0,
    };
    local.add(new CapturedFlow(sample, ctx));
    made++;
  };
  process.on('SIGUSR1', () => {
    const t0 = Date.now();
    const timer = setInterval(() => {
      // A batch every 20 ms, as many as are due (the agent drains its ring every 100 ms: bigger batches).
      const due = Math.min(rate * seconds, Math.floor(((Date.now() - t0) / 1000) * rate));
      while (made < due) makeOne();
      if (Date.now() - t0 >= seconds * 1000) {
        clearInterval(timer);
        process.stdout.write(JSON.stringify({ made, lostStream: local.lostStreamFlows }) + '\n');
      }
    }, 20);
  });
  process.on('SIGTERM', () => void server.stop().then(() => process.exit(0)));
  process.stdout.write(`ready ${server.port}\n`);
}

/** The relay: `observe-relay TLS-DIR NODE-PORT...`; prints `ready PORT`. */
export async function relay(): Promise<void> {
  const [tlsDir, ...ports] = process.argv.slice(3);
  const discover = async (): Promise<ObserverNode[]> => ports.map((p, i) => ({ name: `n${i + 1}`, cluster: 'c1', address: `127.0.0.1:${p}`, state: 'NODE_STATE_UNKNOWN', version: '', uptimeNs: 0, numFlows: 0, maxFlows: 0, seenFlows: 0, error: '' }));
  const tls = readTls(tlsDir!, 'client');
  const r = new Relay({ cluster: 'c1', discover, dial: (n) => new ObserverClient(n.address, { encodedFlows: true, tls }), refreshMs: 10_000, log: silentLogger() });
  const server = new ObserverServer({ backend: r, cluster: 'c1', node: 'relay', listen: '127.0.0.1:0', tls: readTls(tlsDir!, 'server'), queueLimit: RELAY_QUEUE, log: silentLogger() });
  await r.start();
  await server.start();
  process.on('SIGTERM', () => {
    r.stop();
    void server.stop().then(() => process.exit(0));
  });
  process.stdout.write(`ready ${server.port}\n`);
}

/** CPU time the whole machine spent busy (every core), in seconds. */
function machineBusySeconds(): number {
  const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = fields.map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) / CLK_TCK;
}


function start(args: string[]): { child: ChildProcess; lines: string[]; ready: Promise<string> } {
  const child = spawn(process.execPath, [...(process.env.WEFT_BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.WEFT_BENCH_PROF}`] : []), join(__dirname, 'run.js'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let buf = '';
  const ready = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith('ready ')) resolve(line.slice(6));
        else lines.push(line);
      }
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code} before it was ready`)));
  });
  return { child, lines, ready };
}

async function runOne(nodes: number, rate: number): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-observe-'));
  const children: ChildProcess[] = [];
  try {
    await writeTls(dir);
    const agents = Array.from({ length: nodes }, (_, i) => start(['observe-node', dir, `n${i + 1}`, String(rate), String(WARMUP + SECONDS)]));
    children.push(...agents.map((a) => a.child));
    const ports = await Promise.all(agents.map((a) => a.ready));
    const relayProc = start(['observe-relay', dir, ...ports]);
    children.push(relayProc.child);
    const relayPort = await relayProc.ready;
    const client = new ObserverClient(`127.0.0.1:${relayPort}`, { tls: readTls(dir, 'client') });
    let delivered = 0;
    let lostReported = 0;
    const lostBy: Record<string, number> = {};
    const latencies: number[] = [];
    const coldLatencies: number[] = [];
    let warmFrom = Infinity;
    const ac = new AbortController();
    const following = client.getFlows({ follow: true }, (r) => {
      if (r.flow) {
        // One in 16 for the latency sample: a sort of every flow would cost more than it tells.
        if ((delivered++ & 15) !== 0) return;
        const made = timestampMs(r.flow.time);
        (made >= warmFrom ? latencies : coldLatencies).push(Number(wallNs()) / 1e6 - made);
      } else if (r.lostEvents) {
        lostReported += Number(r.lostEvents.numEventsLost);
        lostBy[r.lostEvents.node] = (lostBy[r.lostEvents.node] ?? 0) + Number(r.lostEvents.numEventsLost);
      }
    }, ac.signal);
    // Every node followed by the relay, and the relay by us, before the first flow is made.
    await new Promise((r) => setTimeout(r, 500));
    const pids = { agents: agents.map((a) => a.child.pid!), relay: relayProc.child.pid! };
    const t0 = Date.now();
    warmFrom = t0 + WARMUP * 1000;
    for (const a of agents) a.child.kill('SIGUSR1');
    await new Promise((r) => setTimeout(r, warmFrom - Date.now()));
    const before = { agents: pids.agents.map(cpuSeconds), relay: cpuSeconds(pids.relay), client: process.cpuUsage(), machine: machineBusySeconds() };
    const expected = nodes * rate * (WARMUP + SECONDS);
    // The window: the flows' making time, then until every flow arrived or nothing moved for 2 s.
    let last = -1;
    let still = 0;
    while (delivered + lostReported < expected && still < 20) {
      await new Promise((r) => setTimeout(r, 100));
      if (Date.now() - warmFrom < SECONDS * 1000) continue;
      still = delivered === last ? still + 1 : 0;
      last = delivered;
    }
    const elapsed = (Date.now() - warmFrom) / 1000;
    if (Object.keys(lostBy).length) progress(`  lost by: ${JSON.stringify(lostBy)}`);
    const client1 = process.cpuUsage(before.client);
    const after = { agents: pids.agents.map(cpuSeconds), relay: cpuSeconds(pids.relay), machine: machineBusySeconds() };
    ac.abort();
    await following;
    client.close();
    const made = agents.reduce((n, a) => n + (a.lines.length ? (JSON.parse(a.lines[0]!) as { made: number }).made : 0), 0);
    latencies.sort((a, b) => a - b);
    coldLatencies.sort((a, b) => a - b);
    const agentCpu = after.agents.map((c, i) => ((c - before.agents[i]!) / elapsed) * 100);
    const agentAvg = agentCpu.reduce((a, b) => a + b, 0) / nodes;
    const relayCpu = ((after.relay - before.relay) / elapsed) * 100;
    return {
      nodes, ratePerNode: rate, seconds: round(elapsed, 1), made, delivered, lostReported, missing: made - delivered - lostReported,
      lostPct: round(((made - delivered) / Math.max(1, made)) * 100, 3),
      deliveredPerSec: round(delivered / ((Date.now() - t0) / 1000), 0),
      latencyP50Ms: round(percentile(latencies, 50), 1), latencyP99Ms: round(percentile(latencies, 99), 1),
      coldLatencyP99Ms: round(percentile(coldLatencies, 99), 1),
      agentCpuPct: round(agentAvg, 1), relayCpuPct: round(relayCpu, 1), clientCpuPct: round(((client1.user + client1.system) / 1e6 / elapsed) * 100, 1),
      machineCpuPct: round(((after.machine - before.machine) / elapsed) * 100, 0),
      agentCpuPctPer10k: round(agentAvg / (rate / 10_000), 1),
      relayCpuPctPer10k: round(relayCpu / ((nodes * rate) / 10_000), 1),
      clientCpuPctPer10k: round((((client1.user + client1.system) / 1e6 / elapsed) * 100) / ((nodes * rate) / 10_000), 1),
    };
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    for (const c of children) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function main(): Promise<void> {
  const results: Array<Record<string, number>> = [];
  for (const nodes of NODES) {
    for (const rate of RATES) {
      progress(`observe: ${nodes} node(s) x ${rate} flows/s for ${WARMUP} + ${SECONDS} s`);
      const r = await runOne(nodes, rate);
      progress(`  delivered ${r.delivered}/${r.made} (${r.lostPct}% lost, ${r.lostReported} reported), p50 ${r.latencyP50Ms} ms, p99 ${r.latencyP99Ms} ms (first ${WARMUP} s: ${r.coldLatencyP99Ms} ms), CPU agent ${r.agentCpuPct}% relay ${r.relayCpuPct}% client ${r.clientCpuPct}%, machine ${r.machineCpuPct}% of one core`);
      results.push(r);
    }
  }
  // What a configuration asks of this machine: its flows at the CPU per flow of every part (agent,
  // relay, client) measured with one node at the same rate, where none of them lost any. Above the
  // machine's cores, the flows cannot all be carried here, whatever the relay does.
  const cores = (await import('node:os')).cpus().length;
  for (const r of results) {
    const one = results.find((x) => x.nodes === 1 && x.ratePerNode === r.ratePerNode);
    if (one) r.cpuNeededPct = round(((r.nodes! * r.ratePerNode!) / 10_000) * (one.agentCpuPctPer10k! + one.relayCpuPctPer10k! + one.clientCpuPctPer10k!), 0);
  }
  for (const r of results) if (r.cpuNeededPct !== undefined) progress(`${r.nodes} x ${r.ratePerNode}: needs ~${r.cpuNeededPct}% of one core at 1 node's CPU per flow; the machine has ${cores * 100}%`);
  const at50k = results.filter((r) => r.ratePerNode === 50_000);
  const targets: Target[] = [
    ...at50k.map((r) => ({ name: `lost at 50k flows/s x ${r.nodes} node(s) (%)`, value: r.lostPct!, goal: '0', met: r.lostPct === 0 })),
    ...results.map((r) => ({ name: `p99 verdict-to-client at ${r.ratePerNode} flows/s x ${r.nodes} (ms)`, value: r.latencyP99Ms!, goal: '< 1000', met: r.latencyP99Ms! < 1000 })),
  ];
  finish('observe', { cpus: cores, runs: results }, targets);
}
