/** `weft identity list|get|gc [--cluster NAME | --etcd HOST:PORT]`: inspect a cluster's identities. */
import { parseArgs } from 'node:util';
import { KvClient } from '@weft/kvstore';
import { labEtcdClient } from '@weft/lab';
import { labCluster } from '../context.js';
import { IdentityCache, IdentityGarbageCollector, IdentityLayout, clusterIdOf, parseIdentity, validateClusterId } from '@weft/identity';
import { parseFormat, printJson, printTable, UsageError } from '../output.js';

export async function identity(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      etcd: { type: 'string' },
      cluster: { type: 'string' },
      'cluster-id': { type: 'string' },
      output: { type: 'string', short: 'o' },
    },
  });
  const format = parseFormat(values.output);
  // A lab cluster by name (default: the lab's first), or any etcd with --etcd.
  const lab = values.etcd ? undefined : labCluster(values.cluster);
  const clusterId = validateClusterId(Number(values['cluster-id'] ?? lab?.id ?? 1), 'list identities');
  const retry = { maxAttempts: 3, initialMs: 100, maxMs: 500 };
  const client = values.etcd ? new KvClient({ endpoints: [values.etcd], retry }) : labEtcdClient(lab!, { retry });
  try {
    switch (sub) {
      case 'list':
      case 'get': {
        // Probe first: an unreachable etcd is a prompt typed error, not a watch retrying forever.
        await client.revision();
        const cache = new IdentityCache(client, { clusterId }).start();
        await cache.waitSynced();
        await cache.stop();
        let rows = [...cache.entries()].sort((a, b) => a[0] - b[0]);
        if (sub === 'get') {
          const id = parseIdentity(positionals[0] ?? '');
          if (id === undefined) throw new UsageError(`Invalid identity ${JSON.stringify(positionals[0] ?? '')}: expected a decimal number`);
          rows = rows.filter(([i]) => i === id);
          if (rows.length === 0) throw new UsageError(`Identity ${id} not found in cluster ${clusterId}`);
        }
        const out = rows.map(([id, labels]) => ({ id, clusterId: clusterIdOf(id), labels: labels.toStrings() }));
        if (format === 'json') printJson({ identities: out, invalid: Object.fromEntries(cache.invalid) });
        else printTable(['ID', 'CLUSTER', 'LABELS'], out.map((r) => [r.id, r.clusterId, r.labels.join(' ')]));
        return;
      }
      case 'gc': {
        const gc = new IdentityGarbageCollector({ client, layout: new IdentityLayout() });
        const round = await gc.runOnce();
        if (format === 'json') printJson(round);
        else process.stdout.write(`marked ${round.marked}, deleted ${round.deleted.length}, alive ${round.alive} (run twice: deletion needs two rounds)\n`);
        return;
      }
      default:
        throw new UsageError(`Unknown identity command ${JSON.stringify(sub ?? '')}: use list, get ID or gc`);
    }
  } finally {
    client.close();
  }
}
