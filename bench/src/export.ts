/**
 * Benchmark `export`: the flow exporter on an agent's hot path, flows to a real file with the
 * default rotation (10 MiB files, 5 backups).
 *
 * Flows are the agent's own: `enrich` of datapath events over 200 pods in 20 workloads (labels of
 * three per identity, a policy name), made once into a pool of 10,000 that is cycled, each batch
 * stamped with the time it is exported in. Three runs, each of WEFT_BENCH_SECONDS (default 5):
 *
 *   max         as fast as the exporter takes them (batches of 1,000 flows per turn of the event
 *               loop, the agent's drain being the same shape): flows written per second
 *   50k         50,000 flows/s in 20 ms batches (the agent's ring buffer drain), all fields
 *   50k-masked  the same with a field mask of six fields (time, verdict, drop reason, source pod,
 *               destination pod and port), a SIEM's usual cut
 *   50k-gzip    the first again with fileCompress: every backup gzipped behind the writer (at
 *               50k flows/s a 10 MiB file fills in about half a second); `compressedRatio` is the
 *               backups' bytes on disk over the bytes written to them
 *
 * CPU is the process's (user + system, every thread: the writes run on libuv's threads), per
 * 10,000 flows, less that of the same loop feeding a sink that does nothing (the pool and the
 * batches). Loss is the exporter's count (its queue of 16 MiB overflowing): the target is none at
 * 50k flows/s, and the max run's rate above 50k.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { enrich, type FlowSample } from '@weft/agent';
import { LabelSet } from '@weft/identity';
import { FlowExporter, timestampFromMs, type Flow, type FlowExporterStats } from '@weft/observer';
import { finish, progress, round, type Target } from './report.js';

const SECONDS = Number(process.env.WEFT_BENCH_SECONDS ?? 5);
const MASK = ['time', 'verdict', 'dropReason', 'source.pod', 'destination.pod', 'destination.port'];

function pool(size: number): Flow[] {
  const identities = Array.from({ length: 20 }, (_, i) => LabelSet.parse([`k8s:app=app${i}`, `k8s:io.kubernetes.pod.namespace=ns${i % 4}`, 'k8s:weft.io/cluster=c1']));
  const pods = new Map(Array.from({ length: 200 }, (_, i) => [`10.101.${i >> 8}.${i & 255}`, { namespace: `ns${i % 4}`, pod: `app${i % 20}-${i}` }]));
  const ips = [...pods.keys()];
  const ctx = {
    cluster: 'c1', node: 'c1-node1', bootTimeNs: 0n,
    podByIp: (ip: string) => pods.get(ip),
    labelsOf: (id: number) => identities[id - 1000],
    ruleName: (id: number) => (id ? `NetworkPolicy/ns${id % 4}/allow-app#ingress#0` : undefined),
  };
  return Array.from({ length: size }, (_, n) => {
    const a = n % 200;
    const b = (n * 7 + 3) % 200;
    const sample: FlowSample = {
      timestampNs: BigInt(n) * 1000n, srcIdentity: 1000 + (a % 20), dstIdentity: 1000 + (b % 20), saddr: ips[a]!, daddr: ips[b]!,
      sport: 30000 + (n % 30000), dport: 8080, protocol: 6, verdict: n % 10 === 0 ? 2 : 1, dropReason: n % 10 === 0 ? 1 : 0, point: 1 + (n % 2), epId: a, flags: 2, length: 60, ruleId: n % 3, tcpFlags: 0x02, servicePort: 0,
    };
    return enrich(sample, ctx);
  });
}

interface Run {
  run: string;
  seconds: number;
  offered: number;
  exported: number;
  lost: number;
  flowsPerSecond: number;
  cpuPerTenThousandMs: number;
  cpuPct: number;
  /** Of cpuPct, the kernel's (the writes, mostly). */
  systemCpuPct: number;
  rotations: number;
  bytesPerFlow: number;
  files: number;
  compressedRatio?: number;
}

const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const systemMs = (): number => process.cpuUsage().system / 1000;

/**
 * Feeds `sink` for SECONDS: `rate` flows/s in 20 ms batches, or (rate 0) batches of 1,000 as fast
 * as the event loop turns. Returns the flows offered.
 */
