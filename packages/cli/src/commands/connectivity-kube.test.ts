/**
 * `weft connectivity test --context A [--destination-context B]` against replayed API servers
 * (one per kubeconfig context) holding what the chart creates: the objects the test creates, the
 * verdicts it draws from recorded probe pod statuses, its errors, and its cleanup.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReplayServer, writeKubeconfig, type RecordedExchange } from '@weft/kubernetes/testing';
import { kubeConnectivityTest, ROLE_LABEL, CASE_ANNOTATION, type KubeConnectivityOptions } from './connectivity-kube.js';

const NS = 'weft-conntest';
const PATH = {
  config: '/api/v1/namespaces/kube-system/configmaps/weft-agent-config',
  daemonset: '/apis/apps/v1/namespaces/kube-system/daemonsets/weft-agent',
  nodes: '/api/v1/nodes',
  namespaces: '/api/v1/namespaces',
  namespace: `/api/v1/namespaces/${NS}`,
  pods: `/api/v1/namespaces/${NS}/pods`,
  services: `/api/v1/namespaces/${NS}/services`,
  policies: `/apis/weft.io/v1/namespaces/${NS}/weftnetworkpolicies`,
  events: `/api/v1/namespaces/${NS}/events`,
};
const IMAGE = 'ghcr.io/weft-mesh/weft:0.1.0';

const ok = (body: unknown, status = 200): Pick<RecordedExchange, 'response'> => ({ response: { status, body } });
const notFound = (what: string): Pick<RecordedExchange, 'response'> => ({ response: { status: 404, body: { kind: 'Status', status: 'Failure', reason: 'NotFound', message: `${what} not found`, code: 404 } } });

/** What the chart leaves in a cluster, and its nodes: a tainted control plane, then workers. */
function chart(cluster: string, workers: number): RecordedExchange[] {
  const node = (name: string, extra: Record<string, unknown> = {}): unknown => ({ metadata: { name, labels: { 'kubernetes.io/hostname': name } }, spec: { podCIDR: '10.244.0.0/24', ...extra }, status: { conditions: [{ type: 'Ready', status: 'True' }] } });
  return [
    { request: `GET ${PATH.config}`, ...ok({ kind: 'ConfigMap', metadata: { name: 'weft-agent-config', namespace: 'kube-system' }, data: { 'agent.json': JSON.stringify({ source: 'kubernetes', cluster, clusterId: 1 }) } }) },
    { request: `GET ${PATH.daemonset}`, ...ok({ kind: 'DaemonSet', metadata: { name: 'weft-agent' }, spec: { template: { spec: { initContainers: [{ name: 'install-cni', image: IMAGE }], containers: [{ name: 'agent', image: IMAGE }] } } }, status: { desiredNumberScheduled: workers + 1, numberReady: workers + 1 } }) },
    {
      request: `GET ${PATH.nodes}`,
      ...ok({ kind: 'NodeList', items: [node(`${cluster}-control-plane`, { taints: [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }] }), ...Array.from({ length: workers }, (_, i) => node(`${cluster}-worker${i ? i + 1 : ''}`))] }),
    },
  ];
}

const created = (path: string, name: string, extra: Record<string, unknown> = {}): RecordedExchange => ({ request: `POST ${path}`, ...ok({ metadata: { name, namespace: NS, uid: `uid-${name}` }, ...extra }, 201) });
const echoList = (items: unknown[]): RecordedExchange => ({ request: `GET ${PATH.pods}?labelSelector=${encodeURIComponent(`${ROLE_LABEL}=echo`)}`, ...ok({ kind: 'PodList', metadata: { resourceVersion: '10' }, items }) });
const probeList = (items: unknown[]): RecordedExchange => ({ request: `GET ${PATH.pods}?labelSelector=${encodeURIComponent(`${ROLE_LABEL}=probe`)}`, ...ok({ kind: 'PodList', items }) });
const cleanup: RecordedExchange[] = [{ request: `DELETE ${PATH.namespace}`, ...ok({ kind: 'Namespace', metadata: { name: NS }, status: { phase: 'Terminating' } }) }, { request: `GET ${PATH.namespace}`, ...notFound(`namespaces "${NS}"`) }];

