/**
 * `weft connectivity test`: a built-in suite against a running lab, like
 * `cilium connectivity test`. It deploys its own pods, a policy and a service
 * in namespace weft-conntest, sends real traffic from inside pods, checks each
 * case's expected outcome (and that denials show up as DROPPED flows), then
 * removes what it deployed. When the lab has a second cluster connected to
 * the first, it also deploys there and tests pod to pod across clusters
 * (allowed and denied by a policy naming the source cluster) and a global
 * service answered from both clusters. The cases are connectivity-cases.ts's;
 * with --context the same suite runs against Kubernetes clusters running the
 * chart instead (connectivity-kube.ts).
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { AgentClient, type Flow, type ServiceState } from '@weft/agent';
import { agentSocket, applyAndWait, labEtcdClient, podNetnsName, readLabState, WORLD_IP, type ClusterLayout } from '@weft/lab';
import { KvClient } from '@weft/kvstore';
import { ResourceStore, validateResource, type Resource } from '@weft/resources';
import { COMMANDS } from '../command-table.js';
import { labCluster, observersFor } from '../context.js';
import { parseFormat, progress, UsageError, type OutputFormat } from '../output.js';
import { parseCommandArgs } from '../parse-command-args.js';
import { kubeConnectivityTest } from './connectivity-kube.js';
import { APP, connectivityCases, echoCommand, globalServiceCaseName, NS, policyDoc, reportResults, serviceDoc, SERVICE, type CaseResult, type CaseTargets } from './connectivity-cases.js';

const WEFT_CLI = resolve(__dirname, '..', '..', 'bin', 'weft.js');

/** What the second cluster runs: an echo pod, a policy admitting only the first cluster's client, the global service. */
function remoteResources(r: ClusterLayout, first: ClusterLayout): Resource[] {
  const docs = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'echo-remote', namespace: NS, labels: { app: APP.echo } }, spec: { nodeName: r.nodes[0]!.name, containers: [{ name: 'main', command: echoCommand(true) }] } },
    policyDoc(first.name),
    serviceDoc(true),
  ];
  return docs.map((d, i) => validateResource(d, `connectivity test (${r.name}) #${i + 1}`, r.name));
}

function resources(c: ClusterLayout, global: boolean): Resource[] {
  const n1 = c.nodes[0]!.name;
  const n2 = (c.nodes[1] ?? c.nodes[0]!).name;
  const pod = (name: string, node: string, app: string, command: string[]): unknown => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS, labels: { app } }, spec: { nodeName: node, containers: [{ name: 'main', command }] } });
  const echo = echoCommand();
  const docs = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    pod('client', n1, APP.client, ['sleep', 'infinity']),
    pod('intruder', n1, APP.intruder, ['sleep', 'infinity']),
    pod('echo-same-node', n1, APP.echo, echo),
    pod('echo-other-node', n2, APP.echo, echo),
    policyDoc(),
    serviceDoc(global),
  ];
  return docs.map((d, i) => validateResource(d, `connectivity test #${i + 1}`, c.name));
}

/** The first other lab cluster that the first one is connected to, if any. */
async function connectedPeer(c: ClusterLayout): Promise<ClusterLayout | undefined> {
  const state = readLabState();
  if (!state?.spec.connect) return undefined;
  return state.clusters.find((x) => x.name !== c.name);
}

async function serviceState(c: ClusterLayout): Promise<ServiceState | undefined> {
  const all = await new AgentClient(agentSocket(c.nodes[0]!)).services();
  return all.find((s) => s.namespace === NS && s.name === SERVICE);
}