async function feed(flows: Flow[], sink: (f: Flow) => void, rate: number): Promise<number> {
  const t0 = Date.now();
  let offered = 0;
  let next = 0;
  const batch = (count: number): void => {
    const time = timestampFromMs(Date.now());
    for (let i = 0; i < count; i++) {
      const f = flows[next]!;
      f.time = time;
      sink(f);
      next = next + 1 === flows.length ? 0 : next + 1;
    }
    offered += count;
  };
  while (Date.now() - t0 < SECONDS * 1000) {
    if (rate === 0) {
      batch(1000);
      await new Promise((r) => setImmediate(r));
    } else {
      await new Promise((r) => setTimeout(r, 20));
      batch(Math.min(rate * SECONDS, Math.floor(((Date.now() - t0) / 1000) * rate)) - offered);
    }
  }
  return offered;
}

async function run(name: string, flows: Flow[], rate: number, fieldMask: string[], baselineCpuPerFlowMs: number, compress = false): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-export-'));
  try {
    const exporter = new FlowExporter({ filePath: join(dir, 'flows.json'), fieldMask, compress });
    await exporter.start();
    const c0 = cpuMs();
    const s0 = systemMs();
    const t0 = performance.now();
    const offered = await feed(flows, (f) => exporter.export(f), rate);
    await exporter.stop();
    const seconds = (performance.now() - t0) / 1000;
    const cpu = cpuMs() - c0;
    const system = systemMs() - s0;
    const s: FlowExporterStats = exporter.stats;
    const files = readdirSync(dir);
    const onDisk = files.reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
    const r: Run = {
      run: name,
      seconds: round(seconds),
      offered,
      exported: s.exported,
      lost: s.lost,
      flowsPerSecond: Math.round(s.exported / seconds),
      cpuPerTenThousandMs: round(((cpu - baselineCpuPerFlowMs * offered) / offered) * 10_000),
      cpuPct: round(((cpu - baselineCpuPerFlowMs * offered) / (seconds * 1000)) * 100, 1),
      systemCpuPct: round((system / (seconds * 1000)) * 100, 1),
      rotations: s.rotations,
      bytesPerFlow: Math.round(s.bytes / Math.max(1, s.exported)),
      files: files.length,
    };
    if (compress) {
      const gz = files.filter((f) => f.endsWith('.gz'));
      // Every backup but the last is 10 MiB less a line: compare it with what the exporter wrote to it.
      const gzBytes = gz.reduce((sum, f) => sum + statSync(join(dir, f)).size, 0);
      r.compressedRatio = gz.length === 0 ? 0 : round(gzBytes / (gz.length * 10 * 1024 * 1024), 3);
    }
    progress(`${name}: ${r.exported}/${r.offered} exported (${r.lost} lost), ${r.flowsPerSecond} flows/s, CPU ${r.cpuPerTenThousandMs} ms per 10k flows (${r.cpuPct}% of a core, ${r.systemCpuPct}% in the kernel), ${r.rotations} rotations, ${r.bytesPerFlow} B/flow, ${r.files} files (${Math.round(onDisk / 1024)} KiB) at the end${compress ? `, backups gzipped to ${r.compressedRatio} of their size` : ''}`);
    return r;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function main(): Promise<void> {
  const flows = pool(10_000);
  let fsType = '';
  try {
    fsType = execFileSync('stat', ['-f', '-c', '%T', tmpdir()], { encoding: 'utf8' }).trim();
  } catch {
    // Not reported where stat(1) is missing.
  }
  progress(`export: ${SECONDS} s per run, files in ${tmpdir()} (${fsType || 'filesystem unknown'})`);
  // What feeding costs without an exporter: subtracted from every run.
  const c0 = cpuMs();
  let sunk = 0;
  const offered = await feed(flows, () => void sunk++, 50_000);
  const baseline = (cpuMs() - c0) / offered;
  progress(`baseline (the feeding loop alone, 50k flows/s): ${round(baseline * 10_000)} ms CPU per 10k flows`);
  const runs = [await run('max', flows, 0, [], baseline), await run('50k', flows, 50_000, [], baseline), await run('50k-masked', flows, 50_000, MASK, baseline), await run('50k-gzip', flows, 50_000, [], baseline, true)];
  const max = runs[0]!;
  const targets: Target[] = [
    { name: 'flows/s exported at most, all fields', value: max.flowsPerSecond, goal: '>= 50000', met: max.flowsPerSecond >= 50_000 },
    ...runs.slice(1).map((r) => ({ name: `flows lost at 50k flows/s (${r.run})`, value: r.lost, goal: '0', met: r.lost === 0 })),
  ];
  finish('export', { tmpdir: tmpdir(), fsType, seconds: SECONDS, baselineCpuPerTenThousandMs: round(baseline * 10_000), runs }, targets);
}
