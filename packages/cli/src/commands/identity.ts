/** `weft identity list|get ID|gc [--cluster NAME | --etcd HOST:PORT]`: inspect a cluster's identities. */
import { KvClient } from '@weft/kvstore';
import { labEtcdClient } from '@weft/lab';
import { IdentityCache, IdentityGarbageCollector, IdentityLayout, clusterIdOf, parseIdentity, validateClusterId } from '@weft/identity';
import { COMMANDS } from '../command-table.js';
import { labCluster } from '../context.js';
import { parseFormat, printJson, printTable, UsageError, type OutputFormat } from '../output.js';
import { parseCommandArgs } from '../parse-command-args.js';

export async function identityList(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['identity list'], argv);
  return show(values, parseFormat(values.output));
}

export async function identityGet(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(COMMANDS['identity get'], argv);
  const format = parseFormat(values.output);
  const id = parseIdentity(positionals[0]!);
  if (id === undefined) throw new UsageError(`Invalid identity ${JSON.stringify(positionals[0])}: expected a decimal number`);
  return show(values, format, id);
}

export async function identityGc(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['identity gc'], argv);
  const format = parseFormat(values.output);
  const { client } = connect(values);
  try {
    const gc = new IdentityGarbageCollector({ client, layout: new IdentityLayout() });
    const round = await gc.runOnce();
    if (format === 'json') printJson(round);
    else process.stdout.write(`marked ${round.marked}, deleted ${round.deleted.length}, alive ${round.alive} (run twice: deletion needs two rounds)\n`);
  } finally {
    client.close();
  }
}

/** A lab cluster by name (default: the lab's first), or any etcd with --etcd. */
function connect(values: { cluster: string | undefined; etcd: string | undefined; 'cluster-id'?: string | undefined }): { client: KvClient; clusterId: number } {
  const lab = values.etcd ? undefined : labCluster(values.cluster);
  const clusterId = validateClusterId(Number(values['cluster-id'] ?? lab?.id ?? 1), 'list identities');
  const retry = { maxAttempts: 3, initialMs: 100, maxMs: 500 };
  return { client: values.etcd ? new KvClient({ endpoints: [values.etcd], retry }) : labEtcdClient(lab!, { retry }), clusterId };
}

/** Every identity of the cluster, or only `only`. */
async function show(values: { cluster: string | undefined; etcd: string | undefined; 'cluster-id': string | undefined }, format: OutputFormat, only?: number): Promise<void> {
  const { client, clusterId } = connect(values);
  try {
    // Probe first: an unreachable etcd is a prompt typed error, not a watch retrying forever.
    await client.revision();
    const cache = new IdentityCache(client, { clusterId }).start();
    await cache.waitSynced();
    await cache.stop();
    let rows = [...cache.entries()].sort((a, b) => a[0] - b[0]);
    if (only !== undefined) {
      rows = rows.filter(([i]) => i === only);
      if (rows.length === 0) throw new UsageError(`Identity ${only} not found in cluster ${clusterId}`);
    }
    const out = rows.map(([id, labels]) => ({ id, clusterId: clusterIdOf(id), labels: labels.toStrings() }));
    if (format === 'json') printJson({ identities: out, invalid: Object.fromEntries(cache.invalid) });
    else printTable(['ID', 'CLUSTER', 'LABELS'], out.map((r) => [r.id, r.clusterId, r.labels.join(' ')]));
  } finally {
    client.close();
  }
}
