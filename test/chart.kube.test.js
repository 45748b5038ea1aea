// The Helm chart (charts/weft), with the real helm (hack/kube/build.sh) against a real API server
// (kube-apiserver and etcd of the same build, started here on loopback): `helm lint`, `helm
// template`, values.schema.json enforced by helm itself, every rendered manifest validated by the
// API server (server-side dry run, strict field validation: unknown fields, types, enums, required
// fields), `helm install/upgrade/uninstall` keeping the certificates and keys the chart generates
// through `lookup`, the configurations it renders loaded by Weft's own loaders, and the mesh
// certificates it issues completing a real mutual-TLS handshake.
// Needs hack/kube/build.sh's tools and a built tree (npx tsc -b); no root, no cluster of its own.
'use strict';
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { X509Certificate } = require('node:crypto');
const { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join, resolve } = require('node:path');
const tls = require('node:tls');
const YAML = require('yaml');

const ROOT = resolve(__dirname, '..');
const CHART = join(ROOT, 'charts', 'weft');
const FIXTURES = join(ROOT, 'test', 'fixtures', 'chart');
const NS = 'kube-system';
const { kubeTool } = require(join(ROOT, 'packages', 'lab', 'dist', 'index.js'));
const { startApiServer, waitForKubeBuild } = require('./kube-api.js');

/** The API server every test of this file shares (started in the root `before`), and its control plane. */
let api;
let cp;
/** helm's own state (repositories, cache) goes to a scratch directory, never the user's. */
let helmHome;

/** Runs helm against the test's API server. */
function helm(args) {
  const env = { ...process.env, KUBECONFIG: cp.kubeconfig, HELM_CACHE_HOME: join(helmHome, 'cache'), HELM_CONFIG_HOME: join(helmHome, 'config'), HELM_DATA_HOME: join(helmHome, 'data') };
  return spawnSync(kubeTool('helm'), args, { encoding: 'utf8', env, timeout: 120_000 });
}

function kubectl(args, input) {
  return spawnSync(kubeTool('kubectl'), ['--kubeconfig', cp.kubeconfig, ...args], { encoding: 'utf8', input, timeout: 60_000 });
}

/** `helm template` of the release weft in kube-system; `args` are helm's flags. */
function helmTemplate(args) {
  return helm(['template', 'weft', CHART, '--namespace', NS, ...args]);
}

