/**
 * `weft connectivity test --context A [--destination-context B]`: the connectivity suite against
 * Kubernetes clusters running the chart, through a kubeconfig, with the lab's cases
 * (connectivity-cases.ts).
 *
 * In namespace weft-conntest of each cluster it creates echo server pods (the Weft image running
 * `weft echo-server`), the policy and the service; across clusters, the service is global and the
 * second cluster's policy admits only the first cluster's client. Pods are pinned with a
 * nodeSelector on `kubernetes.io/hostname` to nodes that take ordinary pods (not cordoned, no
 * NoSchedule/NoExecute taint, Ready): the "same node" and "other node" cases need to know where
 * each pod runs, which affinity rules would only constrain. Each case is then one short-lived pod
 * (restartPolicy Never) on the first node, labelled as the client or the intruder, running
 * `weft probe`; its outcome is read from the pod's terminated state: exit 0 answered, exit 1 no
 * answer, the probe's JSON in the termination message. No exec or port-forward: only create, get,
 * list and delete, which the replay server serves in tests.
 *
 * Invariants: nothing is written before both clusters have been read and found to run the chart;
 * a namespace this run did not create is never deleted; the namespaces it created are deleted (and
 * awaited) whatever happens, also after a failure or an abort (Ctrl-C), unless `keep`.
 */
import { sleep, WeftError } from '@weft/common';
import { chartFullname, collectionPath, KubeClient, KubernetesApiError, objectPath, type KubeList, type KubeObject } from '@weft/kubernetes';
import { APP, connectivityCases, echoCommand, globalServiceCaseName, NS, policyDoc, PORTS, serviceDoc, SERVICE, type Case, type CaseResult } from './connectivity-cases.js';
import { ConnectivityImageError, ConnectivityNotReadyError, ConnectivityPrerequisiteError } from './connectivity-errors.js';

/** Label of every pod the test creates: `echo` or `probe`. */
export const ROLE_LABEL = 'weft.io/conntest';
/** Annotation of a probe pod: the case it runs. */
export const CASE_ANNOTATION = 'weft.io/conntest-case';
const HOSTNAME_LABEL = 'kubernetes.io/hostname';
const IMAGE_PULL_REASONS = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull']);

export interface KubeConnectivityOptions {
  /** kubeconfig contexts: the cluster the probes run in, and optionally a second, connected one. */
  context: string;
  destinationContext?: string;
  /** Default: $KUBECONFIG or ~/.kube/config, as kubectl reads them. */
  kubeconfig?: string;
  /** Where the chart runs (default kube-system) and its release name (default weft). */
  namespace?: string;
  release?: string;
  /** Image of the test pods; default: the image of the chart's agent DaemonSet in the first cluster. */
  image?: string;
  /** How long to wait for the echo servers to be ready, and then for the probes to finish (default 300 s each). */
  timeoutMs?: number;
  /** How often pods are read while waiting (default 1 s). */
  pollMs?: number;
  /** One probe attempt's timeout (default 2000 ms) and attempts per probe (default 5). */
  probeTimeoutMs?: number;
  probeAttempts?: number;
  /** Leave the namespaces in place. */
  keep?: boolean;
  signal?: AbortSignal;
  progress?: (message: string) => void;
}

export interface KubeConnectivityResult {
  clusters: Array<{ context: string; cluster: string }>;
  image: string;
  passed: number;
  failed: number;
  results: CaseResult[];
}

interface NodeInfo {
  name: string;
  hostname: string;
}

/** One cluster, as read. */
interface Side {
  context: string;
  client: KubeClient;
  cluster: string;
  agentImage: string;
  nodes: NodeInfo[];
  /** This run created the namespace, so it deletes it. */
  created: boolean;
}

interface Probe {
  pod: string;
  name: string;
  expect: 'pass' | 'drop';
}

