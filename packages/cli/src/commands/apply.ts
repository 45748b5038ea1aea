/** `weft apply -f FILE [--cluster NAME]` and `weft delete -f FILE`: standalone resources into a cluster's etcd. */
import { parseArgs } from 'node:util';
import { loadResourceFiles, ResourceStore, type PodSpec, type Resource } from '@weft/resources';
import { readLabState } from '@weft/lab';
import { kvFor } from '../context.js';
import { parseFormat, printJson, UsageError } from '../output.js';

export async function apply(argv: string[], remove = false): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { filename: { type: 'string', short: 'f', multiple: true }, cluster: { type: 'string' }, etcd: { type: 'string' }, 'ignore-not-found': { type: 'boolean', default: false }, output: { type: 'string', short: 'o' } },
  });
  const format = parseFormat(values.output);
  if (!values.filename?.length) throw new UsageError(`weft ${remove ? 'delete' : 'apply'} needs -f FILE`);
  const { kv, clusterName } = kvFor({ cluster: values.cluster, etcd: values.etcd });
  try {
    const resources = loadResourceFiles(values.filename, clusterName);
    const store = new ResourceStore(kv);
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
