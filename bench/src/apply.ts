/**
 * Benchmark `apply`: `weft apply -f` of one file of 20,000 documents (Namespaces, Pods, Services,
 * NetworkPolicies in rotation), side by side in one run:
 *  - loading: the yaml package alone (parse and convert, as a kubectl-like client does), Weft's
 *    parse (the same plus each document's line), and Weft's whole load (strict UTF-8 decoding,
 *    parse, validation);
 *  - line lookup alone, the way it was (counting the newlines before each document) and the way it
 *    is (yaml's LineCounter), on the first 1,000, 2,000 and 4,000 documents: the old one grows with
 *    the square of the count, so it is not run on all 20,000 (about 2 minutes) unless
 *    WEFT_BENCH_APPLY_OLD_FULL=1;
 *  - storing: the 20,000 objects into one real etcd (Debian etcd-server, fsync on) whose
 *    --max-txn-ops is 1024 (the chart's), in transactions of 128 (etcd's default) and of 1024
 *    operations, then re-applied unchanged and deleted.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LineCounter, parseAllDocuments } from 'yaml';
import { EtcdProcess, KvClient } from '@weft/kvstore';
import { loadResourceFiles, parseYamlDocuments, ResourceStore } from '@weft/resources';
import { finish, progress, round, type Target } from './report.js';

const DOCUMENTS = Number(process.env.WEFT_BENCH_DOCUMENTS ?? 20_000);
const OLD_FULL = process.env.WEFT_BENCH_APPLY_OLD_FULL === '1';

function documents(n: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    if (i % 4 === 0) out.push(`apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns-${i}\n  labels:\n    team: t${i % 7}\n`);
    else if (i % 4 === 1) out.push(`apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-${i}\n  namespace: demo\n  labels:\n    app: web-${i % 50}\nspec:\n  containers:\n    - name: main\n      command: ["weft", "echo-server", "--tcp", "8080"]\n`);
    else if (i % 4 === 2) out.push(`apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-${i}\n  namespace: demo\nspec:\n  selector:\n    app: web-${i % 50}\n  ports:\n    - port: 80\n      targetPort: 8080\n`);
    else out.push(`apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: allow-${i}\n  namespace: demo\nspec:\n  podSelector:\n    matchLabels:\n      app: web-${i % 50}\n  ingress:\n    - from:\n        - podSelector:\n            matchLabels:\n              role: client\n      ports:\n        - port: 8080\n          protocol: TCP\n`);
  }
  return out.join('---\n');
}

function seconds<T>(fn: () => T): { s: number; value: T } {
  const t0 = performance.now();
  const value = fn();
  return { s: round((performance.now() - t0) / 1000, 3), value };
}

async function secondsAsync<T>(fn: () => Promise<T>): Promise<{ s: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { s: round((performance.now() - t0) / 1000, 3), value };
}

/** The line lookup as it was before issue 12: the newlines before each document, counted from the start. */
function oldLines(text: string, offsets: readonly number[]): number[] {
  return offsets.map((o) => text.slice(0, o).split('\n').length);
}

/** As it is: the parser's line starts, searched. The parse that records them is timed apart. */
function newLines(text: string, offsets: readonly number[]): number[] {
  const lines = new LineCounter();
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines.addNewLine(i + 1);
  lines.lineStarts.unshift(0);
  return offsets.map((o) => lines.linePos(o).line);
}