export async function kubeConnectivityTest(o: KubeConnectivityOptions): Promise<KubeConnectivityResult> {
  const say = o.progress ?? ((): void => undefined);
  const timeoutMs = o.timeoutMs ?? 300_000;
  // Both contexts resolve before anything is asked of either cluster.
  const contexts = [o.context, ...(o.destinationContext !== undefined ? [o.destinationContext] : [])];
  const clients = await Promise.all(contexts.map((context) => KubeClient.create({ context, ...(o.kubeconfig !== undefined ? { kubeconfig: o.kubeconfig } : {}) })));
  const sides: Side[] = [];
  for (let i = 0; i < contexts.length; i++) sides.push(await readSide(contexts[i]!, clients[i]!, o));
  const [local, remote] = sides as [Side, Side | undefined];
  if (remote && remote.cluster === local.cluster) throw new ConnectivityPrerequisiteError(`contexts ${local.context} and ${remote.context} both hold cluster ${local.cluster}: --destination-context must name another cluster of the mesh`);
  const image = o.image ?? local.agentImage;
  const probeArgs = ['--timeout', String(o.probeTimeoutMs ?? 2000), '--termination-log', '/dev/termination-log'];
  const attempts = String(o.probeAttempts ?? 5);

  const results: CaseResult[] = [];
  try {
    for (const s of sides) await createNamespace(s, o.signal);
    const [n1, n2 = n1] = local.nodes as [NodeInfo, NodeInfo?];
    say(`[connectivity] ${local.cluster}: echo servers on ${n1.name}${n2 !== n1 ? ` and ${n2.name}` : ''}, policy and ${remote ? 'global ' : ''}service in ${NS} (image ${image})`);
    await create(local, 'Pod', echoPod('echo-same-node', n1, local.cluster, image, false), o.signal);
    await create(local, 'Pod', echoPod('echo-other-node', n2, local.cluster, image, false), o.signal);
    await create(local, 'WeftNetworkPolicy', policyDoc(), o.signal);
    const svc = await create(local, 'Service', serviceDoc(remote !== undefined), o.signal);
    if (remote) {
      say(`[connectivity] ${remote.cluster}: an echo server on ${remote.nodes[0]!.name}, a policy admitting only ${local.cluster}'s client, the global service`);
      await create(remote, 'Pod', echoPod('echo-remote', remote.nodes[0]!, remote.cluster, image, true), o.signal);
      await create(remote, 'WeftNetworkPolicy', policyDoc(local.cluster), o.signal);
      await create(remote, 'Service', serviceDoc(true), o.signal);
    }
    const ips = new Map<string, string>();
    for (const s of sides) for (const [pod, ip] of await waitEchoReady(s, image, timeoutMs, o)) ips.set(pod, ip);
    const vip = (svc.spec as { clusterIP?: string } | undefined)?.clusterIP;
    if (!vip || vip === 'None') throw new ConnectivityPrerequisiteError(`context ${local.context}: Service ${NS}/${SERVICE} was given no ClusterIP`);

    const cases: Case[] = connectivityCases({
      same: ips.get('echo-same-node')!,
      other: ips.get('echo-other-node')!,
      crossNode: n2 !== n1,
      vip,
      ...(remote ? { remote: { from: local.cluster, to: remote.cluster, ip: ips.get('echo-remote')! } } : {}),
    });
    const probes: Probe[] = [];
    const probePod = async (name: string, from: 'client' | 'intruder', args: string[], expect: 'pass' | 'drop'): Promise<void> => {
      const pod = `probe-${probes.length + 1}`;
      probes.push({ pod, name, expect });
      await create(local, 'Pod', probePodDoc(pod, name, from, n1, image, [...probeArgs, ...args]), o.signal);
    };
    say(`[connectivity] ${local.cluster}: ${cases.length + (remote ? 1 : 0)} probe pods on ${n1.name}`);
    for (const k of cases) await probePod(k.name, k.from, ['--attempts', attempts, ...k.target], k.expect);
    // Backends of a global service are picked per connection: answers must come from both clusters.
    if (remote) await probePod(globalServiceCaseName(local.cluster, remote.cluster), 'client', ['--attempts', '30', '--expect-clusters', `${local.cluster},${remote.cluster}`, '--http', `http://${vip}:80/`], 'pass');

    const finished = await waitProbes(local, probes, image, timeoutMs, o);
    for (const p of probes) {
      const r = outcome(finished.pods.get(p.pod), timeoutMs, finished.why.get(p.pod));
      results.push({ name: p.name, expected: p.expect, observed: r.observed, ok: r.observed === p.expect, detail: r.detail.slice(0, 160) });
      say(`[connectivity] ${r.observed === p.expect ? 'PASS' : 'FAIL'}  ${p.name}`);
    }
  } finally {
    if (!o.keep) for (const s of sides) if (s.created) await deleteNamespace(s, timeoutMs, o);
  }
  const passed = results.filter((r) => r.ok).length;
  return { clusters: sides.map((s) => ({ context: s.context, cluster: s.cluster })), image, passed, failed: results.length - passed, results };
}

