/**
 * `weft observe`: flows through the observer API, from the cluster's relay (every node of it and of
 * the clusters connected to it) or, with --node or without a relay, from the agents themselves,
 * merged by time. Filters as `hubble observe` takes them (observe-request.ts); output as compact
 * lines (default), a table, JSON lines of flows, or protobuf's JSON of each response (jsonpb).
 */
import { compareTimestamps, compileFlowFilters, compactLine, flowJson, responseJsonpb, TABLE_HEADERS, tableRow, type Flow, type GetFlowsResponse } from '@weft/observer';
import { COMMANDS } from '../command-table.js';
import { observersFor } from '../context.js';
import { parseFormat, printJson, printTable, UsageError } from '../output.js';
import { parseCommandArgs } from '../parse-command-args.js';
import { parseObserveFlags } from './observe-request.js';
import { kubeTarget } from './relay-pod.js';

const FORMATS = ['compact', 'table', 'json', 'jsonpb'] as const;
type Format = (typeof FORMATS)[number];

export async function observe(argv: string[]): Promise<void> {
  const { request, values } = parseObserveFlags(argv);
  const kube = kubeTarget(argv);
  if (kube) return (await import('./relay-pod.js')).observeInCluster(kube, kube.rest);
  // A bad filter is named here, as typed (the wire would turn an unknown verdict into VERDICT_UNKNOWN).
  compileFlowFilters(request.allow, request.deny);
  const format = (values.output ?? 'compact') as Format;
  if (!FORMATS.includes(format)) throw new UsageError(`Invalid output format ${JSON.stringify(values.output)}: use ${FORMATS.join(', ')}`);
  if (values.last !== undefined) {
    if (!/^\d{1,9}$/.test(values.last)) throw new UsageError(`Invalid --last ${JSON.stringify(values.last)}: a number of flows`);
    request.number = Number(values.last);
  } else if (values.all) request.number = Number.MAX_SAFE_INTEGER;
  request.follow = values.follow;

  const nodeFilter = (request.allow ?? []).flatMap((f) => f.node ?? []);
  const sources = observersFor({ cluster: values.cluster, server: values.server, nodes: nodeFilter });
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  // `weft observe | head`: a closed pipe ends the command, quietly.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    ac.abort();
    process.exit(0);
  });
  const rows: string[][] = [];
  const print = (r: GetFlowsResponse): void => {
    if (format === 'jsonpb') return void process.stdout.write(JSON.stringify(responseJsonpb(r)) + '\n');
    if (r.lostEvents) return void process.stderr.write(`weft: ${r.lostEvents.numEventsLost} flows lost (${r.lostEvents.source}) at ${r.lostEvents.cluster}/${r.lostEvents.node}\n`);
    if (r.nodeStatus) return void process.stderr.write(`weft: node ${r.nodeStatus.cluster}/${r.nodeStatus.node} ${r.nodeStatus.state}${r.nodeStatus.message ? `: ${r.nodeStatus.message}` : ''}\n`);
    const f = r.flow as Flow;
    if (format === 'json') process.stdout.write(JSON.stringify(flowJson(f)) + '\n');
    else if (format === 'table' && !values.follow) rows.push(tableRow(f));
    else if (format === 'table') process.stdout.write(tableRow(f).join('  ') + '\n');
    else process.stdout.write(compactLine(f) + '\n');
  };
  try {
    if (sources.length === 1 || values.follow) {
      await Promise.all(sources.map(({ client }) => client.getFlows(request, print, ac.signal)));
    } else {
      // Several agents and no relay: each answers its own history; merged by time here.
      const all: GetFlowsResponse[] = [];
      await Promise.all(sources.map(({ client }) => client.getFlows(request, (r) => all.push(r), ac.signal)));
      const flows = all.filter((r) => r.flow).sort((a, b) => compareTimestamps(a.flow!.time, b.flow!.time));
      const limit = Number(request.number ?? 0) > 0 ? Number(request.number) : flows.length;
      [...all.filter((r) => !r.flow), ...flows.slice(-limit)].forEach(print);
    }
  } finally {
    for (const { client } of sources) client.close();
  }
  if (rows.length > 0) printTable(TABLE_HEADERS, rows);
}

/** `weft observe status`: the relay's (or each agent's) ServerStatus. */
export function observeStatus(argv: string[]): Promise<void> {
  return observerInfo('status', argv);
}

/** `weft observe nodes`: GetNodes, with each node's state. */
export function observeNodes(argv: string[]): Promise<void> {
  return observerInfo('nodes', argv);
}

async function observerInfo(what: 'status' | 'nodes', argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS[`observe ${what}`], argv);
  const kube = kubeTarget(argv);
  if (kube) return (await import('./relay-pod.js')).observeInCluster(kube, [what, ...kube.rest]);
  const format = parseFormat(values.output);
  const sources = observersFor({ cluster: values.cluster, server: values.server });
  try {
    if (what === 'status') {
      const all = await Promise.all(sources.map(async ({ name, client }) => ({ name, ...(await client.serverStatus()) })));
      if (format === 'json') return printJson(all.length === 1 ? all[0] : all);
      printTable(['SERVER', 'FLOWS', 'MAX', 'SEEN', 'RATE/S', 'LOST (BPF)', 'LOST (STREAMS)', 'NODES', 'UNAVAILABLE'], all.map((s) => [s.name, s.numFlows, s.maxFlows, s.seenFlows, s.flowsRate.toFixed(1), s.lostBpfEvents, s.lostStreamFlows, s.numConnectedNodes, s.unavailableNodes.join(',') || '-']));
      return;
    }
    const nodes = (await Promise.all(sources.map(({ client }) => client.getNodes()))).flat();
    if (format === 'json') return printJson(nodes);
    printTable(['CLUSTER', 'NODE', 'STATE', 'ADDRESS', 'FLOWS', 'SEEN', 'ERROR'], nodes.map((n) => [n.cluster, n.name || '*', n.state.replace(/^NODE_/, ''), n.address, n.numFlows, n.seenFlows, n.error || '-']));
  } finally {
    for (const { client } of sources) client.close();
  }
}
