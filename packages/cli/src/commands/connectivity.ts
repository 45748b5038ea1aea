/**
 * `weft connectivity test`: a built-in suite against a running lab, like
 * `cilium connectivity test`. It deploys its own pods, a policy and a service
 * in namespace weft-conntest, sends real traffic from inside pods, checks each
 * case's expected outcome (and that denials show up as DROPPED flows), then
 * removes what it deployed. When the lab has a second cluster connected to
 * the first, it also deploys there and tests pod to pod across clusters
 * (allowed and denied by a policy naming the source cluster) and a global
 * service answered from both clusters.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { AgentClient, podNetnsName, type Flow, type ServiceState } from '@weft/agent';
import { agentSocket, applyAndWait, etcdEndpoint, readLabState, WORLD_IP, type ClusterLayout } from '@weft/lab';
import { KvClient } from '@weft/kvstore';
import { ResourceStore, validateResource, type Resource } from '@weft/resources';
import { agentsFor, labCluster } from '../context.js';
import { parseFormat, printJson, printTable, progress } from '../output.js';

const NS = 'weft-conntest';
const WEFT_CLI = resolve(__dirname, '..', '..', 'bin', 'weft.js');

interface Case {
  name: string;
  from: string;
  target: string[];
  expect: 'pass' | 'drop';
}

export interface CaseResult {
  name: string;
  expected: string;
  observed: string;
  ok: boolean;
  detail: string;
}

const SERVICE = 'ct-echo';

/** The service, global when a remote cluster takes part. */
function serviceDoc(global: boolean): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: SERVICE, namespace: NS, annotations: global ? { 'weft.io/global': 'true' } : {} },
    spec: { selector: { app: 'ct-echo' }, ports: [{ name: 'http', port: 80, targetPort: 8081 }] },
  };
}

/** What the second cluster runs: an echo pod, a policy admitting only the first cluster's client, the global service. */
function remoteResources(r: ClusterLayout, first: ClusterLayout): Resource[] {
  const docs = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'echo-remote', namespace: NS, labels: { app: 'ct-echo' } }, spec: { nodeName: r.nodes[0]!.name, containers: [{ name: 'main', command: ['weft', 'echo-server', '--http', '8081'] }] } },
    {
      apiVersion: 'weft.io/v1',
      kind: 'WeftNetworkPolicy',
      metadata: { name: 'echo-ingress', namespace: NS },
      spec: {
        endpointSelector: { matchLabels: { app: 'ct-echo' } },
        ingress: [{ fromEndpoints: [{ matchLabels: { app: 'ct-client', 'weft.io/cluster': first.name } }], toPorts: [{ ports: [{ port: '8081', protocol: 'TCP' }] }] }],
      },
    },
    serviceDoc(true),
  ];
  return docs.map((d, i) => validateResource(d, `connectivity test (${r.name}) #${i + 1}`, r.name));
}