async function get(side: Pick<Side, 'client' | 'context'>, path: string, signal?: AbortSignal): Promise<KubeObject | undefined> {
  return side.client.find<KubeObject>(`read ${path} in context ${side.context}`, path, signal);
}

/** The chart's agent ConfigMap (the cluster's name) and DaemonSet (the image), and the nodes pods can go to. */
async function readSide(context: string, client: KubeClient, o: KubeConnectivityOptions): Promise<Side> {
  const ns = o.namespace ?? 'kube-system';
  const full = chartFullname(o.release ?? 'weft');
  const at = { client, context };
  const where = `(namespace ${ns}, release ${o.release ?? 'weft'}; --namespace and --release say where it is)`;
  const cm = await get(at, objectPath('ConfigMap', `${full}-agent-config`, ns), o.signal);
  if (!cm) throw new ConnectivityPrerequisiteError(`context ${context}: ConfigMap ${ns}/${full}-agent-config not found: the Weft chart is not installed there ${where}; install it first (docs/kubernetes.md, "Install on Kubernetes")`);
  let cluster: string | undefined;
  try {
    cluster = (JSON.parse((cm.data as Record<string, string> | undefined)?.['agent.json'] ?? '') as { cluster?: string }).cluster;
  } catch {
    // reported below
  }
  if (!cluster) throw new ConnectivityPrerequisiteError(`context ${context}: ConfigMap ${ns}/${full}-agent-config has no readable agent.json with a cluster name`);
  const ds = await get(at, objectPath('DaemonSet', `${full}-agent`, ns), o.signal);
  if (!ds) throw new ConnectivityPrerequisiteError(`context ${context}: DaemonSet ${ns}/${full}-agent not found: the Weft chart is not installed there ${where}`);
  const containers = ((ds.spec as { template?: { spec?: { containers?: Array<{ name: string; image?: string }> } } } | undefined)?.template?.spec?.containers ?? []);
  const agentImage = (containers.find((c) => c.name === 'agent') ?? containers[0])?.image ?? '';
  const st = (ds.status ?? {}) as { desiredNumberScheduled?: number; numberReady?: number };
  if ((st.numberReady ?? 0) === 0) throw new ConnectivityPrerequisiteError(`context ${context}: no Weft agent is ready (DaemonSet ${ns}/${full}-agent: ${st.numberReady ?? 0} of ${st.desiredNumberScheduled ?? 0} ready): pods would get no network; see kubectl --context ${context} -n ${ns} rollout status daemonset/${full}-agent`);
  const list = (await client.request<KubeList>(`list nodes in context ${context}`, 'GET', collectionPath('Node'), o.signal ? { signal: o.signal } : {})).items ?? [];
  const nodes = list.filter(schedulable).map((n) => ({ name: n.metadata?.name ?? '', hostname: n.metadata?.labels?.[HOSTNAME_LABEL] ?? n.metadata?.name ?? '' })).slice(0, 2);
  if (nodes.length === 0) throw new ConnectivityPrerequisiteError(`context ${context}: none of its ${list.length} nodes takes ordinary pods (each is cordoned, tainted NoSchedule/NoExecute, or not Ready)`);
  return { context, client, cluster, agentImage, nodes, created: false };
}

