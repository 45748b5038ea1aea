/**
 * `weft clustermesh connect|disconnect --context A --destination-context B`: links two clusters
 * whose clustermesh-apiservers the Helm chart runs, as `cilium clustermesh connect` does.
 *
 * Each side is read first: its CA (Secret <release>-clustermesh-ca), its name and id (the chart's
 * config Secret), the address remotes dial (its Service: a LoadBalancer's ingress, or a node's
 * InternalIP and the node port; one its server certificate names, or the handshake would fail) and
 * its remotes Secret. Then everything is computed and checked before the first write: each side
 * gets an entry for the other, with a client certificate issued by the other's CA (CN = its own
 * name). Entries live in Secret <release>-clustermesh-remotes, one key `<remote>.json` each, which
 * Helm does not manage (so `helm upgrade` keeps it) and the chart's apiserver mounts as its
 * `remotesDir`. Writes carry the resourceVersion read, so a concurrent change fails rather than
 * being overwritten; if the second side's write fails, the first is rolled back. Only then are
 * both apiservers restarted (the pod-template annotation `kubectl rollout restart` sets), and
 * optionally awaited.
 */
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { sleep } from '@weft/common';
import { chartFullname, KubeClient, objectPath, collectionPath, type KubeObject } from '@weft/kubernetes';
import { issue, type Pem } from './certs.js';
import { CertificateError } from '@weft/kvstore';
import { MeshConflictError, MeshPrerequisiteError, MeshRolloutError, MeshWriteError } from './errors.js';
import type { MeshConfig, RemoteConfig } from './types.js';

export const REMOTES_SECRET_SUFFIX = 'clustermesh-remotes';
export const RESTART_ANNOTATION = 'kubectl.kubernetes.io/restartedAt';

export interface KubeConnectOptions {
  /** kubeconfig contexts of the two clusters. */
  context: string;
  destinationContext: string;
  /** Default: $KUBECONFIG or ~/.kube/config, as kubectl reads them. */
  kubeconfig?: string;
  /** The chart's namespace in both clusters (default kube-system). */
  namespace?: string;
  /** The chart's release name (default weft): objects are named as the chart names them. */
  release?: string;
  /** Wait until both apiserver Deployments have rolled out, for at most timeoutMs (default 300 s). */
  wait?: boolean;
  timeoutMs?: number;
  /** How often --wait reads the Deployments (default 1 s). */
  pollMs?: number;
  /** Validity of the client certificates (default 1095 days, the chart's tls.validityDays). */
  days?: number;
  signal?: AbortSignal;
  progress?: (message: string) => void;
}

export interface KubeConnectSide {
  context: string;
  cluster: string;
  id: number;
  namespace: string;
  /** The remote this cluster gained (connect) or lost (disconnect). */
  remote: string;
  /** connect: host:port the remote now dials for this cluster's apiserver. */
  address?: string;
  secret: string;
  key: string;
  /** What happened to the remotes Secret. */
  change: 'created' | 'updated' | 'removed' | 'unchanged';
  restarted: boolean;
}

export interface KubeConnectResult {
  action: 'connect' | 'disconnect';
  clusters: KubeConnectSide[];
  /** --wait: both Deployments rolled out. */
  rolledOut: boolean;
}

/** One cluster as read. */
interface Side {
  context: string;
  client: KubeClient;
  ns: string;
  full: string;
  cluster: string;
  id: number;
  /** Remotes from the chart's values (config.json), and the remotes Secret if there is one. */
  configured: Array<Pick<RemoteConfig, 'name' | 'id'>>;
  remotes: KubeObject | undefined;
  ca?: Pem;
  address?: string;
}

/** A write to one side's remotes Secret, and how to take it back. */
interface Plan {
  side: Side;
  remote: string;
  key: string;
  /** base64 of the new entry; null removes it. */
  value: string | null;
}

type Action = 'connect' | 'disconnect';

export function kubeConnect(options: KubeConnectOptions): Promise<KubeConnectResult> {
  return run('connect', options);
}