async function waitUntil(what: string, cond: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`connectivity test: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function podIp(kv: KvClient, name: string): Promise<string> {
  const { items } = await kv.list('weft/state/v1/endpoints/');
  for (const i of items) {
    const r = JSON.parse(i.value.toString()) as { namespace: string; pod: string; ip: string };
    if (r.namespace === NS && r.pod === name) return r.ip;
  }
  throw new Error(`pod ${NS}/${name} has no endpoint`);
}

function runProbe(cluster: string, pod: string, target: string[]): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolveProbe) => {
    const child = spawn('ip', ['netns', 'exec', podNetnsName(cluster, NS, pod), process.execPath, WEFT_CLI, 'probe', '--timeout', '1500', ...target], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => {
      let detail = out.trim();
      try {
        detail = (JSON.parse(out) as { detail: string }).detail;
      } catch {
        // keep raw output
      }
      resolveProbe({ ok: code === 0, detail });
    });
  });
}

export async function connectivityTest(argv: string[]): Promise<void> {
  // With --context, Kubernetes clusters running the chart (connectivity-kube.ts); without, the lab.
  const { values } = parseCommandArgs(COMMANDS['connectivity test'], argv);
  const format = parseFormat(values.output);
  const kubeOnly = (['destination-context', 'kubeconfig', 'namespace', 'release', 'image', 'timeout'] as const).filter((k) => values[k] !== undefined);
  if (values.context === undefined && kubeOnly.length > 0) throw new UsageError(`--${kubeOnly[0]} needs --context (the lab's connectivity test takes --cluster)`);
  if (values.context !== undefined) {
    if (values.cluster !== undefined) throw new UsageError('--cluster names a lab cluster: use --context and --destination-context for Kubernetes clusters');
    return kubeConnectivityCommand(values, format);
  }
  const c = labCluster(values.cluster);
  const kv = labEtcdClient(c);
  const store = new ResourceStore(kv);
  const peer = await connectedPeer(c);
  const deployed = resources(c, peer !== undefined);
  const peerDeployed = peer ? remoteResources(peer, c) : [];
  const results: CaseResult[] = [];
  try {
    progress(`[connectivity] deploying test pods, policy and service in ${c.name}/${NS}`);
    await applyAndWait(c, deployed);
    if (peer) {
      progress(`[connectivity] deploying a pod, policy and the global service in ${peer.name}/${NS}`);
      await applyAndWait(peer, peerDeployed);
      await waitUntil(`${c.name} to see ${peer.name}'s backends of ${NS}/${SERVICE}`, async () => ((await serviceState(c))?.available[peer.name]?.length ?? 0) > 0);
    }
    await waitUntil(`${NS}/${SERVICE} to be programmed`, async () => ((await serviceState(c))?.frontends[0]?.backends.length ?? 0) > 0);
    const vip = (await serviceState(c))!.clusterIP;
    // Give the agents a moment to program the policy on every node.
    await new Promise((r) => setTimeout(r, 500));
    const same = await podIp(kv, 'echo-same-node');
    const other = await podIp(kv, 'echo-other-node');
    const crossNode = c.nodes.length > 1;
    let remote: CaseTargets['remote'];
    if (peer) {
      const pkv = labEtcdClient(peer);
      remote = { from: c.name, to: peer.name, ip: await podIp(pkv, 'echo-remote').finally(() => pkv.close()) };
    }
    const cases = connectivityCases({ same, other, crossNode, vip, world: WORLD_IP, ...(remote ? { remote } : {}) });
    for (const k of cases) {
      const r = await runProbe(c.name, k.from, k.target);
      const observed = r.ok ? 'pass' : 'drop';
      results.push({ name: k.name, expected: k.expect, observed, ok: observed === k.expect, detail: r.detail.slice(0, 120) });
      progress(`[connectivity] ${observed === k.expect ? 'PASS' : 'FAIL'}  ${k.name}`);
    }
    if (peer) {
      // A global service: answers must come from both clusters (backends are picked at random per connection).
      const answered = new Set<string>();
      for (let i = 0; i < 30 && answered.size < 2; i++) {
        const r = await runProbe(c.name, 'client', ['--http', `http://${vip}:80/`]);
        if (r.ok) answered.add((JSON.parse(r.detail) as { cluster?: string }).cluster ?? '?');
      }
      const ok = answered.has(c.name) && answered.has(peer.name);
      results.push({ name: globalServiceCaseName(c.name, peer.name), expected: 'pass', observed: ok ? 'pass' : 'drop', ok, detail: `answered by ${[...answered].join(', ') || 'none'}` });
      progress(`[connectivity] ${ok ? 'PASS' : 'FAIL'}  global service answered from both clusters`);
    }
    // Denials must be visible as DROPPED flows with a policy reason.
    const flows: Flow[] = [];
    for (const { client } of observersFor({ cluster: c.name })) {
      try {
        await client.getFlows({ number: 1000, allow: [{ sourceNamespace: [NS], verdict: ['DROPPED'] }, { destinationNamespace: [NS], verdict: ['DROPPED'] }] }, (r) => r.flow && flows.push(r.flow));
      } finally {
        client.close();
      }
    }
    const seen = flows.some((f) => f.source?.pod === 'intruder' && f.dropReason.startsWith('POLICY'));
    results.push({ name: 'denials reported as DROPPED flows with a policy reason', expected: 'pass', observed: seen ? 'pass' : 'drop', ok: seen, detail: `${flows.length} dropped flows in ${NS}` });
  } finally {
    if (!values.keep) {
      await store.delete(deployed, { ignoreNotFound: true }).catch(() => undefined);
      if (peer) {
        const pkv = labEtcdClient(peer);
        await new ResourceStore(pkv).delete(peerDeployed, { ignoreNotFound: true }).catch(() => undefined);
        pkv.close();
      }
    }
    kv.close();
  }
  reportResults(format, results, { cluster: c.name });
}

/** `--context A [--destination-context B]`: the suite against clusters running the chart; Ctrl-C still cleans up. */
async function kubeConnectivityCommand(values: { context?: string; 'destination-context'?: string; kubeconfig?: string; namespace?: string; release?: string; image?: string; timeout?: string; keep?: boolean }, format: OutputFormat): Promise<void> {
  const timeout = values.timeout === undefined ? 300 : Number(values.timeout);
  if (!Number.isFinite(timeout) || timeout <= 0) throw new UsageError(`Invalid --timeout ${JSON.stringify(values.timeout)}: use a number of seconds`);
  const abort = new AbortController();
  const onSignal = (): void => {
    progress('[connectivity] interrupted: deleting the test namespaces');
    abort.abort();
  };
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  try {
    const r = await kubeConnectivityTest({
      context: values.context!,
      ...(values['destination-context'] !== undefined ? { destinationContext: values['destination-context'] } : {}),
      ...(values.kubeconfig !== undefined ? { kubeconfig: values.kubeconfig } : {}),
      ...(values.namespace !== undefined ? { namespace: values.namespace } : {}),
      ...(values.release !== undefined ? { release: values.release } : {}),
      ...(values.image !== undefined ? { image: values.image } : {}),
      timeoutMs: timeout * 1000,
      keep: !!values.keep,
      signal: abort.signal,
      progress,
    });
    reportResults(format, r.results, { clusters: r.clusters, image: r.image });
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
  }
  if (abort.signal.aborted) process.exitCode = 130;
}