export async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-apply-'));
  const results: Record<string, unknown> = { documents: DOCUMENTS };
  const targets: Target[] = [];
  try {
    const file = join(dir, 'resources.yaml');
    writeFileSync(file, documents(DOCUMENTS));
    const text = readFileSync(file, 'utf8');
    results.fileBytes = Buffer.byteLength(text);
    progress(`${DOCUMENTS} documents, ${results.fileBytes} bytes`);

    // Warm the parser up, then two interleaved rounds, best of each (one run shares two cores with etcd's neighbours).
    parseYamlDocuments(documents(1000), 'warm-up');
    let yamlOnly = { s: Infinity, value: [] as unknown[] };
    let parse = { s: Infinity, value: [] as unknown[] };
    let load = { s: Infinity, value: [] as ReturnType<typeof loadResourceFiles> };
    for (let round = 1; round <= 2; round++) {
      const y = seconds(() => parseAllDocuments(text, { uniqueKeys: true }).map((d) => d.toJS({ maxAliasCount: 100 }) as unknown));
      const p = seconds(() => parseYamlDocuments(text, file) as unknown[]);
      const l = seconds(() => loadResourceFiles([file], 'bench'));
      if (y.s < yamlOnly.s) yamlOnly = y;
      if (p.s < parse.s) parse = p;
      if (l.s < load.s) load = l;
      progress(`round ${round}: yaml package alone ${y.s} s, Weft parse with lines ${p.s} s, Weft load (UTF-8, parse, validate) ${l.s} s`);
    }
    results.load = { yamlPackageAloneS: yamlOnly.s, weftParseS: parse.s, weftLoadS: load.s, weftLoadOverYaml: round(load.s / yamlOnly.s, 2) };
    targets.push({ name: `load ${DOCUMENTS} documents (s)`, value: load.s, goal: '< 10', met: load.s < 10 });

    // Line lookup alone, on the document offsets the parser reports.
    const offsets = parseAllDocuments(text).map((d) => (d.contents as { range?: number[] } | null)?.range?.[0] ?? d.range[0]);
    const lookups: Array<Record<string, number>> = [];
    for (const n of [1000, 2000, 4000, ...(OLD_FULL ? [DOCUMENTS] : [])].filter((x) => x <= DOCUMENTS)) {
      const end = n < offsets.length ? offsets[n]! : text.length;
      const part = text.slice(0, end);
      const o = offsets.slice(0, n);
      const before = seconds(() => oldLines(part, o));
      const now = seconds(() => newLines(part, o));
      if (before.value.some((l, i) => l !== now.value[i])) throw new Error(`line lookups disagree at ${n} documents`);
      lookups.push({ documents: n, oldS: before.s, newS: now.s });
      progress(`line lookup of ${n} documents: old ${before.s} s, new ${now.s} s`);
    }
    const full = seconds(() => newLines(text, offsets));
    lookups.push({ documents: DOCUMENTS, newS: full.s });
    results.lineLookup = lookups;

    progress('starting etcd (--max-txn-ops 1024)');
    const etcd = await EtcdProcess.start({ name: 'bench-apply', extraArgs: ['--max-txn-ops', '1024', '--quota-backend-bytes', String(2 * 1024 ** 3)] });
    const kv = new KvClient({ endpoints: [etcd.endpoint] });
    try {
      const store: Record<string, unknown> = {};
      for (const maxTxnOps of [128, 1024]) {
        let txns = 0;
        const counting = Object.create(kv) as KvClient;
        counting.txn = (action, request, options) => {
          if (!action.startsWith('read')) txns++;
          return kv.txn(action, request, options);
        };
        const s = new ResourceStore(counting, { maxTxnOps });
        const apply = await secondsAsync(() => s.apply(load.value));
        const writeTxns = txns;
        const again = await secondsAsync(() => s.apply(load.value));
        const del = await secondsAsync(() => s.delete(load.value));
        if (apply.value.length !== DOCUMENTS || !again.value.every((r) => r.action === 'unchanged') || del.value.length !== DOCUMENTS) throw new Error('the store did not apply, re-apply and delete every object');
        store[`maxTxnOps${maxTxnOps}`] = { applyS: apply.s, writeTransactions: writeTxns, reapplyUnchangedS: again.s, deleteS: del.s };
        progress(`store, transactions of ${maxTxnOps}: apply ${apply.s} s in ${writeTxns} write transactions, re-apply ${again.s} s, delete ${del.s} s`);
        if (maxTxnOps === 128) {
          const total = round(load.s + apply.s, 3);
          results.applyTotalS = total;
          targets.push({ name: `weft apply of ${DOCUMENTS} documents, load and store, etcd default --max-txn-ops (s)`, value: total, goal: '< 30', met: total < 30 });
        }
      }
      results.store = store;
    } finally {
      kv.close();
      await etcd.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  finish('apply', results, targets);
}