function resources(c: ClusterLayout, global: boolean): Resource[] {
  const n1 = c.nodes[0]!.name;
  const n2 = (c.nodes[1] ?? c.nodes[0]!).name;
  const pod = (name: string, node: string, app: string, command: string[]): unknown => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS, labels: { app } }, spec: { nodeName: node, containers: [{ name: 'main', command }] } });
  const echo = ['weft', 'echo-server', '--tcp', '8080', '--udp', '9090', '--http', '8081'];
  const docs = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    pod('client', n1, 'ct-client', ['sleep', 'infinity']),
    pod('intruder', n1, 'ct-intruder', ['sleep', 'infinity']),
    pod('echo-same-node', n1, 'ct-echo', echo),
    pod('echo-other-node', n2, 'ct-echo', echo),
    {
      apiVersion: 'weft.io/v1',
      kind: 'WeftNetworkPolicy',
      metadata: { name: 'echo-ingress', namespace: NS },
      spec: {
        endpointSelector: { matchLabels: { app: 'ct-echo' } },
        ingress: [{ fromEndpoints: [{ matchLabels: { app: 'ct-client' } }], toPorts: [{ ports: [{ port: '8081', protocol: 'TCP' }, { port: '9090', protocol: 'UDP' }] }] }],
      },
    },
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
  const all = await new AgentClient(agentSocket(c.nodes[0]!)).call<ServiceState[]>('GET', '/v1/services');
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
  const { values } = parseArgs({ args: argv, options: { cluster: { type: 'string' }, keep: { type: 'boolean', default: false }, output: { type: 'string', short: 'o' } } });
  const format = parseFormat(values.output);
  const c = labCluster(values.cluster);
  const kv = new KvClient({ endpoints: [etcdEndpoint(c)] });
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
    const cases: Case[] = [
      { name: 'pod to pod, same node, allowed (HTTP)', from: 'client', target: ['--http', `http://${same}:8081/`], expect: 'pass' },
      { name: `pod to pod, ${crossNode ? 'across nodes' : 'same node'}, allowed (HTTP)`, from: 'client', target: ['--http', `http://${other}:8081/`], expect: 'pass' },
      { name: `pod to pod, ${crossNode ? 'across nodes' : 'same node'}, allowed (UDP)`, from: 'client', target: ['--udp', `${other}:9090`], expect: 'pass' },
      { name: 'pod to pod, same node, denied by policy (wrong source)', from: 'intruder', target: ['--http', `http://${same}:8081/`], expect: 'drop' },
      { name: `pod to pod, ${crossNode ? 'across nodes' : 'same node'}, denied by policy (wrong source)`, from: 'intruder', target: ['--http', `http://${other}:8081/`], expect: 'drop' },
      { name: 'pod to pod, denied by policy (port not allowed)', from: 'client', target: ['--tcp', `${other}:8080`], expect: 'drop' },
      { name: 'pod to world (HTTP)', from: 'client', target: ['--http', `http://${WORLD_IP}:8081/`], expect: 'pass' },
      { name: 'pod to ClusterIP service (HTTP)', from: 'client', target: ['--http', `http://${vip}:80/`], expect: 'pass' },
    ];
    if (peer) {
      const pkv = new KvClient({ endpoints: [etcdEndpoint(peer)] });
      const remoteEcho = await podIp(pkv, 'echo-remote').finally(() => pkv.close());
      cases.push(
        { name: `pod to pod, across clusters (${c.name} -> ${peer.name}), allowed by cluster label (HTTP)`, from: 'client', target: ['--http', `http://${remoteEcho}:8081/`], expect: 'pass' },
        { name: `pod to pod, across clusters (${c.name} -> ${peer.name}), denied by policy (wrong source)`, from: 'intruder', target: ['--http', `http://${remoteEcho}:8081/`], expect: 'drop' },
      );
    }
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
      results.push({ name: `global service answered from both clusters (${c.name}, ${peer.name})`, expected: 'pass', observed: ok ? 'pass' : 'drop', ok, detail: `answered by ${[...answered].join(', ') || 'none'}` });
      progress(`[connectivity] ${ok ? 'PASS' : 'FAIL'}  global service answered from both clusters`);
    }
    // Denials must be visible as DROPPED flows with a policy reason.
    const flows: Flow[] = [];
    for (const { client } of agentsFor({ cluster: c.name })) await client.stream(`/v1/flows?namespace=${NS}&verdict=DROPPED&limit=1000`, (f) => flows.push(f as Flow));
    const seen = flows.some((f) => f.source.pod === 'intruder' && f.dropReason?.startsWith('POLICY'));
    results.push({ name: 'denials reported as DROPPED flows with a policy reason', expected: 'pass', observed: seen ? 'pass' : 'drop', ok: seen, detail: `${flows.length} dropped flows in ${NS}` });
  } finally {
    if (!values.keep) {
      await store.delete(deployed, { ignoreNotFound: true }).catch(() => undefined);
      if (peer) {
        const pkv = new KvClient({ endpoints: [etcdEndpoint(peer)] });
        await new ResourceStore(pkv).delete(peerDeployed, { ignoreNotFound: true }).catch(() => undefined);
        pkv.close();
      }
    }
    kv.close();
  }
  const passed = results.filter((r) => r.ok).length;
  if (format === 'json') printJson({ cluster: c.name, passed, failed: results.length - passed, results });
  else {
    printTable(['RESULT', 'CASE', 'EXPECTED', 'OBSERVED', 'DETAIL'], results.map((r) => [r.ok ? 'PASS' : 'FAIL', r.name, r.expected, r.observed, r.detail]));
    process.stdout.write(`\n${passed} passed, ${results.length - passed} failed\n`);
  }
  if (passed !== results.length) process.exitCode = 1;
}

