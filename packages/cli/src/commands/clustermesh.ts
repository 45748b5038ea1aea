/** `weft clustermesh-apiserver --config FILE` (the process) and `weft clustermesh status`. */
import { parseArgs } from 'node:util';
import { ClusterMeshApiServer, loadMeshConfig, MESH_STATUS_PREFIX, type MeshStatus } from '@weft/clustermesh';
import { meshConnect, meshDisconnect } from '@weft/lab';
import { kvFor, labCluster } from '../context.js';
import { parseFormat, printJson, printTable, progress, UsageError } from '../output.js';

export async function clustermeshApiserver(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' } } });
  if (!values.config) throw new UsageError('weft clustermesh-apiserver needs --config FILE');
  const server = new ClusterMeshApiServer(loadMeshConfig(values.config));
  const stop = (): void => void server.stop().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await server.start();
  await new Promise(() => undefined);
}

export async function clustermesh(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'connect' || sub === 'disconnect') return connect(sub, rest);
  if (sub !== 'status') throw new UsageError('Usage: weft clustermesh status|connect|disconnect [--cluster NAME] [--to NAME] [-o json]');
  const { values } = parseArgs({ args: rest, options: { cluster: { type: 'string' }, etcd: { type: 'string' }, output: { type: 'string', short: 'o' } } });
  const { kv, clusterName } = kvFor({ cluster: values.cluster, etcd: values.etcd });
  try {
    const kvs = await kv.get(`${MESH_STATUS_PREFIX}${clusterName}`);
    if (!kvs) throw new UsageError(`Cluster ${clusterName} has no clustermesh-apiserver status (is it connected to any cluster?)`);
    const status = JSON.parse(kvs.value.toString()) as MeshStatus;
    if (parseFormat(values.output) === 'json') return printJson(status);
    process.stdout.write(`cluster ${status.cluster} (id ${status.clusterId}) serving on ${status.listen}; exporting ${status.exported.identities} identities, ${status.exported.nodes} nodes, ${status.exported.endpoints} endpoints to ${status.servingTo.join(', ') || 'nobody'}\n\n`);
    printTable(['REMOTE', 'ID', 'STATE', 'SYNCED', 'IDENTITIES', 'NODES', 'ENDPOINTS', 'REJECTED', 'SYNC MS', 'LAST ERROR'], status.remotes.map((r) => [r.name, r.id, r.state, Object.entries(r.synced).filter(([, v]) => v).map(([k]) => k).join(',') || '-', r.counts.identities, r.counts.nodes, r.counts.endpoints, r.rejected, r.syncMs ?? '-', r.lastError ?? '-']));
    for (const p of status.rejectedRemotes) process.stdout.write(`remote ${p.remote} rejected: ${p.reason}\n`);
  } finally {
    kv.close();
  }
}

/** `weft clustermesh connect|disconnect --cluster A --to B` for lab clusters: certificates, configuration, restarts. */
async function connect(sub: 'connect' | 'disconnect', argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { cluster: { type: 'string' }, to: { type: 'string' }, output: { type: 'string', short: 'o' } } });
  if (!values.cluster || !values.to) throw new UsageError(`Usage: weft clustermesh ${sub} --cluster A --to B`);
  const a = labCluster(values.cluster);
  const b = labCluster(values.to);
  if (sub === 'connect') await meshConnect(a, b, progress);
  else await meshDisconnect(a, b, progress);
  if (parseFormat(values.output) === 'json') printJson({ [sub === 'connect' ? 'connected' : 'disconnected']: [a.name, b.name] });
  else process.stdout.write(`${a.name} and ${b.name} ${sub}ed\n`);
}