export function kubeDisconnect(options: KubeConnectOptions): Promise<KubeConnectResult> {
  return run('disconnect', options);
}

async function run(action: Action, o: KubeConnectOptions): Promise<KubeConnectResult> {
  const what = `${action} ${o.context} ${action === 'connect' ? 'and' : 'from'} ${o.destinationContext}`;
  // Both contexts resolve before anything is asked of either cluster.
  const clients = await Promise.all([o.context, o.destinationContext].map((context) => KubeClient.create({ context, ...(o.kubeconfig !== undefined ? { kubeconfig: o.kubeconfig } : {}) })));
  const a = await readSide(action, what, o.context, clients[0]!, o);
  const b = await readSide(action, what, o.destinationContext, clients[1]!, o);
  if (a.cluster === b.cluster) throw new MeshConflictError(what, `both contexts hold cluster ${a.cluster} (context ${a.context}: id ${a.id}; context ${b.context}: id ${b.id}): a cluster cannot be its own remote, and names must be unique in a mesh (chart value cluster.name)`);
  if (action === 'connect' && a.id === b.id) throw new MeshConflictError(what, `cluster ${a.cluster} (context ${a.context}) and cluster ${b.cluster} (context ${b.context}) both have cluster id ${a.id}: ids must be unique in a mesh (chart value cluster.id)`);
  const plans = [await plan(action, what, a, b, o), await plan(action, what, b, a, o)];

  // `after` undefined: the write deleted the Secret (a disconnect of its last remote).
  const written: Array<{ plan: Plan; before: KubeObject | undefined; after: KubeObject | undefined }> = [];
  for (const p of plans) {
    if (!p) continue;
    try {
      written.push({ plan: p, before: p.side.remotes, after: await write(p, o.signal) });
    } catch (err) {
      throw await rollBack(what, p, written, err);
    }
  }
  const changed = written.map((w) => w.plan.side);
  for (const side of changed) await restart(what, side, o.signal);
  o.progress?.(changed.length ? `clustermesh: ${a.cluster} and ${b.cluster} ${action}ed; restarted the clustermesh-apiserver of ${changed.map((s) => s.cluster).join(' and ')}` : `clustermesh: ${a.cluster} and ${b.cluster} were not connected by this command: nothing to change`);
  if (o.wait) for (const side of changed) await waitRolledOut(side, o);

  const result = (side: Side, other: Side): KubeConnectSide => {
    const w = written.find((x) => x.plan.side === side);
    const change = !w ? 'unchanged' : w.plan.value === null ? 'removed' : w.before ? 'updated' : 'created';
    return { context: side.context, cluster: side.cluster, id: side.id, namespace: side.ns, remote: other.cluster, ...(side.address ? { address: side.address } : {}), secret: `${side.full}-${REMOTES_SECRET_SUFFIX}`, key: `${other.cluster}.json`, change, restarted: !!w };
  };
  return { action, clusters: [result(a, b), result(b, a)], rolledOut: !!o.wait && changed.length > 0 };
}

async function get(side: Pick<Side, 'client' | 'context'>, path: string, signal?: AbortSignal): Promise<KubeObject | undefined> {
  return side.client.find<KubeObject>(`read ${path} in context ${side.context}`, path, signal);
}

function secretData(secret: KubeObject, key: string): string | undefined {
  const v = (secret.data as Record<string, string> | undefined)?.[key];
  return v === undefined ? undefined : Buffer.from(v, 'base64').toString('utf8');
}