function schedulable(n: KubeObject): boolean {
  const spec = (n.spec ?? {}) as { unschedulable?: boolean; taints?: Array<{ effect?: string }> };
  const conditions = ((n.status as { conditions?: Array<{ type: string; status: string }> } | undefined)?.conditions ?? []);
  return spec.unschedulable !== true && !(spec.taints ?? []).some((t) => t.effect === 'NoSchedule' || t.effect === 'NoExecute') && conditions.some((c) => c.type === 'Ready' && c.status === 'True');
}

async function createNamespace(s: Side, signal?: AbortSignal): Promise<void> {
  const body = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'app.kubernetes.io/managed-by': 'weft-connectivity-test' } } };
  try {
    await s.client.request(`create Namespace ${NS} in context ${s.context}`, 'POST', collectionPath('Namespace'), { body, ...(signal ? { signal } : {}) });
  } catch (err) {
    if (err instanceof KubernetesApiError && err.status === 409) {
      throw new ConnectivityPrerequisiteError(`context ${s.context}: namespace ${NS} already exists (left by a run with --keep, or still being deleted): delete it (kubectl --context ${s.context} delete namespace ${NS} --wait) and run the test again`);
    }
    throw err;
  }
  s.created = true;
}

async function create(s: Side, kind: 'Pod' | 'Service' | 'WeftNetworkPolicy', body: Record<string, unknown>, signal?: AbortSignal): Promise<KubeObject> {
  const name = (body.metadata as { name: string }).name;
  try {
    return await s.client.request<KubeObject>(`create ${kind} ${NS}/${name} in context ${s.context}`, 'POST', collectionPath(kind, NS), { body, ...(signal ? { signal } : {}) });
  } catch (err) {
    if (kind === 'WeftNetworkPolicy' && err instanceof KubernetesApiError && err.status === 404) {
      throw new ConnectivityPrerequisiteError(`context ${s.context}: the API server does not serve WeftNetworkPolicy (weft.io/v1): the chart's CRDs (charts/weft/crds) are not installed there`);
    }
    throw err;
  }
}

function echoPod(name: string, node: NodeInfo, cluster: string, image: string, remote: boolean): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels: { app: APP.echo, [ROLE_LABEL]: 'echo' } },
    spec: {
      nodeSelector: { [HOSTNAME_LABEL]: node.hostname },
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          name: 'echo',
          image,
          command: echoCommand(remote),
          // The echo server names its cluster and pod in its answers (the global-service case reads the cluster).
          env: [{ name: 'WEFT_CLUSTER', value: cluster }, { name: 'WEFT_POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
          ports: [{ name: 'http', containerPort: PORTS.http, protocol: 'TCP' }, ...(remote ? [] : [{ name: 'tcp', containerPort: PORTS.tcp, protocol: 'TCP' }, { name: 'udp', containerPort: PORTS.udp, protocol: 'UDP' }])],
          // From inside the pod: the policy admits only the client, so a kubelet HTTP check could be dropped.
          readinessProbe: { exec: { command: ['weft', 'probe', '--timeout', '1000', '--http', `http://127.0.0.1:${PORTS.http}/`] }, periodSeconds: 2, timeoutSeconds: 5 },
        },
      ],
    },
  };
}

function probePodDoc(pod: string, name: string, from: 'client' | 'intruder', node: NodeInfo, image: string, args: string[]): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: pod, namespace: NS, labels: { app: APP[from], [ROLE_LABEL]: 'probe' }, annotations: { [CASE_ANNOTATION]: name } },
    spec: {
      restartPolicy: 'Never',
      nodeSelector: { [HOSTNAME_LABEL]: node.hostname },
      terminationGracePeriodSeconds: 1,
      containers: [{ name: 'probe', image, command: ['weft', 'probe', ...args], terminationMessagePolicy: 'FallbackToLogsOnError' }],
    },
  };
}

interface ContainerState {
  waiting?: { reason?: string; message?: string };
  terminated?: { exitCode?: number; reason?: string; message?: string };
  running?: unknown;
}
interface PodStatus {
  phase?: string;
  podIP?: string;
  conditions?: Array<{ type: string; status: string; reason?: string; message?: string }>;
  containerStatuses?: Array<{ name: string; ready?: boolean; restartCount?: number; state?: ContainerState; lastState?: ContainerState }>;
}

