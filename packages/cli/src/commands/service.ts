/**
 * `weft service list`: each service's ClusterIP and backends, per cluster, as
 * a node's agent resolved and programmed them (global services included).
 * Every lab cluster unless --cluster; -o json for scripts.
 *
 * `weft service resync`: each chosen node's agent resolves every service again
 * and writes what differs (changes are otherwise applied one at a time).
 */
import { AgentClient } from '@weft/agent';
import { agentSocket, readLabState } from '@weft/lab';
import { COMMANDS } from '../command-table.js';
import { agentsFor } from '../context.js';
import { parseFormat, printJson, printTable, UsageError } from '../output.js';
import { parseCommandArgs } from '../parse-command-args.js';

export async function serviceResync(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['service resync'], argv);
  const format = parseFormat(values.output);
  const rows = await Promise.all(agentsFor(values).map(async ({ node, client }) => ({ node, ...(await client.resyncServices()) })));
  if (format === 'json') return printJson(rows);
  printTable(['NODE', 'RESYNC'], rows.map((r) => [r.node, r.scheduled ? 'scheduled' : 'not scheduled']));
}

export async function serviceList(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['service list'], argv);
  const format = parseFormat(values.output);
  const targets: Array<{ cluster: string; client: AgentClient }> = [];
  if (values.agent || values.cluster || values.node) {
    const [first] = agentsFor(values);
    targets.push({ cluster: values.cluster ?? 'default', client: first!.client });
  } else {
    const state = readLabState();
    if (!state) throw new UsageError('No lab is running (start one with `weft lab up`), and no --agent was given');
    for (const c of state.clusters) targets.push({ cluster: c.name, client: new AgentClient(agentSocket(c.nodes[0]!)) });
  }
  const rows = (await Promise.all(targets.map(async ({ cluster, client }) => (await client.services()).map((s) => ({ cluster, ...s }))))).flat();
  if (format === 'json') return printJson(rows);
  printTable(['CLUSTER', 'SERVICE', 'CLUSTER-IP', 'PORTS', 'GLOBAL', 'BACKENDS IN USE', 'AVAILABLE PER CLUSTER'], rows.map((r) => [
    r.cluster,
    `${r.namespace}/${r.name}`,
    r.clusterIP,
    r.frontends.map((f) => `${f.port}/${f.protocol}`).join(','),
    r.global ? `yes (affinity ${r.affinity}${r.shared ? '' : ', not shared'})` : 'no',
    [...new Set(r.frontends.flatMap((f) => f.backends.map((b) => `${b.cluster}:${b.ip}:${b.port}`)))].join(' ') || '-',
    Object.entries(r.available).map(([c, list]) => `${c}=${list.length}`).join(' ') || '-',
  ]));
}