/** Parses helm's output: [{ source, obj }]. */
function parseManifests(text) {
  // YAML 1.1, as Kubernetes and Helm read manifests (0400 is octal there).
  return text.split(/^---\n/m).filter((d) => d.trim()).map((doc) => ({ source: /^# Source: (.*)$/m.exec(doc)[1], obj: YAML.parse(doc, { version: '1.1' }) }));
}

/** Renders and parses, failing with helm's error. */
function render(args = []) {
  const r = helmTemplate(args);
  assert.equal(r.status, 0, `helm template ${args.join(' ')} failed:\n${r.stderr}`);
  return parseManifests(r.stdout);
}

/** `helm install` or `helm upgrade` of the release; returns what the release now holds, as the API server stores it. */
function release(verb, args = []) {
  const r = helm([verb, 'weft', CHART, '--namespace', NS, ...args]);
  assert.equal(r.status, 0, `helm ${verb} ${args.join(' ')} failed:\n${r.stderr}`);
  const got = kubectl(['get', 'secrets,configmaps', '-n', NS, '-l', 'app.kubernetes.io/instance=weft', '-o', 'json']);
  assert.equal(got.status, 0, got.stderr);
  return JSON.parse(got.stdout).items.map((obj) => ({ source: 'cluster', obj }));
}

function uninstall() {
  // No kubelet runs the post-delete hook's Job here: e2e/lab-kubernetes.kube.test.js runs it.
  const r = helm(['uninstall', 'weft', '--namespace', NS, '--wait', '--no-hooks']);
  assert.equal(r.status, 0, `helm uninstall failed:\n${r.stderr}`);
}

/** A ServiceAccount's token from the API server (TokenRequest), bound to `pod` when given, as kubelet projects it. */
async function token(sa, audiences, pod) {
  const r = await api.call('POST', `/api/v1/namespaces/${NS}/serviceaccounts/${sa}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600, ...(audiences ? { audiences } : {}), ...(pod ? { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod } } : {}) } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.status.token;
}

const find = (docs, kind, name) => {
  const d = docs.find((x) => x.obj.kind === kind && x.obj.metadata.name === name);
  assert.ok(d, `no ${kind} ${name} rendered`);
  return d.obj;
};
const secretData = (secret, key) => Buffer.from(secret.data[key], 'base64').toString('utf8');

/** Only GA API versions: the server also serves beta ones, which we must never emit. */
const GA = new Set(['v1', 'apps/v1', 'batch/v1', 'rbac.authorization.k8s.io/v1', 'admissionregistration.k8s.io/v1', 'apiextensions.k8s.io/v1']);

/**
 * Every object, as the API server validates it (a server-side dry run with strict field
 * validation: unknown or duplicate fields, types, formats, enums, required fields, admission).
 */
function validateManifests(docs) {
  const problems = docs.filter(({ obj }) => !GA.has(obj.apiVersion)).map(({ source, obj }) => `${source}: ${obj.kind} ${obj.metadata?.name}: apiVersion ${obj.apiVersion} is not one this chart may use`);
  assert.deepEqual(problems, [], problems.join('\n'));
  const r = kubectl(['apply', '--server-side', '--dry-run=server', '--validate=strict', '--field-manager=weft-chart-test', '--force-conflicts', '-o', 'name', '-f', '-'], docs.map(({ obj }) => JSON.stringify(obj)).join('\n'));
  assert.equal(r.status, 0, `the API server refuses rendered manifests:\n${r.stderr}`);
  assert.equal(r.stdout.trim().split('\n').length, docs.length, r.stdout);
}

describe('charts/weft (real helm, real API server)', function () {
  this.timeout(120_000);
  waitForKubeBuild();
  let scratch;
  let sharedCa;
  let certs;

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'weft-chart-'));
    helmHome = join(scratch, 'helm');
    api = await startApiServer('chart-test');
    cp = api.cp;
    certs = require(join(ROOT, 'packages', 'clustermesh', 'dist', 'certs.js'));
    // The CA two clusters share when they are connected through values alone.
    const ca = await certs.createCa('mesh', 30);
    sharedCa = join(scratch, 'shared-ca.yaml');
    writeFileSync(sharedCa, YAML.stringify({ tls: { ca: { cert: ca.cert, key: ca.key } } }));
  });
  after(async () => {
    await api?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  describe('default values', () => {
    let docs;
    before(() => {
      docs = render();
    });

    it('renders valid Kubernetes objects: agent, etcd, RBAC, no clustermesh', () => {
      validateManifests(docs);
      const kinds = docs.map((d) => `${d.obj.kind}/${d.obj.metadata.name}`).sort();
      assert.deepEqual(kinds, ['ClusterRole/weft-agent', 'ClusterRole/weft-etcd-issuer', 'ClusterRole/weft-uninstall-cleanup', 'ClusterRoleBinding/weft-agent', 'ClusterRoleBinding/weft-etcd-issuer', 'ClusterRoleBinding/weft-uninstall-cleanup', 'ConfigMap/weft-agent-config', 'ConfigMap/weft-etcd-issuer-config', 'ConfigMap/weft-relay-config', 'DaemonSet/weft-agent', 'Deployment/weft-etcd', 'Deployment/weft-relay', 'Job/weft-uninstall-cleanup', 'Role/weft-uninstall-cleanup', 'RoleBinding/weft-uninstall-cleanup', 'Secret/weft-etcd-agent', 'Secret/weft-etcd-ca', 'Secret/weft-etcd-root', 'Secret/weft-etcd-server', 'Secret/weft-observer-agent', 'Secret/weft-observer-ca', 'Secret/weft-observer-relay', 'Service/weft-etcd', 'Service/weft-relay', 'ServiceAccount/weft-agent', 'ServiceAccount/weft-etcd', 'ServiceAccount/weft-uninstall-cleanup', 'ValidatingAdmissionPolicy/weft-agent-own-weftnode', 'ValidatingAdmissionPolicyBinding/weft-agent-own-weftnode']);
      const clusterScoped = new Set(['ClusterRole', 'ClusterRoleBinding', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
      for (const { obj } of docs) if (!clusterScoped.has(obj.kind)) assert.equal(obj.metadata.namespace, NS, `${obj.kind} ${obj.metadata.name}`);
    });

    it('cleans up after helm uninstall with a post-delete Job allowed only to list and delete WeftNodes and WeftIdentities, and to list the release\'s pods', () => {
      const hooks = docs.filter(({ obj }) => obj.metadata.annotations?.['helm.sh/hook']);
      assert.deepEqual(hooks.map(({ obj }) => [obj.kind, obj.metadata.annotations['helm.sh/hook'], obj.metadata.annotations['helm.sh/hook-weight']]).sort(), [['ClusterRole', 'post-delete', '-1'], ['ClusterRoleBinding', 'post-delete', '-1'], ['Job', 'post-delete', '0'], ['Role', 'post-delete', '-1'], ['RoleBinding', 'post-delete', '-1'], ['ServiceAccount', 'post-delete', '-1']]);
      assert.deepEqual(find(docs, 'ClusterRole', 'weft-uninstall-cleanup').rules, [{ apiGroups: ['weft.io'], resources: ['weftnodes', 'weftidentities'], verbs: ['list', 'delete'] }]);
      assert.deepEqual(find(docs, 'Role', 'weft-uninstall-cleanup').rules, [{ apiGroups: [''], resources: ['pods'], verbs: ['list'] }]);
      const job = find(docs, 'Job', 'weft-uninstall-cleanup').spec.template.spec;
      assert.deepEqual(job.containers[0].command, ['weft', 'uninstall-cleanup', '--cluster', 'default', '--namespace', NS, '--release', 'weft']);
      assert.equal(job.hostNetwork, true, 'the pod network may be gone with the agents');
      assert.equal(helmTemplate(['--set', 'uninstall.cleanup=false']).stdout.includes('uninstall-cleanup'), false);
    });

    it('is validated by the API server, which refuses an unknown field anywhere in an object', () => {
      const agent = structuredClone(find(docs, 'DaemonSet', 'weft-agent'));
      agent.spec.template.spec.containers[0].securityContext.capabilites = { add: ['ALL'] };
      assert.throws(() => validateManifests([{ source: 'test', obj: agent }]), /securityContext\.capabilites: field not declared in schema/);
    });

    it('runs the agent in the host network with capabilities, not privileged', () => {
      const pod = find(docs, 'DaemonSet', 'weft-agent').spec.template.spec;
      assert.equal(pod.hostNetwork, true);
      const agent = pod.containers.find((c) => c.name === 'agent');
      assert.equal(agent.securityContext.privileged, undefined);
      assert.deepEqual(agent.securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN', 'SYS_ADMIN', 'NET_RAW', 'BPF', 'PERFMON'] });
      // The API server allows Bidirectional propagation only in privileged containers: only the bpffs mount step is.
      const privileged = [...pod.initContainers, ...pod.containers].filter((c) => c.securityContext?.privileged).map((c) => c.name);
      assert.deepEqual(privileged, ['mount-bpf-fs']);
      for (const c of [...pod.initContainers, ...pod.containers]) {
        for (const m of c.volumeMounts ?? []) if (m.mountPropagation === 'Bidirectional') assert.ok(c.securityContext?.privileged, `${c.name} mounts ${m.mountPath} Bidirectional unprivileged`);
      }
      const env = Object.fromEntries(agent.env.map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath ?? e.value]));
      assert.deepEqual(env, { WEFT_NODE_NAME: 'spec.nodeName', WEFT_NODE_IP: 'status.hostIP', WEFT_LOG_LEVEL: 'info' });
      const hostPaths = Object.fromEntries(pod.volumes.filter((v) => v.hostPath).map((v) => [v.hostPath.path, v.name]));
      for (const p of ['/sys/fs/bpf', '/sys/fs/cgroup', '/var/run/weft', '/run/netns', '/opt/cni/bin', '/etc/cni/net.d']) assert.ok(hostPaths[p], `no host mount of ${p}`);
      const install = pod.initContainers.find((c) => c.name === 'install-cni');
      assert.deepEqual(install.command, ['weft', 'cni', 'install', '--bin-dir', '/host/opt/cni/bin', '--conf-dir', '/host/etc/cni/net.d']);
      assert.equal(agent.lifecycle, undefined, 'no CNI uninstall on stop unless cni.uninstall');
      assert.equal(agent.image, `ghcr.io/weft-mesh/weft:${YAML.parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')).appVersion}`);
    });

    it('asks for the runtime\'s default seccomp filter in every pod, and no privilege escalation where Kubernetes allows it', () => {
      const pods = [find(docs, 'DaemonSet', 'weft-agent'), find(docs, 'Deployment', 'weft-etcd')].map((o) => o.spec.template.spec);
      for (const pod of pods) assert.deepEqual(pod.securityContext?.seccompProfile, { type: 'RuntimeDefault' });
      // Not settable: privileged (mount-bpf-fs) and SYS_ADMIN (agent) containers, which the API server refuses with false.
      const escalating = pods.flatMap((p) => [...(p.initContainers ?? []), ...p.containers]).filter((c) => c.securityContext?.allowPrivilegeEscalation !== false).map((c) => c.name).sort();
      assert.deepEqual(escalating, ['agent', 'mount-bpf-fs']);
    });

    it('admits an agent\'s WeftNode write only for the node its token is bound to (the policy, enforced by the API server)', async () => {
      const policy = find(docs, 'ValidatingAdmissionPolicy', 'weft-agent-own-weftnode');
      const binding = find(docs, 'ValidatingAdmissionPolicyBinding', 'weft-agent-own-weftnode');
      assert.equal(binding.spec.policyName, policy.metadata.name);
      assert.deepEqual(binding.spec.validationActions, ['Deny']);
      assert.equal(policy.spec.failurePolicy, 'Fail');
      release('install');
      const created = [];
      const create = async (path, obj) => {
        const r = await api.call('POST', path, obj);
        assert.equal(r.status, 201, JSON.stringify(r.body));
        created.push(`${path}/${obj.metadata.name}`);
        return r.body;
      };
      try {
        // The nodes and an agent pod on node-a, as kubelet and the DaemonSet would make them.
        for (const name of ['node-a', 'node-b']) await create('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name } });
        await create(`/api/v1/namespaces/${NS}/pods`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'weft-agent-x' }, spec: { nodeName: 'node-a', serviceAccountName: 'weft-agent', containers: [{ name: 'agent', image: 'weft' }] } });
        // The agent's token as kubelet requests it for the projected volume: bound to its pod, so to node-a.
        const bound = await token('weft-agent', undefined, 'weft-agent-x');
        const unbound = await token('weft-agent');
        const weftNode = (name) => ({ apiVersion: 'weft.io/v1', kind: 'WeftNode', metadata: { name }, spec: { cluster: 'default', clusterId: 1, nodeIp: '172.18.0.3', podCidr: '10.244.1.0/24', routing: 'vxlan' } });
        const write = (name, token) => api.call('POST', '/apis/weft.io/v1/weftnodes', weftNode(name), token);
        // The API server loads a new policy and its binding in the background (seconds under load):
        // wait until it denies, with dry runs, which store nothing.
        const deadline = Date.now() + 30_000;
        let probe;
        while ((probe = await api.call('POST', '/apis/weft.io/v1/weftnodes?dryRun=All', weftNode('node-b'), bound)).status !== 403 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
        assert.equal(probe.status, 403, `the policy in force within 30 s: ${JSON.stringify(probe.body)}`);
        const own = await write('node-a', bound);
        assert.equal(own.status, 201, `its own WeftNode: ${JSON.stringify(own.body)}`);
        created.push('/apis/weft.io/v1/weftnodes/node-a');
        const other = await write('node-b', bound);
        assert.equal(other.status, 403, 'another node\'s');
        assert.match(other.body.message, /the Weft agent may write only the WeftNode of its own node: this token is of node node-a, the WeftNode is node-b/);
        const loose = await write('node-a-2', unbound);
        assert.equal(loose.status, 403, 'a token bound to no node');
        // Other users are not matched: the admin writes any node's.
        assert.equal((await api.call('POST', '/apis/weft.io/v1/weftnodes', weftNode('node-b'))).status, 201);
        created.push('/apis/weft.io/v1/weftnodes/node-b');
        // The status, as the agent publishes its keys: its own only.
        const status = { status: { ipsec: { keyIds: [1], sendKeyId: 1 } } };
        const mine = await api.call('PATCH', '/apis/weft.io/v1/weftnodes/node-a/status', status, bound);
        assert.equal(mine.status, 200, `its own status: ${JSON.stringify(mine.body)}`);
        const theirs = await api.call('PATCH', '/apis/weft.io/v1/weftnodes/node-b/status', status, bound);
        assert.equal(theirs.status, 403, 'another node\'s status');
        assert.match(theirs.body.message, /this token is of node node-a, the WeftNode is node-b/);
      } finally {
        for (const path of created.reverse()) await api.call('DELETE', path);
        uninstall();
      }
      assert.equal(render(['--set', 'agent.weftNodeAdmissionPolicy=false']).filter((d) => d.obj.kind.startsWith('ValidatingAdmissionPolicy')).length, 0);
    });

    it('renders an agent config that @weft/agent accepts, with the node coming from the environment', () => {
      const { validateAgentConfig } = require(join(ROOT, 'packages', 'agent', 'dist', 'config.js'));
      const config = JSON.parse(find(docs, 'ConfigMap', 'weft-agent-config').data['agent.json']);
      assert.equal(config.source, 'kubernetes');
      for (const k of ['node', 'nodeIp', 'podCidr']) assert.equal(config[k], undefined, `${k} must come from the node, not the chart`);
      // The environment the DaemonSet gives the agent (downward API).
      const loaded = validateAgentConfig(config, 'rendered agent.json', { WEFT_NODE_NAME: 'kind-worker', WEFT_NODE_IP: '172.18.0.3' });
      assert.deepEqual({ serviceCidrs: loaded.serviceCidrs, underlayCidrs: loaded.underlayCidrs, remotePodCidrMinBits: loaded.remotePodCidrMinBits }, { serviceCidrs: ['10.96.0.0/12'], underlayCidrs: undefined, remotePodCidrMinBits: 16 }, 'the agent finds its underlay itself unless cluster.underlayCidrs is set');
      assert.deepEqual([loaded.node, loaded.nodeIp], ['kind-worker', '172.18.0.3']);
      for (const k of Object.keys(config)) assert.ok(k in loaded, `agent.json key ${k} is not an agent config key`);
      // The CNI plugin `weft cni install` writes (no --socket) must find the agent's socket.
      const { DEFAULT_AGENT_SOCKET } = require(join(ROOT, 'packages', 'cni', 'dist', 'install.js'));
      assert.equal(join(loaded.stateDir, 'agent.sock'), DEFAULT_AGENT_SOCKET);
      assert.deepEqual({ cluster: loaded.cluster, clusterId: loaded.clusterId, routing: loaded.routing, encryption: loaded.encryption, etcd: loaded.etcd }, { cluster: 'default', clusterId: 1, routing: 'vxlan', encryption: 'wireguard', etcd: ['https://10.96.0.20:9379'] });
      assert.equal(find(docs, 'Service', 'weft-etcd').spec.clusterIP, '10.96.0.20');
      assert.equal(config.conntrack, undefined, 'the agent\'s conntrack defaults unless set');
    });

    it('passes agent.conntrack to the agent, which accepts it', () => {
      const { validateAgentConfig } = require(join(ROOT, 'packages', 'agent', 'dist', 'config.js'));
      const docs = render(['--set', 'agent.conntrack.maxEntriesPerEndpoint=20000', '--set', 'agent.conntrack.udpTimeoutSec=30']);
      const config = JSON.parse(find(docs, 'ConfigMap', 'weft-agent-config').data['agent.json']);
      assert.deepEqual(config.conntrack, { maxEntriesPerEndpoint: 20000, udpTimeoutSec: 30 });
      const loaded = validateAgentConfig(config, 'rendered agent.json', { WEFT_NODE_NAME: 'n1', WEFT_NODE_IP: '172.18.0.3' });
      assert.equal(loaded.conntrack.maxEntriesPerEndpoint, 20000);
      assert.equal(loaded.conntrack.tcpEstablishedTimeoutSec, 21600);
      const bad = helmTemplate(['--set', 'agent.conntrack.udpTimeout=30']);
      assert.notEqual(bad.status, 0, 'an unknown conntrack setting is refused by the schema');
    });
  });

  describe('two clusters connected through values', () => {
    const meshOf = (docs) => JSON.parse(secretData(find(docs, 'Secret', 'weft-clustermesh-config'), 'config.json'));
    let east;
    let west;
    before(() => {
      east = render(['-f', join(FIXTURES, 'east.yaml'), '-f', sharedCa]);
      west = render(['-f', join(FIXTURES, 'west.yaml'), '-f', sharedCa]);
    });

    it('renders valid Kubernetes objects in both clusters', () => {
      validateManifests(east);
      validateManifests(west);
      const svc = find(east, 'Service', 'weft-clustermesh-apiserver');
      assert.deepEqual(svc.spec.ports, [{ name: 'mesh', protocol: 'TCP', port: 32379, targetPort: 32379, nodePort: 32379 }]);
    });

    it('renders clustermesh configs that @weft/clustermesh loads and accepts', () => {
      const { loadMeshConfig, checkRemotes, checkRemoteRanges } = require(join(ROOT, 'packages', 'clustermesh', 'dist', 'config.js'));
      for (const [docs, name, id, remote] of [[east, 'east', 1, 'west:2:172.18.0.4:32379'], [west, 'west', 2, 'east:1:172.18.0.2:32379']]) {
        const file = join(scratch, `${name}-mesh.json`);
        writeFileSync(file, JSON.stringify(meshOf(docs)));
        const mesh = loadMeshConfig(file);
        assert.equal(mesh.cluster, name);
        assert.equal(mesh.source, 'kubernetes');
        assert.equal(mesh.clusterId, id);
        assert.deepEqual(mesh.etcd, ['https://10.96.0.20:9379']);
        assert.deepEqual(mesh.remotes.map((r) => `${r.name}:${r.id}:${r.address}`), [remote]);
        assert.deepEqual(checkRemotes(mesh.cluster, mesh.clusterId, mesh.remotes), []);
        assert.deepEqual(checkRemoteRanges(mesh, mesh.remotes), []);
        // What remotes may not claim, and the caps and stall limit of the export.
        assert.deepEqual({ serviceCidrs: mesh.serviceCidrs, minPodCidrBits: mesh.minPodCidrBits, exportStallSeconds: mesh.exportStallSeconds }, { serviceCidrs: ['10.96.0.0/12'], minPodCidrBits: 16, exportStallSeconds: 300 });
      }
      const eastMesh = loadMeshConfig(join(scratch, 'east-mesh.json'));
      assert.deepEqual({ podCidrs: eastMesh.podCidrs, underlayCidrs: eastMesh.underlayCidrs }, { podCidrs: ['10.244.0.0/16'], underlayCidrs: ['172.18.0.0/16'] });
      assert.deepEqual({ podCidrs: eastMesh.remotes[0].podCidrs, limits: eastMesh.remotes[0].limits }, { podCidrs: ['10.245.0.0/16'], limits: { endpoints: 200000 } });
    });

    it('mounts the remotes Secret of `weft clustermesh connect` optionally, as remotesDir, and leaves it out of the release', () => {
      const pod = find(east, 'Deployment', 'weft-clustermesh-apiserver').spec.template.spec;
      const volume = pod.volumes.find((v) => v.secret?.secretName === 'weft-clustermesh-remotes');
      assert.ok(volume, 'no volume of Secret weft-clustermesh-remotes');
      assert.equal(volume.secret.optional, true, 'the pod must start before any connect');
      const mount = pod.containers[0].volumeMounts.find((m) => m.name === volume.name);
      assert.equal(mount.readOnly, true);
      assert.equal(meshOf(east).remotesDir, mount.mountPath);
      // Helm must not own it, or an upgrade would delete what connect wrote.
      assert.equal(east.some((d) => d.obj.metadata.name === 'weft-clustermesh-remotes'), false);
    });

    it('issues certificates with which each side completes mutual TLS with the other', async () => {
      for (const [server, client, dialed] of [[east, west, '172.18.0.2'], [west, east, '172.18.0.4']]) {
        const s = meshOf(server);
        const remote = meshOf(client).remotes[0];
        assert.equal(remote.address, `${dialed}:32379`);
        const peer = await handshake(s, remote, dialed);
        assert.equal(peer, meshOf(client).cluster, 'the server must see the client cluster name as CN');
      }
    });

    it('refuses a client certificate from another CA', async () => {
      const stranger = await certs.createCa('stranger', 30);
      const bad = { ...meshOf(west).remotes[0], ...(await certs.issue(stranger, 'west')) };
      await assert.rejects(handshake(meshOf(east), bad, '172.18.0.2'));
    });
  });

  describe('TLS generated by the chart (tls.mode auto)', () => {
    it('keeps the CA and issued certificates across an upgrade, and reissues the server certificate when its addresses change', async () => {
      const remoteCa = await certs.createCa('west', 30);
      // A remote connected the other way: its CA and our client certificate from it (as `weft clustermesh connect` hands out).
      const values = join(scratch, 'auto.yaml');
      writeFileSync(values, YAML.stringify({ cluster: { name: 'east', id: 1 }, clustermesh: { enabled: true, remotes: [{ name: 'west', id: 2, address: '172.18.0.4', tls: { ca: remoteCa.cert, ...(await certs.issue(remoteCa, 'east')) } }] }, tls: { server: { ipAddresses: ['172.18.0.2'] } } }));
      validateManifests(render(['-f', values]));
      const first = release('install', ['-f', values]);
      try {
        assert.equal(first.some((d) => d.obj.metadata.name === 'weft-clustermesh-client'), false, 'no shared-CA client certificate when every remote brings its own');
        const again = release('upgrade', ['-f', values]);
        for (const name of ['weft-clustermesh-ca', 'weft-clustermesh-server', 'weft-clustermesh-config']) assert.deepEqual(find(again, 'Secret', name).data, find(first, 'Secret', name).data, `${name} changed on upgrade`);
        const remote = JSON.parse(secretData(find(again, 'Secret', 'weft-clustermesh-config'), 'config.json')).remotes[0];
        assert.equal(remote.ca, remoteCa.cert);
        const elsewhere = join(scratch, 'elsewhere.yaml');
        writeFileSync(elsewhere, YAML.stringify({ tls: { server: { ipAddresses: ['172.18.0.9'] } } }));
        const moved = release('upgrade', ['-f', values, '-f', elsewhere]);
        assert.equal(secretData(find(moved, 'Secret', 'weft-clustermesh-ca'), 'ca.crt'), secretData(find(first, 'Secret', 'weft-clustermesh-ca'), 'ca.crt'));
        const cert = new X509Certificate(secretData(find(moved, 'Secret', 'weft-clustermesh-server'), 'tls.crt'));
        assert.notEqual(cert.serialNumber, new X509Certificate(secretData(find(first, 'Secret', 'weft-clustermesh-server'), 'tls.crt')).serialNumber);
        assert.equal(cert.checkIP('172.18.0.9'), '172.18.0.9');
        assert.ok(cert.verify(new X509Certificate(secretData(find(first, 'Secret', 'weft-clustermesh-ca'), 'ca.crt')).publicKey), 'reissued by the same CA');
      } finally {
        uninstall();
      }
    });
  });

  describe('etcd mutual TLS (etcd.tls, on by default)', () => {
    const MOUNT = '/etc/weft/etcd-tls';
    let docs;
    before(() => {
      docs = render(['--set', 'clustermesh.enabled=true']);
    });
    const etcdPod = () => find(docs, 'Deployment', 'weft-etcd').spec.template.spec;
    const pem = (name, key) => secretData(find(docs, 'Secret', name), key);
    const agentConfig = () => JSON.parse(find(docs, 'ConfigMap', 'weft-agent-config').data['agent.json']);
    const meshConfig = () => JSON.parse(secretData(find(docs, 'Secret', 'weft-clustermesh-config'), 'config.json'));

    it('serves https only, to clients with a certificate of its CA; probes on plain loopback', () => {
      validateManifests(docs);
      const c = etcdPod().containers[0];
      const flags = Object.fromEntries(c.command.slice(1).map((f) => f.split(/=(.*)/s).slice(0, 2)));
      assert.equal(flags['--listen-client-urls'], 'https://$(WEFT_NODE_IP):9379,https://127.0.0.1:9379');
      assert.equal(flags['--advertise-client-urls'], 'https://$(WEFT_NODE_IP):9379');
      assert.ok('--client-cert-auth' in flags, 'etcd must require client certificates');
      assert.deepEqual([flags['--cert-file'], flags['--key-file'], flags['--trusted-ca-file']], [`${MOUNT}/tls.crt`, `${MOUNT}/tls.key`, `${MOUNT}/ca.crt`]);
      assert.equal(flags['--listen-peer-urls'], 'http://127.0.0.1:9380', 'one member: its peer port stays on loopback');
      assert.equal(flags['--listen-metrics-urls'], 'http://127.0.0.1:9381');
      for (const p of [c.livenessProbe, c.readinessProbe]) assert.deepEqual(p.httpGet, { host: '127.0.0.1', path: '/health', port: 9381 });
      const mount = c.volumeMounts.find((m) => m.mountPath === MOUNT);
      assert.equal(etcdPod().volumes.find((v) => v.name === mount.name).secret.secretName, 'weft-etcd-server');
    });

    it('gives the apiserver https endpoints and etcdTls files from its own client Secret, and each agent the CA, a place for its own credential and a pod-bound token for the issuer', () => {
      const { validateAgentConfig } = require(join(ROOT, 'packages', 'agent', 'dist', 'config.js'));
      const { loadMeshConfig } = require(join(ROOT, 'packages', 'clustermesh', 'dist', 'config.js'));
      const file = join(scratch, 'etcd-tls-mesh.json');
      writeFileSync(file, JSON.stringify(meshConfig()));
      const agent = validateAgentConfig(agentConfig(), 'rendered agent.json', { WEFT_NODE_NAME: 'n1', WEFT_NODE_IP: '172.18.0.3' });
      const mesh = loadMeshConfig(file);
      // Where a path of a container comes from: [volume, key in it].
      const source = (kind, name, path) => {
        const pod = find(docs, kind, name).spec.template.spec;
        const mount = pod.containers[0].volumeMounts.find((m) => path.startsWith(`${m.mountPath}/`));
        assert.ok(mount, `${name}: ${path} is on no mount`);
        return [pod.volumes.find((v) => v.name === mount.name), path.slice(mount.mountPath.length + 1), mount];
      };
      assert.deepEqual(mesh.etcd, ['https://10.96.0.20:9379']);
      for (const path of Object.values(mesh.etcdTls)) {
        const [volume, key] = source('Deployment', 'weft-clustermesh-apiserver', path);
        assert.equal(volume.secret?.secretName, 'weft-etcd-clustermesh', path);
        assert.ok(key in find(docs, 'Secret', 'weft-etcd-clustermesh').data, `${path} is not a key of weft-etcd-clustermesh`);
      }
      assert.deepEqual(agent.etcd, ['https://10.96.0.20:9379']);
      assert.deepEqual(agent.etcdTls, { ca: '/etc/weft/etcd-tls/ca.crt', cert: '/var/run/weft/etcd-client.crt', key: '/var/run/weft/etcd-client.key' });
      assert.deepEqual(Object.keys(find(docs, 'Secret', 'weft-etcd-agent').data), ['ca.crt'], 'agents share no key');
      assert.equal(source('DaemonSet', 'weft-agent', agent.etcdTls.ca)[0].secret.secretName, 'weft-etcd-agent');
      for (const path of [agent.etcdTls.cert, agent.etcdTls.key]) assert.equal(source('DaemonSet', 'weft-agent', path)[0].hostPath?.path, '/var/run/weft', `${path}: written by the agent on its node`);
      assert.deepEqual(agent.etcdIssuer, { url: 'https://10.96.0.20:9382/v1/etcd-credentials', tokenFile: '/var/run/secrets/weft/etcd-issuer/token' });
      const [tokenVolume] = source('DaemonSet', 'weft-agent', agent.etcdIssuer.tokenFile);
      assert.deepEqual(tokenVolume.projected.sources, [{ serviceAccountToken: { audience: 'weft-etcd-issuer', expirationSeconds: 3600, path: 'token' } }]);
      // The issuer: beside etcd, on the Service, allowed TokenReviews and nothing else.
      assert.deepEqual(find(docs, 'Service', 'weft-etcd').spec.ports.map((p) => `${p.name}:${p.port}`), ['client:9379', 'issuer:9382']);
      assert.deepEqual(find(docs, 'ClusterRole', 'weft-etcd-issuer').rules, [{ apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] }]);
      const issuer = etcdPod().containers.find((c) => c.name === 'issuer');
      assert.deepEqual(issuer.command, ['weft', 'etcd-issuer', '--config', '/etc/weft/etcd-issuer/config.json']);
      assert.equal(etcdPod().automountServiceAccountToken, false, 'only the issuer container mounts an API token');
      assert.equal(etcdPod().containers.find((c) => c.name === 'etcd').volumeMounts.some((m) => m.name === 'api-token' || m.name === 'etcd-ca'), false);
    });

    it('issues the server certificate for the ClusterIP, loopback and the Service names, and client-auth client certificates, all from the etcd CA', () => {
      const ca = new X509Certificate(pem('weft-etcd-ca', 'ca.crt'));
      assert.ok(ca.ca);
      assert.notEqual(ca.fingerprint256, new X509Certificate(pem('weft-clustermesh-ca', 'ca.crt')).fingerprint256, 'not the mesh CA: a remote cluster must not open this etcd');
      const server = new X509Certificate(pem('weft-etcd-server', 'tls.crt'));
      assert.ok(server.verify(ca.publicKey) && server.checkIssued(ca));
      assert.deepEqual(server.subjectAltName.split(', ').sort(), ['DNS:localhost', 'DNS:weft-etcd', 'DNS:weft-etcd.kube-system', 'DNS:weft-etcd.kube-system.svc', 'IP Address:10.96.0.20', 'IP Address:127.0.0.1']);
      assert.equal(server.checkIP('10.96.0.20'), '10.96.0.20');
      assert.ok(server.keyUsage.includes('1.3.6.1.5.5.7.3.1'), 'serverAuth');
      for (const [secret, cn] of [['weft-etcd-root', 'root'], ['weft-etcd-clustermesh', 'weft-clustermesh-apiserver']]) {
        const cert = new X509Certificate(pem(secret, 'tls.crt'));
        assert.ok(cert.verify(ca.publicKey), `${secret} is not signed by the etcd CA`);
        assert.equal(cert.subject, `CN=${cn}`);
        assert.ok(cert.keyUsage.includes('1.3.6.1.5.5.7.3.2'), `${secret}: clientAuth`);
        assert.equal(pem(secret, 'ca.crt'), ca.toString());
        assert.ok(cert.checkPrivateKey(require('node:crypto').createPrivateKey(pem(secret, 'tls.key'))));
      }
      assert.equal(docs.some((d) => d.obj.kind === 'Secret' && d.obj.metadata.name !== 'weft-etcd-ca' && 'ca.key' in d.obj.data && d.obj.metadata.name.startsWith('weft-etcd')), false, 'the CA key is in weft-etcd-ca only');
    });

    it('keeps the etcd CA and certificates across an upgrade, and reissues the server certificate for a new ClusterIP', () => {
      const first = release('install', ['--set', 'clustermesh.enabled=true']);
      try {
        const again = release('upgrade', ['--set', 'clustermesh.enabled=true']);
        for (const name of ['weft-etcd-ca', 'weft-etcd-server', 'weft-etcd-agent', 'weft-etcd-root', 'weft-etcd-clustermesh']) assert.deepEqual(find(again, 'Secret', name).data, find(first, 'Secret', name).data, `${name} changed on upgrade`);
        // The API server refuses a new ClusterIP in place (helm's --force-replace too: it replaces, it
        // does not recreate); the Service is deleted first, and the upgrade creates it anew.
        const inPlace = helm(['upgrade', 'weft', CHART, '--namespace', NS, '--set', 'clustermesh.enabled=true,etcd.service.clusterIP=10.96.0.30']);
        assert.match(inPlace.stderr, /spec\.clusterIPs\[0\]: Invalid value: .*may not change once set/);
        assert.equal(kubectl(['delete', 'service', 'weft-etcd', '-n', NS]).status, 0);
        const moved = release('upgrade', ['--set', 'clustermesh.enabled=true,etcd.service.clusterIP=10.96.0.30']);
        assert.equal(JSON.parse(kubectl(['get', 'service', 'weft-etcd', '-n', NS, '-o', 'json']).stdout).spec.clusterIP, '10.96.0.30');
        assert.equal(secretData(find(moved, 'Secret', 'weft-etcd-ca'), 'ca.crt'), secretData(find(first, 'Secret', 'weft-etcd-ca'), 'ca.crt'));
        assert.deepEqual(find(moved, 'Secret', 'weft-etcd-root').data, find(first, 'Secret', 'weft-etcd-root').data, 'client certificates do not name the address');
        const server = new X509Certificate(secretData(find(moved, 'Secret', 'weft-etcd-server'), 'tls.crt'));
        assert.equal(server.checkIP('10.96.0.30'), '10.96.0.30');
        assert.ok(server.verify(new X509Certificate(secretData(find(first, 'Secret', 'weft-etcd-ca'), 'ca.crt')).publicKey), 'reissued by the same CA');
      } finally {
        uninstall();
      }
    });

    it('with etcd.tls.enabled=false: plain HTTP as before, no etcdTls, no etcd Secrets', () => {
      const plain = render(['--set', 'clustermesh.enabled=true,etcd.tls.enabled=false']);
      validateManifests(plain);
      const command = find(plain, 'Deployment', 'weft-etcd').spec.template.spec.containers[0].command;
      assert.ok(command.includes('--listen-client-urls=http://$(WEFT_NODE_IP):9379,http://127.0.0.1:9379'));
      assert.equal(command.includes('--client-cert-auth'), false);
      const agent = JSON.parse(find(plain, 'ConfigMap', 'weft-agent-config').data['agent.json']);
      const mesh = JSON.parse(secretData(find(plain, 'Secret', 'weft-clustermesh-config'), 'config.json'));
      assert.deepEqual([agent.etcd, agent.etcdTls, mesh.etcd, mesh.etcdTls], [['10.96.0.20:9379'], undefined, ['10.96.0.20:9379'], undefined]);
      assert.equal(plain.some((d) => d.obj.metadata.name.startsWith('weft-etcd-')), false);
    });

    it('a real etcd, issuer and agent run with the installed flags, configs, Secrets and ServiceAccount tokens: each agent gets its own credential, RBAC holds it to its node', async function () {
      this.timeout(90_000);
      const { KvClient, KvstorePermissionError } = require(join(ROOT, 'packages', 'kvstore', 'dist', 'index.js'));
      const { freePort, etcdHealthy } = require(join(ROOT, 'packages', 'kvstore', 'dist', 'etcd-process.js'));
      const { validateAgentConfig, readEtcdTls, ensureEtcdCredential } = require(join(ROOT, 'packages', 'agent', 'dist', 'index.js'));
      const { runEtcdIssuer } = require(join(ROOT, 'packages', 'clustermesh', 'dist', 'index.js'));
      const meshTls = require(join(ROOT, 'packages', 'clustermesh', 'dist', 'config.js')).readEtcdTls;
      const { silentLogger } = require(join(ROOT, 'packages', 'common', 'dist', 'index.js'));
      const dir = mkdtempSync(join(scratch, 'etcd-'));
      // The chart as installed: its Secrets and ConfigMaps as the API server holds them.
      const installed = release('install', ['--set', 'clustermesh.enabled=true']);
      // A Secret volume, laid out under dir; returns the mapping of paths under `mount` to it.
      const mountAt = (secret, mount = MOUNT) => {
        const at = join(dir, secret);
        mkdirSync(at);
        for (const [k, v] of Object.entries(find(installed, 'Secret', secret).data)) writeFileSync(join(at, k), Buffer.from(v, 'base64'), { mode: 0o400 });
        return (path) => join(at, path.slice(mount.length + 1));
      };
      const [client, peer, metrics, issuerPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
      const server = mountAt('weft-etcd-server');
      // The rendered command, with this test's ports, directories and loopback for the node IP.
      const args = etcdPod().containers[0].command.slice(1).map((f) => f
        .replaceAll('$(WEFT_NODE_IP)', '127.0.0.1').replaceAll(':9379', `:${client}`).replaceAll(':9380', `:${peer}`).replaceAll(':9381', `:${metrics}`)
        .replace('/var/lib/weft/etcd/data', join(dir, 'data')).replace(/=(\/etc\/weft\/etcd-tls\/.*)$/, (_m, p) => `=${server(p)}`))
        .map((f) => (f.startsWith('--listen-client-urls=') ? `--listen-client-urls=https://127.0.0.1:${client}` : f));
      const etcd = require('node:child_process').spawn('etcd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      etcd.stderr.on('data', (b) => (stderr += b));
      const clients = [];
      const stopIssuer = new AbortController();
      let issuerRun;
      // Node n1 and the agent's pod on it, as kubelet and the DaemonSet make them.
      const created = [];
      for (const [path, obj] of [['/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' } }], [`/api/v1/namespaces/${NS}/pods`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'weft-agent-x1' }, spec: { nodeName: 'n1', serviceAccountName: 'weft-agent', containers: [{ name: 'agent', image: 'weft' }] } }]]) {
        const r = await api.call('POST', path, obj);
        assert.equal(r.status, 201, JSON.stringify(r.body));
        created.push(`${path}/${obj.metadata.name}`);
      }
      try {
        const deadline = Date.now() + 20_000;
        while (!(await etcdHealthy({ host: '127.0.0.1', port: metrics }))) {
          assert.ok(Date.now() < deadline && etcd.exitCode === null, `etcd did not become healthy:\n${stderr}`);
          await new Promise((r) => setTimeout(r, 100));
        }
        const endpoint = `https://127.0.0.1:${client}`;
        const issuerKubeconfig = join(dir, 'issuer.kubeconfig');
        writeFileSync(issuerKubeconfig, JSON.stringify({ apiVersion: 'v1', kind: 'Config', clusters: [{ name: 'c', cluster: { server: cp.files.server, 'certificate-authority-data': Buffer.from(cp.files.ca.cert).toString('base64') } }], users: [{ name: 'issuer', user: { token: await token(etcdPod().serviceAccountName) } }], contexts: [{ name: 'c', context: { cluster: 'c', user: 'issuer' } }], 'current-context': 'c' }));
        // The issuer with its installed configuration, its Secrets where it mounts them.
        const issuerConfig = JSON.parse(find(installed, 'ConfigMap', 'weft-etcd-issuer-config').data['config.json']);
        assert.equal(issuerConfig.listen, '0.0.0.0:9382');
        const root = mountAt('weft-etcd-root', '/etc/weft/etcd-root');
        const caFiles = mountAt('weft-etcd-ca', '/etc/weft/etcd-ca');
        issuerRun = runEtcdIssuer({
          ...issuerConfig,
          etcd: [endpoint],
          listen: `127.0.0.1:${issuerPort}`,
          etcdTls: Object.fromEntries(Object.entries(issuerConfig.etcdTls).map(([k, p]) => [k, root(p)])),
          ca: Object.fromEntries(Object.entries(issuerConfig.ca).map(([k, p]) => [k, caFiles(p)])),
          serverTls: Object.fromEntries(Object.entries(issuerConfig.serverTls).map(([k, p]) => [k, server(p)])),
          // The issuer's own ServiceAccount (the etcd pod's), whose only grant is creating TokenReviews.
          kubeconfig: issuerKubeconfig,
        }, silentLogger(), stopIssuer.signal);
        // The agent on node n1, with its rendered configuration, obtains its credential.
        const agentCa = mountAt('weft-etcd-agent');
        // The agent's projected token: audience weft-etcd-issuer, bound to its pod on n1.
        writeFileSync(join(dir, 'token'), await token('weft-agent', ['weft-etcd-issuer'], 'weft-agent-x1'));
        const rendered = JSON.parse(find(installed, 'ConfigMap', 'weft-agent-config').data['agent.json']);
        const agent = validateAgentConfig({
          ...rendered, etcd: [endpoint],
          etcdTls: { ca: agentCa(rendered.etcdTls.ca), cert: join(dir, 'etcd-client.crt'), key: join(dir, 'etcd-client.key') },
          etcdIssuer: { url: rendered.etcdIssuer.url.replace('10.96.0.20:9382', `127.0.0.1:${issuerPort}`), tokenFile: join(dir, 'token') },
        }, 'rendered agent.json', { WEFT_NODE_NAME: 'n1', WEFT_NODE_IP: '172.18.0.3' });
        // A token the real API server vouches for, but bound to no pod (so to no node), gets nothing.
        const stray = join(dir, 'stray');
        mkdirSync(stray);
        writeFileSync(join(stray, 'token'), await token('weft-agent', ['weft-etcd-issuer']));
        const strayAgent = { ...agent, etcdTls: { ...agent.etcdTls, cert: join(stray, 'c.crt'), key: join(stray, 'c.key') }, etcdIssuer: { ...agent.etcdIssuer, tokenFile: join(stray, 'token') } };
        // The agent keeps asking (a token may be renewed) and is given nothing until it gives up.
        await assert.rejects(ensureEtcdCredential(strayAgent, silentLogger(), AbortSignal.timeout(3_000)), (err) => err.code === 'WEFT_ERR_ABORTED');
        assert.equal(existsSync(join(stray, 'c.crt')), false, 'no certificate for a token bound to no node');
        await ensureEtcdCredential(agent, silentLogger(), AbortSignal.timeout(30_000));
        assert.equal(new X509Certificate(readFileSync(join(dir, 'etcd-client.crt'))).subject, 'CN=n1');
        const kv = (tls) => {
          const c = new KvClient({ endpoints: [endpoint], ...(tls ? { tls } : {}), requestTimeoutMs: 3000, retry: { maxAttempts: 1, initialMs: 10, maxMs: 10 } });
          clients.push(c);
          return c;
        };
        const n1 = kv(readEtcdTls(agent));
        const meshFiles = mountAt('weft-etcd-clustermesh');
        const apiserver = kv(meshTls({ etcdTls: Object.fromEntries(Object.entries(meshConfig().etcdTls).map(([k, p]) => [k, meshFiles(p)])) }));
        await n1.put('weft/state/v1/nodes/n1', '{}');
        await n1.put('weft/state/v1/endpoints/n1/10.244.1.5', '{}');
        await assert.rejects(n1.put('weft/state/v1/nodes/n2', '{}'), KvstorePermissionError, 'n1 may not write n2\'s record');
        await assert.rejects(n1.put('weft/mesh/v1/west/endpoints/10.245.1.5', '{}'), KvstorePermissionError, 'nor the mesh cache');
        await assert.rejects(n1.put('weft/meshclusters/v1/west', '{"id":9}'), KvstorePermissionError, 'nor the list of remotes');
        assert.equal((await apiserver.get('weft/state/v1/nodes/n1')).value.toString(), '{}');
        await assert.rejects(apiserver.put('weft/state/v1/nodes/n1', 'x'), KvstorePermissionError, 'the apiserver may not write agent state');
        const agentTls = readEtcdTls(agent);
        await assert.rejects(kv({ ca: agentTls.ca }).get('weft/state/v1/nodes/n1'), 'a client without a certificate is refused');
        const stranger = await certs.createCa('stranger', 30);
        const forged = await certs.issue(stranger, 'n1');
        await assert.rejects(kv({ ca: agentTls.ca, cert: Buffer.from(forged.cert), key: Buffer.from(forged.key) }).get('weft/state/v1/nodes/n1'), 'a certificate of another CA is refused');
        await assert.rejects(new KvClient({ endpoints: [`127.0.0.1:${client}`], requestTimeoutMs: 3000, retry: { maxAttempts: 1, initialMs: 10, maxMs: 10 } }).get('weft/state/v1/nodes/n1'), 'plain gRPC is refused');

        // `weft clustermesh status --config` in the apiserver's pod: its own config, etcd certificate included.
        const config = { ...meshConfig(), etcd: [endpoint], etcdTls: Object.fromEntries(Object.entries(meshConfig().etcdTls).map(([k, p]) => [k, meshFiles(p)])) };
        const configFile = join(dir, 'clustermesh-config.json');
        writeFileSync(configFile, JSON.stringify(config));
        const status = { cluster: config.cluster, clusterId: config.clusterId, listen: config.listen, remotes: [] };
        await apiserver.put(`weft/meshstatus/v1/${config.cluster}`, JSON.stringify(status));
        const cli = spawnSync(process.execPath, [join(ROOT, 'packages', 'cli', 'bin', 'weft.js'), 'clustermesh', 'status', '--config', configFile, '-o', 'json'], { encoding: 'utf8', timeout: 30_000 });
        assert.equal(cli.status, 0, cli.stderr);
        assert.deepEqual(JSON.parse(cli.stdout), status);
      } finally {
        for (const c of clients) c.close();
        stopIssuer.abort();
        await issuerRun?.catch(() => undefined);
        etcd.kill('SIGKILL');
        for (const path of created.reverse()) await api.call('DELETE', path);
        uninstall();
      }
    });
  });

  describe('options', () => {
    it('IPsec: a key Secret mounted 0400, kept across upgrades, renewed with a new key id', () => {
      const docs = render(['--set', 'encryption.type=ipsec']);
      validateManifests(docs);
      const key = JSON.parse(secretData(find(docs, 'Secret', 'weft-ipsec'), 'ipsec.key'));
      assert.match(key.key, /^[0-9a-f]{64}$/);
      assert.equal(key.keyId, 1);
      const vol = find(docs, 'DaemonSet', 'weft-agent').spec.template.spec.volumes.find((v) => v.name === 'ipsec-key');
      assert.equal(vol.secret.defaultMode, 0o400);
      const installed = release('install', ['--set', 'encryption.type=ipsec']);
      try {
        const first = JSON.parse(secretData(find(installed, 'Secret', 'weft-ipsec'), 'ipsec.key'));
        assert.deepEqual(JSON.parse(secretData(find(release('upgrade', ['--set', 'encryption.type=ipsec']), 'Secret', 'weft-ipsec'), 'ipsec.key')), first);
        const rotated = JSON.parse(secretData(find(release('upgrade', ['--set', 'encryption.type=ipsec,encryption.ipsec.keyId=2']), 'Secret', 'weft-ipsec'), 'ipsec.key'));
        assert.equal(rotated.keyId, 2);
        assert.notEqual(rotated.key, first.key);
      } finally {
        uninstall();
      }
    });

    it('external etcd, Geneve, LoadBalancer, CNI uninstall on stop', () => {
      const values = join(scratch, 'options.yaml');
      writeFileSync(values, YAML.stringify({ routing: 'geneve', etcd: { endpoints: ['etcd.example:2379'], tls: { existingSecret: 'etcd-client' } }, cni: { uninstall: true }, clustermesh: { enabled: true, service: { type: 'LoadBalancer' } } }));
      const docs = render(['-f', values]);
      validateManifests(docs);
      assert.equal(docs.some((d) => d.obj.metadata.name.startsWith('weft-etcd')), false, 'no etcd, nor its certificates, deployed with etcd.endpoints');
      const config = JSON.parse(find(docs, 'ConfigMap', 'weft-agent-config').data['agent.json']);
      assert.deepEqual([config.etcd, config.routing, config.tunnelDevice], [['https://etcd.example:2379'], 'geneve', 'weft_geneve']);
      // The user's Secret serves the agents and the apiserver; without it (or tls.enabled=false) the chart refuses.
      for (const [kind, name] of [['DaemonSet', 'weft-agent'], ['Deployment', 'weft-clustermesh-apiserver']]) {
        assert.equal(find(docs, kind, name).spec.template.spec.volumes.find((v) => v.name === 'etcd-tls').secret.secretName, 'etcd-client');
      }
      writeFileSync(values, YAML.stringify({ etcd: { endpoints: ['etcd.example:2379'], tls: { enabled: false } } }));
      const plain = render(['-f', values]);
      const plainConfig = JSON.parse(find(plain, 'ConfigMap', 'weft-agent-config').data['agent.json']);
      assert.deepEqual([plainConfig.etcd, plainConfig.etcdTls], [['etcd.example:2379'], undefined]);
      assert.equal(find(docs, 'Service', 'weft-clustermesh-apiserver').spec.ports[0].nodePort, undefined);
      const agent = find(docs, 'DaemonSet', 'weft-agent').spec.template.spec.containers[0];
      assert.deepEqual(agent.lifecycle.preStop.exec.command, ['weft', 'agent', 'uninstall', '--cni-bin-dir', '/host/opt/cni/bin', '--cni-conf-dir', '/host/etc/cni/net.d']);
    });
  });

  describe('flow export (observer.export)', () => {
    it('is off by default: no export in agent.json, no host directory mounted', () => {
      const docs = render();
      assert.equal(JSON.parse(find(docs, 'ConfigMap', 'weft-agent-config').data['agent.json']).observer.export, undefined);
      assert.equal(find(docs, 'DaemonSet', 'weft-agent').spec.template.spec.volumes.some((v) => v.name === 'flow-export'), false);
    });

    it('gives the agent an export config it accepts, its file in a host directory a shipper can mount', () => {
      const { validateAgentConfig } = require(join(ROOT, 'packages', 'agent', 'dist', 'config.js'));
      const values = join(scratch, 'export.yaml');
      const exp = { enabled: true, filePath: '/var/log/weft/flows.json', fieldMask: ['time', 'verdict', 'dropReason', 'source.pod', 'destination.port'], allowList: [{ verdict: ['DROPPED'] }, { sourceNamespace: ['shop'], destinationPort: [5432] }], denyList: [{ sourceIdentity: [16777217] }], fileMaxSizeMb: 50, fileMaxBackups: 3, fileCompress: true };
      writeFileSync(values, YAML.stringify({ observer: { export: exp } }));
      const docs = render(['-f', values]);
      validateManifests(docs);
      const config = JSON.parse(find(docs, 'ConfigMap', 'weft-agent-config').data['agent.json']);
      const { enabled, filePath, ...rest } = exp;
      assert.deepEqual(config.observer.export, { ...rest, filePath: '/var/run/weft-flows/flows.json' });
      const loaded = validateAgentConfig(config, 'rendered agent.json', { WEFT_NODE_NAME: 'n1', WEFT_NODE_IP: '172.18.0.3' });
      assert.deepEqual(loaded.observer.export, { ...rest, filePath: '/var/run/weft-flows/flows.json' });
      // The host's /var/log/weft, at a path of the agent's own (never over one of the image's directories).
      const pod = find(docs, 'DaemonSet', 'weft-agent').spec.template.spec;
      assert.deepEqual(pod.volumes.find((v) => v.name === 'flow-export'), { name: 'flow-export', hostPath: { path: '/var/log/weft', type: 'DirectoryOrCreate' } });
      assert.deepEqual(pod.containers[0].volumeMounts.find((m) => m.name === 'flow-export'), { name: 'flow-export', mountPath: '/var/run/weft-flows' });
      // The default file is on the host too, under the agent's state directory.
      const byDefault = render(['--set', 'observer.export.enabled=true']);
      assert.equal(find(byDefault, 'DaemonSet', 'weft-agent').spec.template.spec.volumes.find((v) => v.name === 'flow-export').hostPath.path, '/var/run/weft/flows');
      assert.deepEqual(JSON.parse(find(byDefault, 'ConfigMap', 'weft-agent-config').data['agent.json']).observer.export, { filePath: '/var/run/weft-flows/flows.json', fieldMask: [], allowList: [], denyList: [], fileMaxSizeMb: 10, fileMaxBackups: 5, fileCompress: false });
    });

    it('offers exactly the fields a mask may name and a filter may set', () => {
      const { FLOW_FIELD_PATHS, FLOW_FILTER_FIELDS } = require(join(ROOT, 'packages', 'observer', 'dist', 'index.js'));
      const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8'));
      assert.deepEqual(schema.definitions.flowFieldPath.enum, [...FLOW_FIELD_PATHS]);
      assert.deepEqual(Object.keys(schema.definitions.flowFilter.properties), [...FLOW_FILTER_FIELDS]);
    });
  });

  describe('Prometheus metrics (prometheus.*)', () => {
    const { validateAgentConfig } = require(join(ROOT, 'packages', 'agent', 'dist', 'config.js'));
    const { loadMeshConfig } = require(join(ROOT, 'packages', 'clustermesh', 'dist', 'config.js'));
    const agentJson = (docs) => JSON.parse(find(docs, 'ConfigMap', 'weft-agent-config').data['agent.json']);
    const meshJson = (docs) => JSON.parse(secretData(find(docs, 'Secret', 'weft-clustermesh-config'), 'config.json'));
    const relayJson = (docs) => JSON.parse(find(docs, 'ConfigMap', 'weft-relay-config').data['relay.json']);
    const { validateRelayConfig } = require(join(ROOT, 'packages', 'observer', 'dist', 'relay-config.js'));
    const podOf = (docs, kind, name) => find(docs, kind, name).spec.template;
    /**
     * The Prometheus Operator's ServiceMonitor, as far as the chart uses it, with the operator's
     * field names and types (monitoring.coreos.com/v1): written here, since the test's API server
     * has no operator. Structural, so the API server's strict validation refuses any other field.
     */
    const serviceMonitorCrd = {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'servicemonitors.monitoring.coreos.com' },
      spec: {
        group: 'monitoring.coreos.com',
        scope: 'Namespaced',
        names: { kind: 'ServiceMonitor', listKind: 'ServiceMonitorList', plural: 'servicemonitors', singular: 'servicemonitor' },
        versions: [{
          name: 'v1', served: true, storage: true,
          schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', required: ['selector'], properties: {
            jobLabel: { type: 'string' },
            namespaceSelector: { type: 'object', properties: { any: { type: 'boolean' }, matchNames: { type: 'array', items: { type: 'string' } } } },
            selector: { type: 'object', properties: { matchLabels: { type: 'object', additionalProperties: { type: 'string' } }, matchExpressions: { type: 'array', items: { type: 'object', required: ['key', 'operator'], properties: { key: { type: 'string' }, operator: { type: 'string' }, values: { type: 'array', items: { type: 'string' } } } } } } },
            endpoints: { type: 'array', items: { type: 'object', properties: {
              port: { type: 'string' }, path: { type: 'string' }, scheme: { type: 'string', enum: ['http', 'https'] }, honorLabels: { type: 'boolean' },
              interval: { type: 'string', pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$' },
            } } },
          } } } } },
        }],
      },
    };

    it('is off by default: no metrics in the configurations, no annotations, no Services for it', () => {
      const docs = render(['-f', join(FIXTURES, 'east.yaml'), '-f', sharedCa]);
      assert.equal(agentJson(docs).metrics, undefined);
      assert.equal(meshJson(docs).metrics, undefined);
      assert.equal(relayJson(docs).metrics, undefined);
      for (const [kind, name] of [['DaemonSet', 'weft-agent'], ['Deployment', 'weft-clustermesh-apiserver'], ['Deployment', 'weft-relay']]) assert.equal(podOf(docs, kind, name).metadata.annotations['prometheus.io/scrape'], undefined);
      assert.equal(docs.some((d) => d.obj.kind === 'ServiceMonitor' || d.obj.metadata.name.endsWith('-metrics')), false);
    });

    it('enabled: the agent, the apiserver and the relay serve on their node\'s ports, annotated for scraping, with configurations they accept', () => {
      const docs = render(['-f', join(FIXTURES, 'east.yaml'), '-f', sharedCa, '--set', 'prometheus.enabled=true,prometheus.clustermesh.port=19963']);
      validateManifests(docs);
      const agent = validateAgentConfig(agentJson(docs), 'rendered agent.json', { WEFT_NODE_NAME: 'n1', WEFT_NODE_IP: '172.18.0.3' });
      assert.deepEqual(agent.metrics, { listen: '0.0.0.0:9962' }, 'every address of the node, as Cilium\'s agent');
      const file = join(scratch, 'metrics-mesh.json');
      writeFileSync(file, JSON.stringify(meshJson(docs)));
      assert.deepEqual(loadMeshConfig(file).metrics, { listen: '0.0.0.0:19963' });
      assert.deepEqual(validateRelayConfig(relayJson(docs), 'rendered relay.json', { WEFT_NODE_IP: '172.18.0.3' }).metrics, { listen: '0.0.0.0:9966' });
      for (const [kind, name, port] of [['DaemonSet', 'weft-agent', 9962], ['Deployment', 'weft-clustermesh-apiserver', 19963], ['Deployment', 'weft-relay', 9966]]) {
        const pod = podOf(docs, kind, name);
        assert.equal(pod.spec.hostNetwork, true);
        assert.deepEqual([pod.metadata.annotations['prometheus.io/scrape'], pod.metadata.annotations['prometheus.io/port']], ['true', String(port)]);
        assert.deepEqual(pod.spec.containers[0].ports.find((p) => p.name === 'metrics'), { name: 'metrics', containerPort: port, protocol: 'TCP' });
      }
      assert.equal(docs.some((d) => d.obj.kind === 'ServiceMonitor'), false, 'no ServiceMonitor unless asked');
    });

    it('serviceMonitor: a headless Service per component selecting its pods, and a ServiceMonitor the API server accepts selecting only it', () => {
      const values = join(scratch, 'servicemonitor.yaml');
      writeFileSync(values, YAML.stringify({ prometheus: { enabled: true, serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus-stack' }, interval: '30s' } } }));
      const docs = render(['-f', join(FIXTURES, 'east.yaml'), '-f', sharedCa, '-f', values]);
      const monitors = docs.filter((d) => d.obj.kind === 'ServiceMonitor');
      assert.deepEqual(monitors.map((d) => d.obj.metadata.name).sort(), ['weft-agent-metrics', 'weft-clustermesh-apiserver-metrics', 'weft-relay-metrics']);
      validateManifests(docs.filter((d) => d.obj.kind !== 'ServiceMonitor'));
      const crd = kubectl(['apply', '-f', '-'], JSON.stringify(serviceMonitorCrd));
      assert.equal(crd.status, 0, crd.stderr);
      try {
        const ready = kubectl(['wait', '--for=condition=Established', 'crd/servicemonitors.monitoring.coreos.com', '--timeout=60s']);
        assert.equal(ready.status, 0, ready.stderr);
        const r = kubectl(['apply', '--server-side', '--dry-run=server', '--validate=strict', '--field-manager=weft-chart-test', '-o', 'name', '-f', '-'], monitors.map(({ obj }) => JSON.stringify(obj)).join('\n'));
        assert.equal(r.status, 0, `the API server refuses the ServiceMonitors:\n${r.stderr}`);
        // The CRD does hold them to its schema: a field it does not know is refused.
        const bogus = { ...monitors[0].obj, spec: { ...monitors[0].obj.spec, endpoints: [{ ...monitors[0].obj.spec.endpoints[0], intervall: '30s' }] } };
        const refused = kubectl(['apply', '--server-side', '--dry-run=server', '--validate=strict', '--field-manager=weft-chart-test', '-o', 'name', '-f', '-'], JSON.stringify(bogus));
        assert.notEqual(refused.status, 0, 'an unknown field is refused');
        assert.match(refused.stderr, /intervall/);
      } finally {
        kubectl(['delete', 'crd', 'servicemonitors.monitoring.coreos.com', '--wait=true']);
      }
      const matches = (selector, labels) => Object.entries(selector).every(([k, v]) => labels[k] === v);
      for (const [kind, name] of [['DaemonSet', 'weft-agent'], ['Deployment', 'weft-clustermesh-apiserver'], ['Deployment', 'weft-relay']]) {
        const svc = find(docs, 'Service', `${name}-metrics`);
        const monitor = find(docs, 'ServiceMonitor', `${name}-metrics`);
        const pod = podOf(docs, kind, name);
        assert.equal(svc.spec.clusterIP, 'None');
        assert.ok(matches(svc.spec.selector, pod.metadata.labels), `${svc.metadata.name} selects the ${name} pods`);
        assert.equal(svc.spec.ports[0].targetPort, 'metrics');
        assert.ok(pod.spec.containers[0].ports.some((p) => p.name === 'metrics'), 'the port the Service names');
        assert.ok(matches(monitor.spec.selector.matchLabels, svc.metadata.labels), `${monitor.metadata.name} selects its Service`);
        const others = docs.filter((d) => d.obj.kind === 'Service' && d.obj.metadata.name !== svc.metadata.name && matches(monitor.spec.selector.matchLabels, d.obj.metadata.labels ?? {}));
        assert.deepEqual(others, [], 'and no other Service (the apiserver\'s mesh Service has the same component label)');
        assert.deepEqual(monitor.spec.endpoints, [{ port: 'metrics', path: '/metrics', scheme: 'http', interval: '30s' }]);
        assert.deepEqual(monitor.spec.namespaceSelector, { matchNames: [NS] });
        assert.equal(monitor.metadata.labels.release, 'kube-prometheus-stack');
      }
      // Without the clustermesh, the agents' and the relay's; without the relay, the agents' alone.
      const single = render(['-f', values]);
      assert.deepEqual(single.filter((d) => d.obj.kind === 'ServiceMonitor').map((d) => d.obj.metadata.name), ['weft-agent-metrics', 'weft-relay-metrics']);
      const alone = render(['-f', values, '--set', 'observer.relay.enabled=false']);
      assert.deepEqual(alone.filter((d) => d.obj.kind === 'ServiceMonitor').map((d) => d.obj.metadata.name), ['weft-agent-metrics']);
    });

    it('refuses a ServiceMonitor without metrics, two of its ports on one (a node\'s), and an interval Prometheus cannot read', () => {
      for (const [set, message] of [
        ['prometheus.serviceMonitor.enabled=true', /prometheus\.serviceMonitor\.enabled needs prometheus\.enabled/],
        ['prometheus.enabled=true,prometheus.agent.port=4244', /prometheus\.agent\.port 4244 is observer\.port: both listen on the node/],
        ['prometheus.enabled=true,prometheus.relay.port=4245', /prometheus\.relay\.port 4245 is observer\.relay\.port/],
        ['prometheus.enabled=true,prometheus.relay.port=9962', /prometheus\.relay\.port 9962 is prometheus\.agent\.port/],
        ['observer.relay.port=4244', /observer\.relay\.port 4244 is observer\.port/],
        ['prometheus.enabled=true,prometheus.serviceMonitor.enabled=true,prometheus.serviceMonitor.interval=30 seconds', /- at '\/prometheus\/serviceMonitor\/interval': '30 seconds' does not match pattern/],
        ['prometheus.agent.port=0', /- at '\/prometheus\/agent\/port': minimum: got 0, want 1/],
      ]) {
        const r = helmTemplate(['--set', set]);
        assert.notEqual(r.status, 0, `${set} was accepted`);
        assert.match(r.stderr, message);
      }
    });
  });

  describe('probes', () => {
    const WEFT = join(ROOT, 'packages', 'cli', 'bin', 'weft.js');
    /** Runs a rendered exec probe with this tree's `weft`, as kubelet runs it in the container. */
    const runProbe = (command) => {
      assert.equal(command[0], 'weft');
      return spawnSync(process.execPath, [WEFT, ...command.slice(1)], { encoding: 'utf8', timeout: 20_000 });
    };
    const probesOf = (docs, kind, name) => {
      const c = find(docs, kind, name).spec.template.spec.containers[0];
      return { container: c, startup: c.startupProbe, liveness: c.livenessProbe, readiness: c.readinessProbe };
    };
    /** Liveness only asks for an answer; startup and readiness for readiness; time enough for slow starts and for the CLI's own 5 s timeout. */
    const checkShape = ({ startup, liveness, readiness }, base) => {
      assert.deepEqual(startup.exec.command, base);
      assert.deepEqual(readiness.exec.command, base);
      assert.deepEqual(liveness.exec.command, [...base, '--liveness'], 'an etcd outage must not restart the pod');
      assert.ok(startup.periodSeconds * startup.failureThreshold >= 300, 'at least 5 minutes for a first start');
      for (const p of [startup, liveness, readiness]) assert.ok(p.timeoutSeconds > 5, 'kubelet must not cut the CLI before its own 5 s timeout says why');
      assert.ok(liveness.periodSeconds * liveness.failureThreshold >= 30, 'liveness tolerates a short stall');
    };

    it('probes the agent with `weft agent health` on the socket its configuration puts it on', () => {
      const docs = render();
      const probes = probesOf(docs, 'DaemonSet', 'weft-agent');
      checkShape(probes, ['weft', 'agent', 'health']);
      // No --socket: the default, which is where the rendered configuration puts the agent's socket.
      const { DEFAULT_AGENT_SOCKET } = require(join(ROOT, 'packages', 'cni', 'dist', 'install.js'));
      assert.equal(join(JSON.parse(find(docs, 'ConfigMap', 'weft-agent-config').data['agent.json']).stateDir, 'agent.sock'), DEFAULT_AGENT_SOCKET);
      assert.ok(probes.container.volumeMounts.some((m) => m.mountPath === '/var/run/weft'), 'the probe runs in the agent container, which mounts the socket directory');
      // The CLI takes exactly these arguments (exit 2 would be a usage error); no agent runs here.
      for (const p of [probes.startup, probes.liveness]) {
        const r = runProbe(p.exec.command);
        assert.equal(r.status, 1, r.stderr);
        assert.match(r.stderr, /Cannot reach the agent at \/var\/run\/weft\/agent\.sock: .*\[WEFT_ERR_AGENT_UNREACHABLE\]/);
      }
    });

    it('probes the clustermesh-apiserver on its own mTLS port with `weft clustermesh-apiserver health`', async () => {
      const docs = render(['-f', join(FIXTURES, 'east.yaml'), '-f', sharedCa]);
      const probes = probesOf(docs, 'Deployment', 'weft-clustermesh-apiserver');
      const config = probes.container.command[probes.container.command.indexOf('--config') + 1];
      checkShape(probes, ['weft', 'clustermesh-apiserver', 'health', '--config', config]);
      assert.equal(probes.readiness.tcpSocket, undefined);
      // The rendered configuration loads, and the probe dials the apiserver's port on loopback (nothing listens here).
      const mesh = JSON.parse(secretData(find(docs, 'Secret', 'weft-clustermesh-config'), 'config.json'));
      const file = join(scratch, 'probe-config.json');
      writeFileSync(file, JSON.stringify(mesh));
      const r = runProbe([...probes.readiness.exec.command.slice(0, -1), file]);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /Cannot reach the clustermesh-apiserver at 127\.0\.0\.1:32379: .*\[WEFT_ERR_MESH_UNREACHABLE\]/);
      // The probe presents the apiserver's own certificate: the port's mutual TLS must accept it.
      assert.equal(await handshake(mesh, { ca: mesh.ca, cert: mesh.cert, key: mesh.key }, '172.18.0.2'), 'clustermesh-east');
    });
  });

  describe('bad values', () => {
    const remote = { name: 'west', id: 2, address: '172.18.0.4' };
    const cases = [
      // [what, values (object: written as a file) or --set string, message the user sees]
      ['cluster id 0', 'cluster.id=0', /- at '\/cluster\/id': minimum: got 0, want 1/],
      ['cluster id 256', 'cluster.id=256', /- at '\/cluster\/id': maximum: got 256, want 255/],
      ['routing not in the enum', 'routing=ospf', /- at '\/routing': value must be one of 'vxlan', 'geneve', 'direct'/],
      ['encryption type not in the enum', 'encryption.type=tls', /- at '\/encryption\/type': value must be one of 'wireguard', 'ipsec', 'off'/],
      ['an unknown top-level key', 'cluterName=x', /- at '': additional properties 'cluterName' not allowed/],
      ['an unknown nested key', 'clustermesh.remote=x', /- at '\/clustermesh': additional properties 'remote' not allowed/],
      ['a cluster name that is not a DNS label', 'cluster.name=East_1', /- at '\/cluster\/name': 'East_1' does not match pattern/],
      ['a bad IPsec key', 'encryption.ipsec.key=abc', /- at '\/encryption\/ipsec\/key': 'abc' does not match pattern/],
      ['a remote without address', { clustermesh: { remotes: [{ name: 'west', id: 2 }] } }, /- at '\/clustermesh\/remotes\/0': missing property 'address'/],
      ['a remote with an out-of-range id', { clustermesh: { remotes: [{ ...remote, id: 300 }] } }, /- at '\/clustermesh\/remotes\/0\/id': maximum: got 300, want 255/],
      ['a remote with this cluster\'s name', { clustermesh: { remotes: [{ ...remote, name: 'default' }] } }, /clustermesh\.remotes\[0\] \(default\): name default is this cluster's own name/],
      ['two remotes with one id', { clustermesh: { remotes: [remote, { ...remote, name: 'north' }] } }, /clustermesh\.remotes\[1\] \(north\): cluster id 2 is already used by remote west/],
      ['a remote without tls when the CA is this cluster\'s own', { clustermesh: { enabled: true, remotes: [remote] } }, /clustermesh\.remotes\[0\] \(west\): tls .* is required with tls\.mode=auto/],
      ['tls.mode provided without a CA', { clustermesh: { enabled: true }, tls: { mode: 'provided' } }, /tls\.ca\.cert is required with tls\.mode=provided/],
      ['an external etcd with TLS but no client Secret', { etcd: { endpoints: ['etcd.example:2379'] } }, /etcd\.endpoints: an external etcd needs etcd\.tls\.existingSecret .* or etcd\.tls\.enabled=false/],
      ['a field mask path that names no field', { observer: { export: { enabled: true, fieldMask: ['verdict', 'source.podName'] } } }, /- at '\/observer\/export\/fieldMask\/1': value must be one of 'time', 'cluster',/],
      ['a flow filter with a misspelt field', { observer: { export: { enabled: true, denyList: [{ sourcePods: ['kube-system/'] }] } } }, /- at '\/observer\/export\/denyList\/0': additional properties 'sourcePods' not allowed/],
      ['an empty flow filter (in a denyList, every flow)', { observer: { export: { enabled: true, denyList: [{}] } } }, /- at '\/observer\/export\/denyList\/0': minProperties: got 0, want 1/],
      ['an export file without a directory', 'observer.export.filePath=/flows.json', /- at '\/observer\/export\/filePath': '\/flows\.json' does not match pattern/],
      ['a relative export file', 'observer.export.filePath=flows/flows.json', /- at '\/observer\/export\/filePath': 'flows\/flows\.json' does not match pattern/],
    ];
    for (const [what, values, message] of cases) {
      it(`rejects ${what}`, () => {
        let args = ['--set', values];
        if (typeof values === 'object') {
          const file = join(scratch, 'bad.yaml');
          writeFileSync(file, YAML.stringify(values));
          args = ['-f', file];
        }
        const r = helmTemplate(args);
        assert.notEqual(r.status, 0, `${what} was accepted`);
        assert.equal(r.stdout, '', 'nothing is rendered');
        assert.match(r.stderr, message);
      });
    }
  });

  it('passes crds/ through with --include-crds, as helm template does, and no template needs them', () => {
    const crds = readdirSync(join(CHART, 'crds')).filter((f) => f.endsWith('.yaml'));
    const withCrds = render(['--include-crds']);
    assert.deepEqual(withCrds.filter((d) => d.source.startsWith('weft/crds/')).map((d) => d.source).sort(), crds.map((f) => `weft/crds/${f}`).sort());
    // The chart's certificates are new in every render without --lookup: compare what holds them, not their bytes.
    const stable = (docs) => docs.map((d) => (d.obj.kind === 'Secret' ? { ...d.obj, data: Object.keys(d.obj.data).sort(), metadata: { ...d.obj.metadata, annotations: undefined } } : d.obj));
    assert.deepEqual(stable(withCrds.filter((d) => !d.source.startsWith('weft/crds/'))), stable(render()));
  });

  describe('a release on the API server', () => {
    it('passes helm lint --strict with the default values and with each cluster of a mesh', () => {
      for (const args of [[], ['-f', join(FIXTURES, 'east.yaml'), '-f', sharedCa], ['-f', join(FIXTURES, 'west.yaml'), '-f', sharedCa]]) {
        const r = helm(['lint', CHART, '--strict', '--namespace', NS, ...args]);
        assert.equal(r.status, 0, `helm lint ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
      }
    });

    it('installs every object it renders, upgrades in place, and uninstalls all of them but the CRDs', () => {
      const values = ['-f', join(FIXTURES, 'east.yaml'), '-f', sharedCa];
      // Hooks are made only when their event comes (the post-delete Job at uninstall).
      const rendered = render(values).filter(({ obj }) => !obj.metadata.annotations?.['helm.sh/hook']);
      const r = helm(['install', 'weft', CHART, '--namespace', NS, ...values]);
      assert.equal(r.status, 0, r.stderr);
      const names = (docs) => docs.map(({ obj }) => `${obj.kind}/${obj.metadata.name}`).sort();
      /** What of the rendered objects the API server holds. */
      const present = () => rendered.filter(({ obj }) => kubectl(['get', obj.kind, obj.metadata.name, ...(obj.metadata.namespace ? ['-n', obj.metadata.namespace] : [])]).status === 0);
      try {
        assert.deepEqual(names(present()), names(rendered));
        // The CRDs of crds/ are created before the templates, and established.
        const crds = kubectl(['get', 'crd', '-o', 'json']);
        const established = JSON.parse(crds.stdout).items.filter((c) => c.status.conditions?.some((x) => x.type === 'Established' && x.status === 'True')).map((c) => c.metadata.name).sort();
        assert.deepEqual(established, ['weftclusterwidenetworkpolicies.weft.io', 'weftidentities.weft.io', 'weftnetworkpolicies.weft.io', 'weftnodes.weft.io']);
        const up = helm(['upgrade', 'weft', CHART, '--namespace', NS, '--reuse-values', '--set', 'logLevel=debug']);
        assert.equal(up.status, 0, up.stderr);
        assert.equal(JSON.parse(helm(['status', 'weft', '--namespace', NS, '-o', 'json']).stdout).version, 2);
      } finally {
        uninstall();
      }
      assert.deepEqual(names(present()), [], 'helm uninstall leaves nothing it installed');
      // Helm never deletes crds/ (the user's policies live in them): they stay, empty.
      assert.equal(kubectl(['get', 'crd', 'weftnetworkpolicies.weft.io']).status, 0);
    });

    it('installs nothing at all when the values are bad', () => {
      const r = helm(['install', 'weft', CHART, '--namespace', NS, '--set', 'cluster.id=0']);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /at '\/cluster\/id': minimum: got 0, want 1/);
      assert.equal(helm(['list', '--namespace', NS, '-a', '-q']).stdout.trim(), '', 'no release, not even a failed one');
      assert.equal(kubectl(['get', 'secrets,configmaps,daemonsets,deployments,services,serviceaccounts', '-n', NS, '-o', 'name']).stdout.includes('weft'), false);
    });
  });

  describe('documentation', () => {
    it('documents every value with its type and default, in values.yaml, the README table and the schema', () => {
      const readme = readFileSync(join(CHART, 'README.md'), 'utf8');
      const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8'));
      const problems = [];
      for (const { path, comment } of documentedValues(readFileSync(join(CHART, 'values.yaml'), 'utf8'), problems)) {
        if (!/^-- \([^)]*default [^)]*\)/.test(comment)) problems.push(`values.yaml: ${path}: comment must start with "-- (type, default ...)"`);
        if (!readme.includes(`| \`${path}\` |`)) problems.push(`README.md: no table row for ${path}`);
        let s = schema;
        for (const k of path.split('.')) s = s?.properties?.[k];
        if (!s) problems.push(`values.schema.json: ${path} is not declared`);
      }
      assert.deepEqual(problems, []);
    });
  });
});

