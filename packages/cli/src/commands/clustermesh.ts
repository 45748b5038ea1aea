/** `weft clustermesh status` and `weft clustermesh connect|disconnect`. */
import { kubeConnect, kubeDisconnect, loadMeshConfig, MESH_STATUS_PREFIX, readEtcdTls, type MeshStatus } from '@weft/clustermesh';
import { KvClient } from '@weft/kvstore';
import { meshConnect, meshDisconnect } from '@weft/lab';
import { COMMANDS } from '../command-table.js';
import { kvFor, labCluster } from '../context.js';
import { parseFormat, printJson, printTable, progress, UsageError } from '../output.js';
import { parseCommandArgs } from '../parse-command-args.js';

export async function clustermeshStatus(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['clustermesh status'], argv);
  const { kv, clusterName } = values.config ? kvFromMeshConfig(values.config) : kvFor({ cluster: values.cluster, etcd: values.etcd });
  try {
    const kvs = await kv.get(`${MESH_STATUS_PREFIX}${clusterName}`);
    if (!kvs) throw new UsageError(`Cluster ${clusterName} has no clustermesh-apiserver status (is it connected to any cluster?)`);
    const status = JSON.parse(kvs.value.toString()) as MeshStatus;
    if (parseFormat(values.output) === 'json') return printJson(status);
    process.stdout.write(`cluster ${status.cluster} (id ${status.clusterId}) serving on ${status.listen}; exporting ${status.exported.identities} identities, ${status.exported.nodes} nodes, ${status.exported.endpoints} endpoints to ${status.servingTo.join(', ') || 'nobody'}\n\n`);
    // Fields added later are read with care: the status may come from an older apiserver.
    const sum = (r: Partial<Record<string, number>> | undefined): number => Object.values(r ?? {}).reduce<number>((a, b) => a + (b ?? 0), 0);
    printTable(['REMOTE', 'ID', 'STATE', 'SYNCED', 'IDENTITIES', 'NODES', 'ENDPOINTS', 'PENDING', 'REJECTED', 'OVER CAP', 'SYNC MS', 'LAST ERROR'], status.remotes.map((r) => [r.name, r.id, r.state, Object.entries(r.synced).filter(([, v]) => v).map(([k]) => k).join(',') || '-', r.counts.identities, r.counts.nodes, r.counts.endpoints, r.pendingEndpoints ?? '-', r.rejected, r.overLimit ? sum(r.overLimit) : '-', r.syncMs ?? '-', r.lastError ?? '-']));
    for (const r of status.remotes) {
      if (r.rejected === 0) continue;
      const perKind = Object.entries(r.rejectedByKind ?? {}).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}${r.overLimit?.[k as keyof typeof r.overLimit] ? ` (${r.overLimit[k as keyof typeof r.overLimit]} over the cap of ${r.limits?.[k as keyof typeof r.limits]})` : ''}`);
      process.stdout.write(`\nremote ${r.name}: ${r.rejected} records rejected${perKind.length ? `: ${perKind.join(', ')}` : ''}${r.bytes !== undefined ? `; holding ${r.bytes} of ${r.limits?.bytes} bytes` : ''}\n  last: ${r.lastRejection ?? '-'}\n`);
    }
    for (const p of status.rejectedRemotes) process.stdout.write(`remote ${p.remote} rejected: ${p.reason}\n`);
    for (const b of status.serving ?? []) if (b.pendingKeys > 0 || b.stalledSince) process.stdout.write(`serving ${b.peer}: ${b.pendingKeys} changes waiting, ${b.inFlightBytes} bytes in flight${b.stalledSince ? `, not reading since ${b.stalledSince}` : ''}\n`);
    if (status.stalledPeers) process.stdout.write(`${status.stalledPeers} streams reset because their reader took nothing for too long\n`);
    const unexported = status.unexportedEndpoints;
    if (unexported && unexported.count > 0) {
      process.stdout.write(`${unexported.count} local endpoint records not exported (not their node's to claim), e.g.:\n`);
      for (const e of unexported.examples) process.stdout.write(`  ${e.key}: ${e.reason}\n`);
    }
  } finally {
    kv.close();
  }
}

/**
 * `--config FILE`: the clustermesh-apiserver's own configuration (in its pod, where the chart
 * mounts it): its cluster, its etcd endpoints and, with the chart's etcd TLS, its client certificate.
 */
function kvFromMeshConfig(path: string): { kv: KvClient; clusterName: string } {
  const config = loadMeshConfig(path);
  const tls = readEtcdTls(config);
  return { kv: new KvClient({ endpoints: config.etcd, retry: { maxAttempts: 3, initialMs: 100, maxMs: 500 }, ...(tls ? { tls } : {}) }), clusterName: config.cluster };
}

export async function clustermeshConnect(argv: string[]): Promise<void> {
  return connect('connect', argv);
}

export async function clustermeshDisconnect(argv: string[]): Promise<void> {
  return connect('disconnect', argv);
}

/**
 * `weft clustermesh connect|disconnect`: with --context, two Kubernetes clusters running the chart
 * (packages/clustermesh/src/kube-connect.ts); with --cluster, two lab clusters: certificates,
 * configuration, restarts.
 */
async function connect(sub: 'connect' | 'disconnect', argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS[`clustermesh ${sub}`], argv);
  const format = parseFormat(values.output);
  const see = `(see weft clustermesh ${sub} --help)`;
  if (values.context !== undefined || values['destination-context'] !== undefined) {
    if (!values.context || !values['destination-context']) throw new UsageError(`weft clustermesh ${sub} needs both --context and --destination-context ${see}`);
    const timeout = Number(values.timeout);
    if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError(`Invalid --timeout ${JSON.stringify(values.timeout)}: give seconds, e.g. 300`);
    const run = sub === 'connect' ? kubeConnect : kubeDisconnect;
    const result = await run({
      context: values.context, destinationContext: values['destination-context'], wait: values.wait ?? false, timeoutMs: timeout * 1000, progress,
      ...(values.kubeconfig !== undefined ? { kubeconfig: values.kubeconfig } : {}), ...(values.namespace !== undefined ? { namespace: values.namespace } : {}), ...(values.release !== undefined ? { release: values.release } : {}),
    });
    if (format === 'json') return printJson(result);
    printTable(['CONTEXT', 'CLUSTER', 'ID', 'ADDRESS', 'REMOTE', 'SECRET', 'KEY', 'CHANGE', 'RESTARTED'], result.clusters.map((c) => [c.context, c.cluster, c.id, c.address ?? '-', c.remote, `${c.namespace}/${c.secret}`, c.key, c.change, c.restarted ? (result.rolledOut ? 'rolled out' : 'yes') : 'no']));
    return;
  }
  if (!values.cluster || !values.to) throw new UsageError(`weft clustermesh ${sub} needs --cluster A --to B (lab clusters) or --context A --destination-context B (Kubernetes) ${see}`);
  const a = labCluster(values.cluster);
  const b = labCluster(values.to);
  if (sub === 'connect') await meshConnect(a, b, progress);
  else await meshDisconnect(a, b, progress);
  if (format === 'json') printJson({ [sub === 'connect' ? 'connected' : 'disconnected']: [a.name, b.name] });
  else process.stdout.write(`${a.name} and ${b.name} ${sub}ed\n`);
}
