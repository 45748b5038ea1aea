/**
 * `weft policy suggest`: the policy advisor (@weft/observer/advisor) over the flows a cluster's
 * nodes observed, written as YAML documents `weft apply -f` takes (or a JSON List).
 *
 * With --context, it runs in the chart's relay pod of that cluster (relay-pod.ts).
 *
 * It asks the cluster's relay (else its agents) for every FORWARDED and AUDIT flow its own nodes
 * hold (since --since), and the drops of connections arriving at a pod, not only those of --namespace: the advisor places and names a namespace's
 * workloads among every workload it saw, so `--namespace NS` writes exactly the NS part of what the
 * whole cluster's suggestion would be. What the advisor cannot admit, and flows the observers lost,
 * go to stderr as warnings: the policies would deny those connections.
 */
import { parseSince, timestampFromMs, type Flow, type GetFlowsRequestInput } from '@weft/observer';
import { suggestPolicies } from '@weft/observer/advisor';
import { stringifyYamlDocuments } from '@weft/resources';
import { COMMANDS } from '../command-table.js';
import { labCluster, observersFor } from '../context.js';
import { printJson, progress, UsageError } from '../output.js';
import { parseCommandArgs } from '../parse-command-args.js';
import { kubeTarget } from './relay-pod.js';

const NAMESPACE_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export async function policySuggest(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['policy suggest'], argv);
  const kube = kubeTarget(argv);
  if (kube) return (await import('./relay-pod.js')).policySuggestInCluster(kube, kube.rest);
  const format = values.output ?? 'yaml';
  if (format !== 'yaml' && format !== 'json') throw new UsageError(`Invalid output format ${JSON.stringify(format)}: use yaml or json`);
  const request: GetFlowsRequestInput = { number: Number.MAX_SAFE_INTEGER };
  if (values.since !== undefined) {
    const ms = parseSince(values.since);
    if (ms === undefined) throw new UsageError(`Invalid --since ${JSON.stringify(values.since)}: use a duration (30s, 5m, 2h, 1d) or an RFC 3339 time`);
    request.since = timestampFromMs(ms);
  }
  if (values.namespace !== undefined && !NAMESPACE_RE.test(values.namespace)) throw new UsageError(`Invalid --namespace ${JSON.stringify(values.namespace)}: not a namespace name`);
  const limit = values['world-cidr-limit'];
  if (limit !== undefined && !/^\d{1,6}$/.test(limit)) throw new UsageError(`Invalid --world-cidr-limit ${JSON.stringify(limit)}: a number of addresses`);
  // The lab names its cluster; a --server's flows name theirs (the advisor refuses several without --cluster).
  const cluster = values.server !== undefined ? values.cluster : labCluster(values.cluster).name;
  // Drops where a connection reaches its server too: the advisor admits no egress for a connection refused there.
  const seenBy = cluster !== undefined ? { cluster: [cluster] } : {};
  request.allow = [{ verdict: ['FORWARDED', 'AUDIT'], ...seenBy }, { verdict: ['DROPPED'], trafficDirection: ['INGRESS'], ...seenBy }];

  const sources = observersFor({ cluster: values.cluster, server: values.server });
  const flows: Flow[] = [];
  const lost: string[] = [];
  try {
    await Promise.all(
      sources.map(({ client }) =>
        client.getFlows(request, (r) => {
          if (r.flow) flows.push(r.flow);
          else if (r.lostEvents) lost.push(`${r.lostEvents.numEventsLost} flows lost (${r.lostEvents.source}) at ${r.lostEvents.cluster}/${r.lostEvents.node}`);
          else if (r.nodeStatus) lost.push(`node ${r.nodeStatus.cluster}/${r.nodeStatus.node} ${r.nodeStatus.state}${r.nodeStatus.message ? `: ${r.nodeStatus.message}` : ''}`);
        }),
      ),
    );
  } finally {
    for (const { client } of sources) client.close();
  }
  const s = suggestPolicies(flows, {
    ...(cluster !== undefined ? { cluster } : {}),
    ...(values.namespace !== undefined ? { namespaces: [values.namespace] } : {}),
    ...(limit !== undefined ? { worldCidrLimit: Number(limit) } : {}),
  });
  for (const l of lost) progress(`weft: ${l}: connections in those flows are not in the suggestion`);
  for (const w of s.warnings) progress(`weft: ${w}`);
  progress(`weft: ${s.stats.flows} flows of ${s.cluster ?? 'no cluster'}, ${s.stats.connections} connections of ${s.stats.workloads} workloads: ${s.documents.length} policies`);
  if (format === 'json') printJson({ apiVersion: 'v1', kind: 'List', items: s.documents });
  else process.stdout.write(stringifyYamlDocuments(s.documents));
}
