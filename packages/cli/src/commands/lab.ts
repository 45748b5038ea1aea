/** `weft lab up|down|exec|status`, and the lab's own processes (`forward`, `node-runtime`, `kube-proxy`). */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { applyAndWait, demoResources, forward, labDown as removeLab, labUp as buildLab, parseForwardAddress, podNetnsName, readLabState, runNodeRuntime, syncServices, WORLD_IP, type NodeRuntimeSpec, type LabSpec } from '@weft/lab';
import { createLogger } from '@weft/common';
import { netns } from '@weft/net';
import { COMMANDS } from '../command-table.js';
import { parsePodRef, labCluster } from '../context.js';
import { parseFormat, printJson, printTable, progress, UsageError } from '../output.js';
import { parseCommandArgs } from '../parse-command-args.js';

export async function labDown(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['lab down'], argv);
  const r = await removeLab(progress);
  if (parseFormat(values.output) === 'json') printJson(r);
  else process.stdout.write(`lab removed (${r.namespaces} namespaces)\n`);
}

export async function labStatus(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['lab status'], argv);
  const state = readLabState();
  if (parseFormat(values.output) === 'json') return printJson(state ?? null);
  if (!state) return void process.stdout.write('no lab\n');
  printTable(['CLUSTER', 'ID', 'NODE', 'NODE IP', 'POD CIDR'], state.clusters.flatMap((c) => c.nodes.map((n) => [c.name, c.id, n.name, n.ip, n.podCidr])));
}

export async function labUp(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['lab up'], argv);
  const format = parseFormat(values.output);
  const nodes = Number(values.nodes);
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 8) throw new UsageError(`Invalid --nodes ${JSON.stringify(values.nodes)}: use 1-8`);
  if (values.routing !== 'vxlan' && values.routing !== 'geneve' && values.routing !== 'direct') throw new UsageError(`Invalid --routing ${JSON.stringify(values.routing)}: use vxlan, geneve (kernels with Geneve) or direct`);
  const count = Number(values.clusters);
  const names = values.names ? values.names.split(',') : Array.from({ length: count }, (_, i) => `c${i + 1}`);
  if (!Number.isInteger(count) || count < 1 || count > 4 || names.length !== count && values.names === undefined) throw new UsageError(`Invalid --clusters ${JSON.stringify(values.clusters)}: use 1-4`);
  for (const n of names) if (!/^[a-z][a-z0-9]{0,7}$/.test(n)) throw new UsageError(`Invalid cluster name ${JSON.stringify(n)}: 1-8 lowercase letters and digits, starting with a letter`);
  if (values.encryption !== 'wireguard' && values.encryption !== 'ipsec' && values.encryption !== 'off') throw new UsageError(`Invalid --encryption ${JSON.stringify(values.encryption)}: use wireguard (the default), ipsec (needs ESP in the kernel) or off`);
  const spec: LabSpec = { clusters: names.map((name, i) => ({ name, id: i + 1 })), nodes, routing: values.routing, connect: !values['no-connect'], encryption: values.encryption, kubernetes: values.kubernetes };
  const t0 = Date.now();
  const step = (s: string): void => progress(`[lab ${((Date.now() - t0) / 1000).toFixed(1)}s] ${s}`);
  const state = await buildLab(spec, step);
  // With --kubernetes, pods are the API server's: the demo pods come with the kubelet's pod networking (issue 14).
  if (!values['no-demo'] && !spec.kubernetes) {
    for (const c of state.clusters) {
      step(`cluster ${c.name}: starting demo pods`);
      await applyAndWait(c, demoResources(c));
    }
  }
  step('ready');
  if (format === 'json') return printJson(state);
  const c = state.clusters[0]!;
  process.stdout.write(`\nWeft lab is up: ${state.clusters.length} cluster(s), ${nodes} node(s) each, ${spec.routing} routing.\n\n`);
  printTable(['CLUSTER', 'NODE', 'NODE IP', 'POD CIDR'], state.clusters.flatMap((x) => x.nodes.map((n) => [x.name, n.name, n.ip, n.podCidr])));
  process.stdout.write(`\nDemo pods (namespace demo): echo-1..echo-${nodes} (TCP 8080, UDP 9090, HTTP 8081) and client.\n` +
    `The world host is ${WORLD_IP} (same ports).\n\nTry:\n` +
    `  npx weft endpoint list\n` +
    `  npx weft lab exec ${c.name}/demo/client -- ping -c1 <echo-2 IP>\n` +
    `  npx weft connectivity test\n` +
    `  npx weft observe --follow\n` +
    `  npx weft lab down\n`);
  if (state.kubernetes) {
    process.stdout.write(`\nKubernetes (weft installed with helm): ${Object.values(state.kubernetes).map((k) => `kubectl --context ${k.context} get nodes`).join('; ')}\n`);
  }
}