async function readSide(action: Action, what: string, context: string, client: KubeClient, o: KubeConnectOptions): Promise<Side> {
  const ns = o.namespace ?? 'kube-system';
  const full = chartFullname(o.release ?? 'weft');
  const at = { client, context };
  const missing = (name: string): MeshPrerequisiteError => new MeshPrerequisiteError(what, `context ${context}: Secret ${ns}/${name} not found: install the chart there with clustermesh.enabled=true (namespace ${ns}, release ${o.release ?? 'weft'}; --namespace and --release say where it is)`);
  const secret = async (name: string): Promise<KubeObject | undefined> => get(at, objectPath('Secret', name, ns), o.signal);

  let ca: Pem | undefined;
  if (action === 'connect') {
    const caSecret = await secret(`${full}-clustermesh-ca`);
    if (!caSecret) throw missing(`${full}-clustermesh-ca`);
    const cert = secretData(caSecret, 'ca.crt');
    const key = secretData(caSecret, 'ca.key');
    if (!cert || !key) throw new MeshPrerequisiteError(what, `context ${context}: Secret ${ns}/${full}-clustermesh-ca has no ${cert ? 'ca.key' : 'ca.crt'}: the chart runs with tls.mode=provided without tls.ca.key, so no certificate can be issued from its CA here. Connect this cluster through values instead (clustermesh.remotes with tls; docs/kubernetes.md, "Connecting two clusters with values only")`);
    ca = { cert, key };
  }
  const configSecret = await secret(`${full}-clustermesh-config`);
  if (!configSecret) throw missing(`${full}-clustermesh-config`);
  let config: MeshConfig;
  try {
    config = JSON.parse(secretData(configSecret, 'config.json') ?? '') as MeshConfig;
  } catch (err) {
    throw new MeshPrerequisiteError(what, `context ${context}: Secret ${ns}/${full}-clustermesh-config has no readable config.json: ${(err as Error).message}`);
  }
  const side: Side = { context, client, ns, full, cluster: config.cluster, id: config.clusterId, configured: (config.remotes ?? []).map((r) => ({ name: r.name, id: r.id })), remotes: undefined };
  if (ca) {
    side.ca = ca;
    side.address = await endpoint(what, side, o.signal);
  }
  const deployment = await get(at, objectPath('Deployment', `${full}-clustermesh-apiserver`, ns), o.signal);
  if (!deployment) throw new MeshPrerequisiteError(what, `context ${context}: Deployment ${ns}/${full}-clustermesh-apiserver not found: install the chart there with clustermesh.enabled=true`);
  const volumes = ((deployment.spec as { template?: { spec?: { volumes?: Array<{ secret?: { secretName?: string } }> } } })?.template?.spec?.volumes ?? []);
  if (!volumes.some((v) => v.secret?.secretName === `${full}-${REMOTES_SECRET_SUFFIX}`)) throw new MeshPrerequisiteError(what, `context ${context}: Deployment ${ns}/${full}-clustermesh-apiserver does not mount Secret ${full}-${REMOTES_SECRET_SUFFIX}: the chart there is older than this command; helm upgrade it first`);
  side.remotes = await secret(`${full}-${REMOTES_SECRET_SUFFIX}`);
  return side;
}