const statusOf = (p: KubeObject): PodStatus => (p.status ?? {}) as PodStatus;

async function listPods(s: Side, role: 'echo' | 'probe', signal?: AbortSignal): Promise<KubeObject[]> {
  const list = await s.client.request<KubeList>(`list pods in ${NS} in context ${s.context}`, 'GET', collectionPath('Pod', NS), { query: { labelSelector: `${ROLE_LABEL}=${role}` }, ...(signal ? { signal } : {}) });
  return list.items ?? [];
}

/** Throws ConnectivityImageError when a container of `pod` cannot pull its image. */
function checkImage(s: Side, pod: KubeObject, image: string): void {
  for (const c of statusOf(pod).containerStatuses ?? []) {
    const w = c.state?.waiting;
    if (w?.reason && IMAGE_PULL_REASONS.has(w.reason)) {
      throw new ConnectivityImageError(`pod ${NS}/${pod.metadata?.name} in context ${s.context} cannot pull image ${JSON.stringify(image)}: ${w.reason}${w.message ? `: ${w.message}` : ''}. Make the image available to the cluster's nodes (kind: kind load docker-image ${image}) or pass --image`);
    }
  }
}

const isReady = (p: KubeObject): boolean => (statusOf(p).conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True') && !!statusOf(p).podIP;

/** Waits until every echo pod of `s` is Ready; returns pod name -> IP. */
async function waitEchoReady(s: Side, image: string, timeoutMs: number, o: KubeConnectivityOptions): Promise<Map<string, string>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pods = await listPods(s, 'echo', o.signal);
    for (const p of pods) checkImage(s, p, image);
    if (pods.length > 0 && pods.every(isReady)) return new Map(pods.map((p) => [p.metadata?.name ?? '', statusOf(p).podIP!]));
    if (Date.now() >= deadline) {
      const events = await recentEvents(s, o.signal);
      const why = pods.filter((p) => !isReady(p)).map((p) => `${p.metadata?.name}: ${whyNotReady(p, events)}`);
      throw new ConnectivityNotReadyError(`in context ${s.context}, pods in ${NS} not ready after ${Math.round(timeoutMs / 1000)} s: ${why.join('; ') || 'none listed'}`);
    }
    await sleep(o.pollMs ?? 1000, o.signal, 'Wait for the connectivity test pods');
  }
}

/** Waits until every probe pod has terminated (or the time is up); returns pod name -> pod, and why those still running are. */
async function waitProbes(s: Side, probes: Probe[], image: string, timeoutMs: number, o: KubeConnectivityOptions): Promise<{ pods: Map<string, KubeObject>; why: Map<string, string> }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pods = new Map((await listPods(s, 'probe', o.signal)).map((p) => [p.metadata?.name ?? '', p]));
    for (const p of pods.values()) checkImage(s, p, image);
    const done = probes.every((p) => ['Succeeded', 'Failed'].includes(statusOf(pods.get(p.pod) ?? {}).phase ?? ''));
    if (done || Date.now() >= deadline) {
      const why = new Map<string, string>();
      if (!done) {
        const events = await recentEvents(s, o.signal);
        for (const [name, p] of pods) if (!['Succeeded', 'Failed'].includes(statusOf(p).phase ?? '')) why.set(name, whyNotReady(p, events));
      }
      return { pods, why };
    }
    await sleep(o.pollMs ?? 1000, o.signal, 'Wait for the connectivity probes');
  }
}