function readyPod(name: string, ip: string): unknown {
  return { metadata: { name }, status: { phase: 'Running', podIP: ip, conditions: [{ type: 'PodScheduled', status: 'True' }, { type: 'Ready', status: 'True' }], containerStatuses: [{ name: 'echo', ready: true, state: { running: {} } }] } };
}
function pendingPod(name: string, status: Record<string, unknown>): unknown {
  return { metadata: { name }, status: { phase: 'Pending', ...status } };
}
/** A probe pod as the kubelet leaves it: the probe's JSON as termination message. */
function probeDone(name: string, exitCode: number, detail: string, reason = exitCode === 0 ? 'Completed' : 'Error'): unknown {
  return { metadata: { name }, status: { phase: exitCode === 0 ? 'Succeeded' : 'Failed', containerStatuses: [{ name: 'probe', state: { terminated: { exitCode, reason, message: JSON.stringify({ ok: exitCode === 0, detail, ms: 12 }) } } }] } };
}

describe('weft connectivity test --context (Kubernetes)', function () {
  this.timeout(30_000);
  let east: ReplayServer;
  let west: ReplayServer;
  let dir: string;
  let kubeconfig: string;

  async function release(): Promise<void> {
    await Promise.all([east?.close(), west?.close()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  /** Two fresh replay servers and a kubeconfig naming them (a test may call it again: the earlier ones are released). */
  async function serve(e: RecordedExchange[], w: RecordedExchange[] = []): Promise<void> {
    await release();
    east = await new ReplayServer({ exchanges: e }).start();
    west = await new ReplayServer({ exchanges: w }).start();
    dir = mkdtempSync(join(tmpdir(), 'weft-conntest-'));
    kubeconfig = writeKubeconfig(join(dir, 'kubeconfig'), { 'kind-east': east, 'kind-west': west });
  }
  afterEach(release);

  const options = (over: Partial<KubeConnectivityOptions> = {}): KubeConnectivityOptions => ({ context: 'kind-east', kubeconfig, pollMs: 5, ...over });
  /** A one-cluster run's deployment in east: namespace, both echo pods, the policy, the service. */
  const deployedInEast = (): RecordedExchange[] => [
    created(PATH.namespaces, NS),
    created(PATH.pods, 'echo-same-node'),
    created(PATH.pods, 'echo-other-node'),
    created(PATH.policies, 'echo-ingress'),
    created(PATH.services, 'ct-echo', { spec: { clusterIP: '10.96.7.7' } }),
  ];
  /** A whole run in one cluster (east, one node) whose seven probe pods end as `probes` say. */
  const oneClusterRun = (probes: unknown[]): RecordedExchange[] => [
    ...chart('east', 1),
    ...deployedInEast(),
    echoList([readyPod('echo-same-node', '10.244.1.5'), readyPod('echo-other-node', '10.244.1.6')]),
    ...Array.from({ length: 7 }, (_, i) => created(PATH.pods, `probe-${i + 1}`)),
    probeList(probes),
    ...cleanup,
  ];
  const calls = (s: ReplayServer): string[] => s.requests.map((r) => `${r.method} ${r.path}`);
  const bodies = (s: ReplayServer, path: string): Array<Record<string, any>> => s.requests.filter((r) => r.method === 'POST' && r.path === path).map((r) => JSON.parse(r.body));

  it('deploys echo servers, policy and service in both clusters, runs every case as a probe pod, judges each by its exit, and deletes both namespaces', async () => {
    const probes = [
      probeDone('probe-1', 1, 'timeout'), // same node, allowed: no answer -> FAIL
      probeDone('probe-2', 0, '{"server":"echo-other-node"}'),
      probeDone('probe-3', 0, 'echoed'),
      probeDone('probe-4', 0, '{"server":"echo-same-node"}'), // same node, denied: answered -> FAIL
      probeDone('probe-5', 1, 'timeout'),
      probeDone('probe-6', 1, 'timeout'),
      probeDone('probe-7', 0, '{"server":"echo-same-node"}'),
      probeDone('probe-8', 0, '{"server":"echo-remote","cluster":"west"}'),
      probeDone('probe-9', 1, 'timeout'),
      probeDone('probe-10', 0, 'answered by east, west'),
    ];
    await serve(
      [
        ...chart('east', 2),
        created(PATH.namespaces, NS),
        created(PATH.pods, 'echo-same-node'),
        created(PATH.pods, 'echo-other-node'),
        created(PATH.policies, 'echo-ingress'),
        created(PATH.services, 'ct-echo', { spec: { clusterIP: '10.96.7.7' } }),
        // First read: one server not ready yet; the test polls.
        echoList([readyPod('echo-same-node', '10.244.1.5'), pendingPod('echo-other-node', { containerStatuses: [{ name: 'echo', state: { waiting: { reason: 'ContainerCreating' } } }] })]),
        echoList([readyPod('echo-same-node', '10.244.1.5'), readyPod('echo-other-node', '10.244.2.6')]),
        ...Array.from({ length: 10 }, (_, i) => created(PATH.pods, `probe-${i + 1}`)),
        probeList([...probes.slice(0, 9), pendingPod('probe-10', {})]),
        probeList(probes),
        ...cleanup,
      ],
      [...chart('west', 1), created(PATH.namespaces, NS), created(PATH.pods, 'echo-remote'), created(PATH.policies, 'echo-ingress'), created(PATH.services, 'ct-echo', { spec: { clusterIP: '10.96.9.9' } }), echoList([readyPod('echo-remote', '10.245.1.9')]), ...cleanup],
    );
    const progress: string[] = [];
    const r = await kubeConnectivityTest(options({ destinationContext: 'kind-west', progress: (m) => progress.push(m) }));
    assert.deepEqual([east.mismatches, west.mismatches, east.exhausted, west.exhausted], [[], [], true, true]);

    // Reads first in both clusters, then writes; the namespaces go last.
    assert.deepEqual(calls(west), [`GET ${PATH.config}`, `GET ${PATH.daemonset}`, `GET ${PATH.nodes}`, `POST ${PATH.namespaces}`, `POST ${PATH.pods}`, `POST ${PATH.policies}`, `POST ${PATH.services}`, `GET ${PATH.pods}`, `DELETE ${PATH.namespace}`, `GET ${PATH.namespace}`]);
    assert.deepEqual(calls(east).slice(0, 4), [`GET ${PATH.config}`, `GET ${PATH.daemonset}`, `GET ${PATH.nodes}`, `POST ${PATH.namespaces}`]);
    assert.deepEqual(calls(east).slice(-2), [`DELETE ${PATH.namespace}`, `GET ${PATH.namespace}`]);

    assert.deepEqual(bodies(east, PATH.namespaces)[0]!.metadata.name, NS);
    // Echo servers: the chart's image, `weft echo-server`, pinned to the two workers (not the tainted control plane).
    const [same, other, ...probePods] = bodies(east, PATH.pods);
    for (const [pod, node] of [[same!, 'east-worker'], [other!, 'east-worker2']] as const) {
      assert.deepEqual(pod.metadata.labels, { app: 'ct-echo', [ROLE_LABEL]: 'echo' });
      assert.deepEqual(pod.spec.nodeSelector, { 'kubernetes.io/hostname': node });
      const c = pod.spec.containers[0];
      assert.equal(c.image, IMAGE);
      assert.deepEqual(c.command, ['weft', 'echo-server', '--tcp', '8080', '--udp', '9090', '--http', '8081']);
      assert.deepEqual(c.env[0], { name: 'WEFT_CLUSTER', value: 'east' });
      assert.deepEqual(c.readinessProbe.exec.command, ['weft', 'probe', '--timeout', '1000', '--http', 'http://127.0.0.1:8081/']);
    }
    const remoteEcho = bodies(west, PATH.pods)[0]!;
    assert.deepEqual([remoteEcho.spec.nodeSelector, remoteEcho.spec.containers[0].command, remoteEcho.spec.containers[0].env[0].value], [{ 'kubernetes.io/hostname': 'west-worker' }, ['weft', 'echo-server', '--http', '8081'], 'west']);
    // Policies: east admits its client on HTTP and UDP; west admits only east's client.
    assert.deepEqual(bodies(east, PATH.policies)[0]!.spec.ingress[0].fromEndpoints, [{ matchLabels: { app: 'ct-client' } }]);
    assert.deepEqual(bodies(west, PATH.policies)[0]!.spec.ingress[0], { fromEndpoints: [{ matchLabels: { app: 'ct-client', 'weft.io/cluster': 'east' } }], toPorts: [{ ports: [{ port: '8081', protocol: 'TCP' }] }] });
    for (const s of [east, west]) assert.deepEqual(bodies(s, PATH.services)[0]!.metadata.annotations, { 'weft.io/global': 'true' });

    // Probe pods: run once, on the first worker, as client or intruder, `weft probe` at the right address.
    assert.equal(probePods.length, 10);
    for (const p of probePods) {
      assert.deepEqual([p.spec.restartPolicy, p.spec.nodeSelector, p.spec.containers[0].image, p.spec.containers[0].terminationMessagePolicy], ['Never', { 'kubernetes.io/hostname': 'east-worker' }, IMAGE, 'FallbackToLogsOnError']);
      assert.deepEqual(p.spec.containers[0].command.slice(0, 6), ['weft', 'probe', '--timeout', '2000', '--termination-log', '/dev/termination-log']);
    }
    const summary = probePods.map((p) => `${p.metadata.labels.app} ${p.spec.containers[0].command.slice(6).join(' ')}`);
    assert.deepEqual(summary, [
      'ct-client --attempts 5 --http http://10.244.1.5:8081/',
      'ct-client --attempts 5 --http http://10.244.2.6:8081/',
      'ct-client --attempts 5 --udp 10.244.2.6:9090',
      'ct-intruder --attempts 5 --http http://10.244.1.5:8081/',
      'ct-intruder --attempts 5 --http http://10.244.2.6:8081/',
      'ct-client --attempts 5 --tcp 10.244.2.6:8080',
      'ct-client --attempts 5 --http http://10.96.7.7:80/',
      'ct-client --attempts 5 --http http://10.245.1.9:8081/',
      'ct-intruder --attempts 5 --http http://10.245.1.9:8081/',
      'ct-client --attempts 30 --expect-clusters east,west --http http://10.96.7.7:80/',
    ]);
    assert.deepEqual(probePods.map((p) => p.metadata.annotations[CASE_ANNOTATION]), r.results.map((x) => x.name));

    // Verdicts from the pods' terminated states.
    assert.deepEqual(r.results.map((x) => `${x.ok ? 'PASS' : 'FAIL'} ${x.name}: expected ${x.expected}, observed ${x.observed} (${x.detail})`), [
      'FAIL pod to pod, same node, allowed (HTTP): expected pass, observed drop (timeout)',
      'PASS pod to pod, across nodes, allowed (HTTP): expected pass, observed pass ({"server":"echo-other-node"})',
      'PASS pod to pod, across nodes, allowed (UDP): expected pass, observed pass (echoed)',
      'FAIL pod to pod, same node, denied by policy (wrong source): expected drop, observed pass ({"server":"echo-same-node"})',
      'PASS pod to pod, across nodes, denied by policy (wrong source): expected drop, observed drop (timeout)',
      'PASS pod to pod, denied by policy (port not allowed): expected drop, observed drop (timeout)',
      'PASS pod to ClusterIP service (HTTP): expected pass, observed pass ({"server":"echo-same-node"})',
      'PASS pod to pod, across clusters (east -> west), allowed by cluster label (HTTP): expected pass, observed pass ({"server":"echo-remote","cluster":"west"})',
      'PASS pod to pod, across clusters (east -> west), denied by policy (wrong source): expected drop, observed drop (timeout)',
      'PASS global service answered from both clusters (east, west): expected pass, observed pass (answered by east, west)',
    ]);
    assert.deepEqual([r.passed, r.failed, r.image, r.clusters], [8, 2, IMAGE, [{ context: 'kind-east', cluster: 'east' }, { context: 'kind-west', cluster: 'west' }]]);
    assert.match(progress.join('\n'), /east: deleted namespace weft-conntest[\s\S]*west: deleted namespace weft-conntest/);
  });

  it('reports a probe that did not exit 0 or 1 as an error, whatever was expected', async () => {
    const probes = [probeDone('probe-1', 137, 'Killed', 'OOMKilled'), ...Array.from({ length: 6 }, (_, i) => probeDone(`probe-${i + 2}`, [4, 5, 6].includes(i + 2) ? 1 : 0, 'x'))];
    await serve(oneClusterRun(probes));
    const r = await kubeConnectivityTest(options());
    assert.deepEqual([east.mismatches, east.exhausted], [[], true]);
    // One worker: both echo servers on it, and the case names say so.
    assert.deepEqual(bodies(east, PATH.pods).slice(0, 2).map((p) => p.spec.nodeSelector['kubernetes.io/hostname']), ['east-worker', 'east-worker']);
    assert.equal(r.results[1]!.name, 'pod to pod, same node, allowed (HTTP)');
    assert.deepEqual(bodies(east, PATH.services)[0]!.metadata.annotations, {});
    assert.deepEqual(r.results[0], { name: 'pod to pod, same node, allowed (HTTP)', expected: 'pass', observed: 'error', ok: false, detail: 'the probe exited 137 (OOMKilled): Killed' });
    assert.deepEqual([r.passed, r.failed], [6, 1]);
  });

  it('fails with the pods that are not ready and why, and still deletes the namespace', async () => {
    await serve([
      ...chart('east', 2),
      ...deployedInEast(),
      echoList([
        pendingPod('echo-same-node', { conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available: 1 Insufficient cpu' }] }),
        { metadata: { name: 'echo-other-node' }, status: { phase: 'Running', podIP: '10.244.2.6', conditions: [{ type: 'Ready', status: 'False' }], containerStatuses: [{ name: 'echo', ready: false, restartCount: 4, state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 1m20s restarting failed container' } }, lastState: { terminated: { exitCode: 1, reason: 'Error' } } }] } },
      ]),
      {
        request: `GET ${PATH.events}`,
        ...ok({ kind: 'EventList', items: [
          { involvedObject: { kind: 'Pod', name: 'echo-same-node' }, type: 'Warning', reason: 'FailedScheduling', message: 'old', lastTimestamp: '2025-01-01T00:00:00Z' },
          { involvedObject: { kind: 'Pod', name: 'echo-same-node' }, type: 'Warning', reason: 'FailedScheduling', message: '0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint', lastTimestamp: '2025-01-01T00:01:00Z' },
          { involvedObject: { kind: 'Pod', name: 'echo-other-node' }, type: 'Normal', reason: 'Pulled', message: 'already present' },
        ] }),
      },
      ...cleanup,
    ]);
    await assert.rejects(kubeConnectivityTest(options({ timeoutMs: 0 })), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'WEFT_ERR_CONNTEST_NOT_READY', err.message);
      assert.equal(
        err.message,
        'Cannot run the connectivity test: in context kind-east, pods in weft-conntest not ready after 0 s: ' +
          'echo-same-node: phase Pending, not scheduled (Unschedulable: 0/3 nodes are available: 1 Insufficient cpu), event FailedScheduling: 0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint; ' +
          'echo-other-node: phase Running, container echo waiting: CrashLoopBackOff (back-off 1m20s restarting failed container), container echo exited 1 (Error), 4 restarts',
      );
      return true;
    });
    assert.deepEqual(calls(east).slice(-2), [`DELETE ${PATH.namespace}`, `GET ${PATH.namespace}`], 'cleaned up');
    assert.equal(bodies(east, PATH.pods).length, 2, 'no probe pod');
    assert.deepEqual([east.mismatches, east.exhausted], [[], true]);
  });

  it('fails at once when the image cannot be pulled, naming the pod and the image, and deletes the namespace', async () => {
    await serve([
      ...chart('east', 2),
      ...deployedInEast(),
      echoList([pendingPod('echo-same-node', { containerStatuses: [{ name: 'echo', state: { waiting: { reason: 'ErrImagePull', message: 'failed to pull and unpack image "example.com/weft:dev": not found' } } }] }), readyPod('echo-other-node', '10.244.2.6')]),
      ...cleanup,
    ]);
    await assert.rejects(kubeConnectivityTest(options({ image: 'example.com/weft:dev' })), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'WEFT_ERR_CONNTEST_IMAGE');
      assert.match(err.message, /^Cannot run the connectivity test: pod weft-conntest\/echo-same-node in context kind-east cannot pull image "example.com\/weft:dev": ErrImagePull: failed to pull .*not found\. .*kind load docker-image example\.com\/weft:dev\) or pass --image$/);
      return true;
    });
    assert.equal(bodies(east, PATH.pods)[0]!.spec.containers[0].image, 'example.com/weft:dev', '--image wins over the chart\'s');
    assert.deepEqual(calls(east).slice(-2), [`DELETE ${PATH.namespace}`, `GET ${PATH.namespace}`]);
    assert.deepEqual([east.mismatches, east.exhausted], [[], true]);
  });

  it('refuses a cluster without the chart, writing nothing in either cluster, and never deletes a namespace it did not create', async () => {
    await serve([...chart('east', 2)], [{ request: `GET ${PATH.config}`, ...notFound('configmaps "weft-agent-config"') }]);
    await assert.rejects(kubeConnectivityTest(options({ destinationContext: 'kind-west' })), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'WEFT_ERR_CONNTEST_PREREQUISITE');
      assert.match(err.message, /^Cannot run the connectivity test: context kind-west: ConfigMap kube-system\/weft-agent-config not found: the Weft chart is not installed there \(namespace kube-system, release weft;/);
      return true;
    });
    assert.deepEqual([east.requests.filter((r) => r.method !== 'GET'), west.requests.filter((r) => r.method !== 'GET')], [[], []]);

    await serve([...chart('east', 2), { request: `POST ${PATH.namespaces}`, response: { status: 409, body: { kind: 'Status', reason: 'AlreadyExists', message: 'namespaces "weft-conntest" already exists', code: 409 } } }]);
    await assert.rejects(kubeConnectivityTest(options()), (err: Error & { code?: string }) => err.code === 'WEFT_ERR_CONNTEST_PREREQUISITE' && /namespace weft-conntest already exists .*kubectl --context kind-east delete namespace weft-conntest/.test(err.message));
    assert.deepEqual(calls(east).filter((c) => !c.startsWith('GET')), [`POST ${PATH.namespaces}`], 'no DELETE of a namespace it did not create');
  });

  it('runs as `weft connectivity test --context A -o json`: exit 1 when a case fails; --image without --context is a usage error', async () => {
    const probes = Array.from({ length: 7 }, (_, i) => probeDone(`probe-${i + 1}`, [3, 4, 5].includes(i) ? 1 : 0, 'x'));
    probes[3] = probeDone('probe-4', 0, 'leaked'); // denied, but answered
    await serve(oneClusterRun(probes));
    const out = await weft(['connectivity', 'test', '--context', 'kind-east', '--kubeconfig', kubeconfig, '-o', 'json']);
    assert.equal(out.code, 1, out.stderr);
    const json = JSON.parse(out.stdout);
    assert.deepEqual([json.passed, json.failed, json.clusters, json.image], [6, 1, [{ context: 'kind-east', cluster: 'east' }], IMAGE]);
    assert.deepEqual(json.results.filter((x: { ok: boolean }) => !x.ok).map((x: { name: string; observed: string }) => `${x.name}: ${x.observed}`), ['pod to pod, same node, denied by policy (wrong source): pass']);
    assert.deepEqual([east.mismatches, east.exhausted], [[], true]);

    const bad = await weft(['connectivity', 'test', '--image', 'x']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--image needs --context/);
  });
});

/** The CLI as a user runs it; asynchronously, so this process's replay servers keep answering. */
function weft(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = join(__dirname, '..', '..', 'bin', 'weft.js');
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env: { ...process.env, KUBECONFIG: '' } }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}