/** host:port remotes dial for this side's apiserver: from its Service, and named by its server certificate. */
async function endpoint(what: string, side: Side, signal?: AbortSignal): Promise<string> {
  const { context, ns, full } = side;
  const name = `${full}-clustermesh-apiserver`;
  const svc = await get(side, objectPath('Service', name, ns), signal);
  if (!svc) throw new MeshPrerequisiteError(what, `context ${context}: Service ${ns}/${name} not found: install the chart there with clustermesh.enabled=true`);
  const spec = svc.spec as { type?: string; ports?: Array<{ name?: string; port: number; nodePort?: number }> };
  const port = spec.ports?.find((p) => p.name === 'mesh') ?? spec.ports?.[0];
  let hosts: string[];
  let portNumber: number | undefined;
  if (spec.type === 'LoadBalancer') {
    const ingress = (svc.status as { loadBalancer?: { ingress?: Array<{ ip?: string; hostname?: string }> } } | undefined)?.loadBalancer?.ingress ?? [];
    hosts = ingress.map((i) => i.ip ?? i.hostname ?? '').filter(Boolean);
    if (hosts.length === 0) throw new MeshPrerequisiteError(what, `context ${context}: Service ${ns}/${name} is a LoadBalancer without an ingress address yet (status.loadBalancer.ingress is empty): wait until it has one (kubectl get service -n ${ns} ${name}), then run this again`);
    portNumber = port?.port;
  } else if (spec.type === 'NodePort') {
    const nodes = (await get(side, collectionPath('Node'), signal)) as { items?: Array<{ status?: { addresses?: Array<{ type: string; address: string }> } }> } | undefined;
    hosts = (nodes?.items ?? []).flatMap((n) => (n.status?.addresses ?? []).filter((a) => a.type === 'InternalIP').map((a) => a.address));
    if (hosts.length === 0) throw new MeshPrerequisiteError(what, `context ${context}: Service ${ns}/${name} is a NodePort, but no node has an InternalIP address (status.addresses) to reach it at`);
    portNumber = port?.nodePort;
  } else {
    throw new MeshPrerequisiteError(what, `context ${context}: Service ${ns}/${name} has type ${spec.type ?? 'ClusterIP'}, which other clusters cannot reach: set clustermesh.service.type to NodePort or LoadBalancer`);
  }
  if (!portNumber) throw new MeshPrerequisiteError(what, `context ${context}: Service ${ns}/${name} has no ${spec.type === 'NodePort' ? 'nodePort' : 'port'} for the mesh`);
  const serverSecret = await get(side, objectPath('Secret', `${full}-clustermesh-server`, ns), signal);
  const pem = serverSecret && secretData(serverSecret, 'tls.crt');
  if (!pem) throw new MeshPrerequisiteError(what, `context ${context}: Secret ${ns}/${full}-clustermesh-server has no tls.crt: install the chart there with clustermesh.enabled=true`);
  const cert = new X509Certificate(pem);
  const named = hosts.find((h) => (isIP(h) ? cert.checkIP(h) : cert.checkHost(h)) !== undefined);
  if (!named) throw new MeshPrerequisiteError(what, `context ${context}: the clustermesh-apiserver's certificate (Secret ${ns}/${full}-clustermesh-server) names none of the addresses remotes would dial (${hosts.join(', ')}), so their TLS handshake would fail: add one to tls.server.ipAddresses (or dnsNames) and helm upgrade`);
  return `${named}:${portNumber}`;
}

/** The entries already in a remotes Secret: key -> {name, id}. */
function entries(secret: KubeObject | undefined): Array<{ key: string; name: string; id: number }> {
  return Object.keys((secret?.data as Record<string, string> | undefined) ?? {}).flatMap((key) => {
    try {
      const r = JSON.parse(secretData(secret!, key)!) as RemoteConfig;
      return [{ key, name: r.name, id: r.id }];
    } catch {
      return [];
    }
  });
}

/** What `local` gets for `remote`; undefined when there is nothing to do. Checks, issues, writes nothing. */
async function plan(action: Action, what: string, local: Side, remote: Side, o: KubeConnectOptions): Promise<Plan | undefined> {
  const key = `${remote.cluster}.json`;
  if (local.configured.some((r) => r.name === remote.cluster)) {
    throw new MeshConflictError(what, `cluster ${local.cluster} (context ${local.context}) lists ${remote.cluster} in its chart values (clustermesh.remotes), so they are linked through values: ${action === 'connect' ? 'leave it there, or remove it with helm upgrade before using this command' : 'remove it there with helm upgrade'}`);
  }
  if (action === 'disconnect') return (local.remotes?.data as Record<string, string> | undefined)?.[key] === undefined ? undefined : { side: local, remote: remote.cluster, key, value: null };
  const clash = [...local.configured, ...entries(local.remotes).filter((e) => e.key !== key)].find((r) => r.id === remote.id);
  if (clash) throw new MeshConflictError(what, `cluster ${local.cluster} (context ${local.context}) already has remote ${clash.name} with cluster id ${remote.id}, the id of ${remote.cluster} (context ${remote.context})`);
  const mismatch = (): MeshPrerequisiteError => new MeshPrerequisiteError(what, `context ${remote.context}: ca.key in Secret ${remote.ns}/${remote.full}-clustermesh-ca does not belong to its ca.crt`);
  let client: Pem;
  try {
    client = await issue(remote.ca!, local.cluster, { days: o.days ?? 1095 });
  } catch (err) {
    if (err instanceof CertificateError && /CA key does not belong/.test(err.message)) throw mismatch();
    if (err instanceof CertificateError) throw new MeshPrerequisiteError(what, `context ${remote.context}: cannot issue with the CA of Secret ${remote.ns}/${remote.full}-clustermesh-ca: ${err.message}`);
    throw err;
  }
  if (!new X509Certificate(client.cert).verify(new X509Certificate(remote.ca!.cert).publicKey)) throw mismatch();
  const entry: RemoteConfig = { name: remote.cluster, id: remote.id, address: remote.address!, ca: remote.ca!.cert, cert: client.cert, key: client.key };
  return { side: local, remote: remote.cluster, key, value: Buffer.from(JSON.stringify(entry)).toString('base64') };
}