/** A probe pod's outcome: exit 0 pass, exit 1 drop (the probe got no answer), anything else error. */
export function outcome(pod: KubeObject | undefined, timeoutMs: number, why?: string): { observed: 'pass' | 'drop' | 'error'; detail: string } {
  if (!pod) return { observed: 'error', detail: 'the probe pod is gone' };
  const st = statusOf(pod);
  const t = st.containerStatuses?.[0]?.state?.terminated;
  let detail = t?.message?.trim() ?? '';
  try {
    detail = (JSON.parse(detail) as { detail: string }).detail;
  } catch {
    // not the probe's JSON (FallbackToLogsOnError: the log's tail): keep it
  }
  if (st.phase === 'Succeeded') return { observed: 'pass', detail };
  if (st.phase === 'Failed' && t?.exitCode === 1) return { observed: 'drop', detail };
  if (st.phase === 'Failed') return { observed: 'error', detail: `the probe exited ${t?.exitCode ?? '?'}${t?.reason ? ` (${t.reason})` : ''}${detail ? `: ${detail}` : ''}` };
  return { observed: 'error', detail: `no result after ${Math.round(timeoutMs / 1000)} s: ${why ?? `phase ${st.phase ?? 'unknown'}`}` };
}

type Event = { involvedObject?: { kind?: string; name?: string }; type?: string; reason?: string; message?: string; lastTimestamp?: string; eventTime?: string };

async function recentEvents(s: Side, signal?: AbortSignal): Promise<Event[]> {
  try {
    return ((await s.client.request<KubeList>(`list events in ${NS} in context ${s.context}`, 'GET', collectionPath('Event', NS), signal ? { signal } : {})).items ?? []) as Event[];
  } catch (err) {
    if (err instanceof WeftError && err.code === 'WEFT_ERR_ABORTED') throw err;
    return []; // events only add detail
  }
}

/** Why a pod is not ready, from its status and its latest Warning event. */
function whyNotReady(p: KubeObject, events: Event[]): string {
  const st = statusOf(p);
  const parts: string[] = [`phase ${st.phase ?? 'unknown'}`];
  const scheduled = st.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False') parts.push(`not scheduled (${scheduled.reason ?? 'unknown'}${scheduled.message ? `: ${scheduled.message}` : ''})`);
  for (const c of st.containerStatuses ?? []) {
    const w = c.state?.waiting;
    const t = c.state?.terminated ?? c.lastState?.terminated;
    if (w?.reason) parts.push(`container ${c.name} waiting: ${w.reason}${w.message ? ` (${w.message})` : ''}`);
    if (t) parts.push(`container ${c.name} exited ${t.exitCode ?? '?'}${t.reason ? ` (${t.reason})` : ''}${c.restartCount ? `, ${c.restartCount} restarts` : ''}`);
    if (c.state?.running && !c.ready) parts.push(`container ${c.name} running, readiness probe not passing`);
  }
  const warning = events.filter((e) => e.type === 'Warning' && e.involvedObject?.kind === 'Pod' && e.involvedObject.name === p.metadata?.name).sort((a, b) => (a.lastTimestamp ?? a.eventTime ?? '').localeCompare(b.lastTimestamp ?? b.eventTime ?? '')).pop();
  if (warning) parts.push(`event ${warning.reason ?? ''}: ${warning.message ?? ''}`);
  return parts.join(', ');
}

/** Deletes the namespace (everything in it goes with it) and waits until it is gone, so a new run can start. */
async function deleteNamespace(s: Side, timeoutMs: number, o: KubeConnectivityOptions): Promise<void> {
  const say = o.progress ?? ((): void => undefined);
  const path = objectPath('Namespace', NS);
  // No signal: an abort (Ctrl-C) must not stop the cleanup.
  try {
    await s.client.request(`delete Namespace ${NS} in context ${s.context}`, 'DELETE', path, { body: { apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy: 'Background' } });
    const deadline = Date.now() + timeoutMs;
    while (await get(s, path)) {
      if (Date.now() >= deadline) throw new Error(`still terminating after ${Math.round(timeoutMs / 1000)} s`);
      await sleep(o.pollMs ?? 1000);
    }
    say(`[connectivity] ${s.cluster}: deleted namespace ${NS}`);
  } catch (err) {
    if (err instanceof KubernetesApiError && err.status === 404) return;
    say(`[connectivity] ${s.cluster}: could not delete namespace ${NS} (${(err as Error).message}): delete it with kubectl --context ${s.context} delete namespace ${NS}`);
  }
}