/** Leaf values of values.yaml: keys whose comment block starts with "# --"; any other key must be a mapping of such. */
function documentedValues(text, problems) {
  const lines = text.split('\n');
  const stack = [];
  const out = [];
  let comment = [];
  lines.forEach((line, i) => {
    const c = /^\s*# ?(.*)$/.exec(line);
    if (c) return void comment.push(c[1]);
    const m = /^(\s*)([A-Za-z0-9_.-]+):/.exec(line);
    if (!m) {
      if (!line.trim()) comment = [];
      return;
    }
    const indent = m[1].length;
    while (stack.length && stack[stack.length - 1].indent >= indent) stack.pop();
    const inLeaf = stack.some((s) => s.leaf);
    const path = [...stack.map((s) => s.key), m[2]].join('.');
    const leaf = comment[0]?.startsWith('-- ') ?? false;
    if (!inLeaf) {
      if (leaf) out.push({ path, comment: comment.join(' ') });
      else if (!/^\s*$/.test(line.slice(m[0].length)) || !(lines[i + 1] ?? '').startsWith(' '.repeat(indent + 1))) problems.push(`values.yaml: ${path} has no "# --" comment`);
    }
    stack.push({ indent, key: m[2], leaf });
    comment = [];
  });
  return out;
}

/** A TLS server with the apiserver's certificate, dialed as the importer dials `address`; resolves to the client's CN. */
function handshake(serverConfig, remote, dialedHost) {
  return new Promise((resolvePeer, reject) => {
    const server = tls.createServer({ cert: serverConfig.cert, key: serverConfig.key, ca: serverConfig.ca, requestCert: true, rejectUnauthorized: true }, (socket) => {
      resolvePeer(socket.getPeerCertificate().subject.CN);
      socket.end();
    });
    server.on('tlsClientError', (err) => reject(err));
    server.listen(0, '127.0.0.1', () => {
      const socket = tls.connect({ host: '127.0.0.1', port: server.address().port, ca: remote.ca, cert: remote.cert, key: remote.key, checkServerIdentity: (_host, cert) => tls.checkServerIdentity(dialedHost, cert) }, () => socket.end());
      socket.on('error', reject);
      socket.on('close', () => server.close());
    });
  });
}