const MERGE = 'application/merge-patch+json';

function secretPath(side: Side): string {
  return objectPath('Secret', `${side.full}-${REMOTES_SECRET_SUFFIX}`, side.ns);
}

/**
 * Creates the Secret, or patches one key of it at the resourceVersion read, or, when a disconnect
 * removes its last key, deletes it at that uid and resourceVersion (so `helm uninstall` afterwards
 * leaves nothing of Weft). Returns the Secret as written; undefined when deleted.
 */
async function write(p: Plan, signal?: AbortSignal): Promise<KubeObject | undefined> {
  const { side } = p;
  const name = `${side.full}-${REMOTES_SECRET_SUFFIX}`;
  const action = `write key ${p.key} of Secret ${side.ns}/${name} in context ${side.context}`;
  const opts = signal ? { signal } : {};
  const others = Object.keys((side.remotes?.data as Record<string, string> | undefined) ?? {}).filter((k) => k !== p.key);
  if (p.value === null && side.remotes && others.length === 0) {
    const preconditions = { uid: side.remotes.metadata?.uid, resourceVersion: side.remotes.metadata?.resourceVersion };
    await side.client.request(`delete Secret ${side.ns}/${name} in context ${side.context}, its last remote removed`, 'DELETE', secretPath(side), { ...opts, body: { apiVersion: 'v1', kind: 'DeleteOptions', preconditions } });
    return undefined;
  }
  if (!side.remotes) {
    const metadata = { name, namespace: side.ns, labels: { 'app.kubernetes.io/name': 'weft', 'app.kubernetes.io/managed-by': 'weft-clustermesh-connect', 'weft.io/cluster': side.cluster } };
    return side.client.request(action, 'POST', collectionPath('Secret', side.ns), { ...opts, body: { apiVersion: 'v1', kind: 'Secret', metadata, type: 'Opaque', data: { [p.key]: p.value } } });
  }
  const body = { metadata: { resourceVersion: side.remotes.metadata?.resourceVersion }, data: { [p.key]: p.value } };
  return side.client.request(action, 'PATCH', secretPath(side), { ...opts, contentType: MERGE, body });
}

/** After `failed` failed: undoes the writes made so far (newest first) and returns the error to throw. */
async function rollBack(what: string, failed: Plan, written: Array<{ plan: Plan; before: KubeObject | undefined; after: KubeObject | undefined }>, cause: unknown): Promise<Error> {
  const reason = `writing Secret ${failed.side.ns}/${failed.side.full}-${REMOTES_SECRET_SUFFIX} in context ${failed.side.context} failed (${(cause as Error).message})`;
  const undone: string[] = [];
  for (const { plan: p, before, after } of written.reverse()) {
    const where = `Secret ${p.side.ns}/${p.side.full}-${REMOTES_SECRET_SUFFIX} in context ${p.side.context}`;
    try {
      if (!after) {
        // Deleted: created again as it was.
        const m = before!.metadata ?? {};
        await p.side.client.request(`recreate ${where}`, 'POST', collectionPath('Secret', p.side.ns), { body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: m.name, namespace: m.namespace, labels: m.labels }, type: before!.type, data: before!.data } });
        undone.push(`recreated ${where}`);
        continue;
      }
      const at = { uid: after.metadata?.uid, resourceVersion: after.metadata?.resourceVersion };
      if (!before) await p.side.client.request(`delete ${where}`, 'DELETE', secretPath(p.side), { body: { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: at } });
      else await p.side.client.request(`restore ${where}`, 'PATCH', secretPath(p.side), { contentType: MERGE, body: { metadata: { resourceVersion: at.resourceVersion }, data: { [p.key]: (before.data as Record<string, string> | undefined)?.[p.key] ?? null } } });
      undone.push(`${before ? 'restored' : 'deleted'} ${where}`);
    } catch (err) {
      return new MeshWriteError(what, `${reason}, and rolling back failed too (${(err as Error).message}): ${where} is left with the new key ${p.key}; ${before ? `restore it` : 'delete it'} by hand (kubectl -n ${p.side.ns} ${before ? 'edit' : 'delete'} secret ${p.side.full}-${REMOTES_SECRET_SUFFIX}) or run this again`, { cause });
    }
  }
  return new MeshWriteError(what, `${reason}; ${undone.length ? `rolled back: ${undone.join('; ')}` : 'nothing was written'}`, { cause });
}

