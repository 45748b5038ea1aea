/**
 * `weft apply -f FILE [--cluster NAME]` and `weft delete -f FILE`: standalone resources into a cluster's etcd.
 * `--max-txn-ops N` is the etcd's --max-txn-ops (default: 4096 for a lab cluster, whose etcd takes that; else
 * 128, etcd's default; the chart's etcd takes 1024): a request that fits is one transaction, a larger one is
 * checked whole and then written in transactions of that size.
 */
import { loadResourceFiles, ResourceStore, type PodSpec, type Resource } from '@weft/resources';
import { readLabState } from '@weft/lab';
import { COMMANDS } from '../command-table.js';
import { kvFor } from '../context.js';
import { parseFormat, printJson, UsageError } from '../output.js';
import { parseCommandArgs, type OptionValues } from '../parse-command-args.js';

export async function apply(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS.apply, argv);
  return run({ ...values, 'ignore-not-found': false }, false);
}

export async function deleteResources(argv: string[]): Promise<void> {
  return run(parseCommandArgs(COMMANDS.delete, argv).values, true);
}

/** Apply's options are delete's but --ignore-not-found. */
async function run(values: OptionValues<typeof COMMANDS.delete.options>, remove: boolean): Promise<void> {
  const format = parseFormat(values.output);
  const given = values['max-txn-ops'] === undefined ? undefined : Number(values['max-txn-ops']);
  if (given !== undefined && !(Number.isInteger(given) && given >= 2)) throw new UsageError(`--max-txn-ops ${JSON.stringify(values['max-txn-ops'])} is not an integer of at least 2 (the etcd's --max-txn-ops)`);
  if (!values.filename?.length) throw new UsageError(`weft ${remove ? 'delete' : 'apply'} needs -f FILE`);
  const { kv, clusterName, maxTxnOps: known } = kvFor({ cluster: values.cluster, etcd: values.etcd });
  const maxTxnOps = given ?? known;
  try {
    const resources = loadResourceFiles(values.filename, clusterName);
    const store = new ResourceStore(kv, maxTxnOps !== undefined ? { maxTxnOps } : {});
    if (remove) {
      const deleted = await store.delete(resources, { ignoreNotFound: values['ignore-not-found'] });
      if (format === 'json') printJson({ deleted });
      else for (const d of deleted) process.stdout.write(`${d} deleted\n`);
      return;
    }
    schedule(resources, clusterName);
    const results = await store.apply(resources);
    if (format === 'json') printJson({ applied: results });
    else for (const r of results) process.stdout.write(`${r.ref} ${r.action}\n`);
  } finally {
    kv.close();
  }
}

/** In the lab, a Pod without spec.nodeName goes to a node chosen by a stable hash of its name. */
function schedule(resources: Resource[], cluster: string): void {
  const c = readLabState()?.clusters.find((x) => x.name === cluster);
  if (!c) return;
  for (const r of resources) {
    if (r.kind !== 'Pod') continue;
    const spec = r.spec as PodSpec;
    if (spec.nodeName) {
      if (!c.nodes.some((n) => n.name === spec.nodeName)) throw new UsageError(`Pod ${r.metadata.namespace}/${r.metadata.name}: spec.nodeName ${JSON.stringify(spec.nodeName)} is not a node of cluster ${cluster} (${c.nodes.map((n) => n.name).join(', ')})`);
      continue;
    }
    let h = 0;
    for (const ch of `${r.metadata.namespace}/${r.metadata.name}`) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
    spec.nodeName = c.nodes[h % c.nodes.length]!.name;
  }
}