/** `weft lab forward --listen A --to B`: the lab's loopback bridge to a cluster's API server (forward.ts). */
export async function labForward(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['lab forward'], argv);
  if (!values.listen || !values.to) throw new UsageError('Usage: weft lab forward --listen unix:/path|tcp:IP:port --to unix:/path|tcp:IP:port');
  const log = createLogger({ component: 'lab-forward' });
  const server = await forward(parseForwardAddress(values.listen, '--listen'), parseForwardAddress(values.to, '--to'), log);
  await new Promise<void>((resolve) => {
    for (const s of ['SIGTERM', 'SIGINT'] as const) process.once(s, () => server.close(() => resolve()));
  });
}

/** `weft lab node-runtime --spec FILE`: a lab node's containerd and kubelet (kube/node-runtime.ts), run by the lab in the node's namespaces. */
export async function labNodeRuntime(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['lab node-runtime'], argv);
  if (!values.spec) throw new UsageError('Usage: weft lab node-runtime --spec FILE (in the node\'s network namespace and a new mount namespace)');
  const spec = JSON.parse(readFileSync(values.spec, 'utf8')) as NodeRuntimeSpec;
  const stop = new AbortController();
  for (const s of ['SIGTERM', 'SIGINT'] as const) process.once(s, () => stop.abort());
  await runNodeRuntime(spec, createLogger({ component: 'lab-node-runtime', node: spec.node }), stop.signal);
}

/** `weft lab kube-proxy --netns NS --kubeconfig FILE`: Services' ClusterIPs and NodePorts for a lab node's host network (kube/service-proxy.ts). */
export async function labKubeProxy(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['lab kube-proxy'], argv);
  if (!values.netns || !values.kubeconfig) throw new UsageError('Usage: weft lab kube-proxy --netns NS --kubeconfig FILE [--node NAME]');
  const stop = new AbortController();
  for (const s of ['SIGTERM', 'SIGINT'] as const) process.once(s, () => stop.abort());
  await syncServices({ netns: values.netns, kubeconfig: values.kubeconfig }, { log: createLogger({ component: 'lab-kube-proxy', ...(values.node ? { node: values.node } : {}) }), signal: stop.signal });
}

/** `weft lab exec POD -- COMMAND...`: what follows `--` is the pod's command, untouched. */
export async function labExec(argv: string[]): Promise<void> {
  const sep = argv.indexOf('--');
  const { positionals } = parseCommandArgs(COMMANDS['lab exec'], sep < 0 ? argv : argv.slice(0, sep));
  if (sep < 0 || sep === argv.length - 1) throw new UsageError('Usage: weft lab exec [cluster/]namespace/pod -- COMMAND [ARGS...] (see weft lab exec --help)');
  const ref = parsePodRef(positionals[0]);
  const cluster = labCluster(ref.cluster);
  const ns = podNetnsName(cluster.name, ref.namespace, ref.name);
  if (!(await netns.list()).includes(ns)) throw new UsageError(`Unknown pod ${positionals[0]}: it is not running in cluster ${cluster.name}`);
  const code = await new Promise<number>((resolve) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv.slice(sep + 1)], { stdio: 'inherit' });
    child.on('exit', (c) => resolve(c ?? 1));
    child.on('error', () => resolve(127));
  });
  process.exitCode = code;
}