/** As `kubectl rollout restart`: a new pod-template annotation rolls the Deployment. */
async function restart(what: string, side: Side, signal?: AbortSignal): Promise<void> {
  const name = `${side.full}-clustermesh-apiserver`;
  const body = { spec: { template: { metadata: { annotations: { [RESTART_ANNOTATION]: new Date().toISOString() } } } } };
  try {
    await side.client.request(`restart Deployment ${side.ns}/${name} in context ${side.context}`, 'PATCH', objectPath('Deployment', name, side.ns), { contentType: 'application/strategic-merge-patch+json', body, ...(signal ? { signal } : {}) });
  } catch (err) {
    throw new MeshWriteError(what, `the remotes are written in both clusters, but restarting the clustermesh-apiserver in context ${side.context} failed (${(err as Error).message}): restart it with kubectl --context ${side.context} -n ${side.ns} rollout restart deployment ${name}`, { cause: err });
  }
}

/** As `kubectl rollout status`: the new generation is observed, every replica updated and available. */
async function waitRolledOut(side: Side, o: KubeConnectOptions): Promise<void> {
  const name = `${side.full}-clustermesh-apiserver`;
  const deadline = Date.now() + (o.timeoutMs ?? 300_000);
  for (;;) {
    const d = await get(side, objectPath('Deployment', name, side.ns), o.signal);
    const gen = d?.metadata?.['generation'] as number | undefined;
    const s = (d?.status ?? {}) as { observedGeneration?: number; replicas?: number; updatedReplicas?: number; availableReplicas?: number; conditions?: Array<{ type: string; reason?: string }> };
    const want = (d?.spec as { replicas?: number } | undefined)?.replicas ?? 1;
    const state = `observedGeneration ${s.observedGeneration ?? 0} of ${gen ?? '?'}, ${s.updatedReplicas ?? 0} of ${want} updated, ${s.availableReplicas ?? 0} available, ${s.replicas ?? 0} in all`;
    if (d && (s.observedGeneration ?? 0) >= (gen ?? 0) && (s.updatedReplicas ?? 0) >= want && (s.replicas ?? 0) <= (s.updatedReplicas ?? 0) && (s.availableReplicas ?? 0) >= (s.updatedReplicas ?? 0)) {
      o.progress?.(`clustermesh: ${side.cluster}: deployment ${name} rolled out`);
      return;
    }
    if (s.conditions?.some((c) => c.type === 'Progressing' && c.reason === 'ProgressDeadlineExceeded')) throw new MeshRolloutError(`Deployment ${side.ns}/${name} in context ${side.context} exceeded its progress deadline (${state})`);
    if (Date.now() >= deadline) throw new MeshRolloutError(`Deployment ${side.ns}/${name} in context ${side.context} is not rolled out after ${Math.round((o.timeoutMs ?? 300_000) / 1000)} s (${state}); the configuration is written, see kubectl --context ${side.context} -n ${side.ns} rollout status deployment ${name}`);
    await sleep(o.pollMs ?? 1000, o.signal, `Wait for the rollout of ${name}`);
  }
}
