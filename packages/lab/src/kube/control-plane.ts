/**
 * A real Kubernetes control plane: etcd 3.6, kube-apiserver (RBAC and the Node authorizer, the
 * NodeRestriction admission plugin, ServiceAccount tokens), and optionally kube-controller-manager
 * and kube-scheduler, all built by hack/kube/build.sh. `prepareControlPlane` writes what they need
 * (a cluster CA, an etcd CA, serving and client certificates, the ServiceAccount signing key, a
 * kubeconfig per component and the admin's); `controlPlaneCommands` gives each component's command
 * line; `startControlPlane` runs them as child processes on one address and stops them again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { formatIpv4, parseCidr, WeftError } from '@weft/common';
import { createCa, freePort, issue, type Pem } from '@weft/kvstore';
import { tail } from '../procs.js';
import { KubeApi } from './api.js';
import { kubeTool } from './tools.js';

export class ControlPlaneError extends WeftError {
  static readonly code = 'WEFT_ERR_KUBE_CONTROL_PLANE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(ControlPlaneError.code, message, options);
  }
}

export type ControlPlaneComponent = 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler';

export interface ControlPlaneSpec {
  /** The cluster's name: the kubeconfig's cluster, user and context are named after it. */
  cluster: string;
  /** Where the PKI, kubeconfigs, etcd data and logs go. */
  dir: string;
  /** The address every component listens on. */
  host: string;
  ports: { etcd: number; etcdPeer: number; apiserver: number };
  /** The Service CIDR; its first address is the `kubernetes` Service's, in the serving certificate. */
  serviceCidr: string;
  /** Also run kube-controller-manager and kube-scheduler (EndpointSlices, ServiceAccounts, scheduling). */
  controllers: boolean;
  /** Nodes to issue kubelet credentials for (`system:node:<name>` in `system:nodes`): `node-<name>.kubeconfig`. */
  nodes?: string[];
}

export interface ControlPlaneFiles {
  /** The admin's kubeconfig (system:masters), context named after the cluster. */
  adminKubeconfig: string;
  /** The cluster CA, which signs the serving certificate and every client certificate. */
  ca: Pem;
  caFile: string;
  server: string;
  /** etcd's client credentials (for tests that act on the API server's storage, such as a compaction). */
  etcd: { endpoint: string; ca: string; cert: string; key: string };
}

/** The user of the API server's client certificate for kubelets. */
export const KUBELET_CLIENT_USER = 'kube-apiserver-kubelet-client';

const pki = (spec: ControlPlaneSpec, name: string): string => join(spec.dir, 'pki', name);

function writePem(spec: ControlPlaneSpec, name: string, pem: Pem): void {
  writeFileSync(pki(spec, `${name}.crt`), pem.cert);
  writeFileSync(pki(spec, `${name}.key`), pem.key, { mode: 0o600 });
}

/** A kubeconfig with everything embedded, so it can be copied anywhere. */
export function kubeconfig(cluster: string, server: string, caCert: string, user: string, client: Pem): string {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  return `${JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: cluster, cluster: { server, 'certificate-authority-data': b64(caCert) } }],
    users: [{ name: user, user: { 'client-certificate-data': b64(client.cert), 'client-key-data': b64(client.key) } }],
    contexts: [{ name: cluster, context: { cluster, user } }],
    'current-context': cluster,
  }, null, 2)}\n`;
}

function serverUrl(spec: ControlPlaneSpec): string {
  return `https://${spec.host.includes(':') ? `[${spec.host}]` : spec.host}:${spec.ports.apiserver}`;
}

/** Writes every certificate, key and kubeconfig the control plane needs (new ones each time). */
export async function prepareControlPlane(spec: ControlPlaneSpec): Promise<ControlPlaneFiles> {
  mkdirSync(join(spec.dir, 'pki'), { recursive: true, mode: 0o700 });
  mkdirSync(join(spec.dir, 'logs'), { recursive: true });
  const server = serverUrl(spec);
  const ca = await createCa(`${spec.cluster}-kubernetes`);
  writePem(spec, 'ca', ca);
  const services = parseCidr(spec.serviceCidr);
  if (typeof services === 'string') throw new ControlPlaneError(`serviceCidr: ${services}`);
  const kubernetesIp = formatIpv4(services.addr + 1);
  writePem(spec, 'apiserver', await issue(ca, 'kube-apiserver', {
    ips: [...new Set([spec.host, kubernetesIp, '127.0.0.1'])],
    dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
  }));
  // etcd has a CA of its own: its certificates are no users of the API server, nor the reverse.
  const etcdCa = await createCa(`${spec.cluster}-kube-etcd`);
  writePem(spec, 'etcd-ca', etcdCa);
  writePem(spec, 'etcd-server', await issue(etcdCa, 'etcd', { ips: [...new Set([spec.host, '127.0.0.1'])], dnsNames: ['localhost'] }));
  writePem(spec, 'apiserver-etcd-client', await issue(etcdCa, 'kube-apiserver'));
  // The API server's identity toward kubelets (logs, exec, port-forward): kubelets authorize it by
  // SubjectAccessReview, so it holds only what a binding to system:kubelet-api-admin gives it.
  writePem(spec, 'apiserver-kubelet-client', await issue(ca, KUBELET_CLIENT_USER));
  const sa = generateKeyPairSync('ec', { namedCurve: 'P-256', publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  writeFileSync(pki(spec, 'sa.key'), sa.privateKey, { mode: 0o600 });
  writeFileSync(pki(spec, 'sa.pub'), sa.publicKey);
  const users: [file: string, cn: string, groups: string[]][] = [
    ['admin', 'weft-admin', ['system:masters']],
    ['controller-manager', 'system:kube-controller-manager', []],
    ['scheduler', 'system:kube-scheduler', []],
    // kube-proxy's user, bound to system:node-proxier by the API server's bootstrap policy (Services, EndpointSlices).
    ['kube-proxy', 'system:kube-proxy', []],
  ];
  for (const node of spec.nodes ?? []) users.push([`node-${node}`, `system:node:${node}`, ['system:nodes']]);
  for (const [file, cn, groups] of users) {
    const client = await issue(ca, cn, { organizations: groups });
    writeFileSync(join(spec.dir, `${file}.kubeconfig`), kubeconfig(spec.cluster, server, ca.cert, cn, client), { mode: 0o600 });
  }
  return {
    adminKubeconfig: join(spec.dir, 'admin.kubeconfig'),
    ca,
    caFile: pki(spec, 'ca.crt'),
    server,
    etcd: { endpoint: `https://${spec.host}:${spec.ports.etcd}`, ca: pki(spec, 'etcd-ca.crt'), cert: pki(spec, 'apiserver-etcd-client.crt'), key: pki(spec, 'apiserver-etcd-client.key') },
  };
}

/** Each component's command line, in start order. */
export function controlPlaneCommands(spec: ControlPlaneSpec, env: NodeJS.ProcessEnv = process.env): { component: ControlPlaneComponent; argv: string[] }[] {
  const { host, ports } = spec;
  const etcdUrl = `https://${host}:${ports.etcd}`;
  const peerUrl = `http://${host}:${ports.etcdPeer}`;
  const commands: { component: ControlPlaneComponent; argv: string[] }[] = [
    {
      component: 'etcd',
      argv: [
        kubeTool('etcd', env), '--name', spec.cluster, '--data-dir', join(spec.dir, 'etcd'),
        '--listen-client-urls', etcdUrl, '--advertise-client-urls', etcdUrl,
        '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `${spec.cluster}=${peerUrl}`,
        '--cert-file', pki(spec, 'etcd-server.crt'), '--key-file', pki(spec, 'etcd-server.key'),
        '--trusted-ca-file', pki(spec, 'etcd-ca.crt'), '--client-cert-auth',
        // Progress notifications move the API server's watch cache on when only other kinds change,
        // so the bookmarks it sends carry a current version (etcd's default is every 10 minutes).
        '--watch-progress-notify-interval', '5s',
        '--logger', 'zap', '--log-level', 'warn',
      ],
    },
    {
      component: 'kube-apiserver',
      argv: [
        kubeTool('kube-apiserver', env),
        '--etcd-servers', etcdUrl, '--etcd-cafile', pki(spec, 'etcd-ca.crt'),
        '--etcd-certfile', pki(spec, 'apiserver-etcd-client.crt'), '--etcd-keyfile', pki(spec, 'apiserver-etcd-client.key'),
        '--bind-address', host, '--advertise-address', host, `--secure-port=${ports.apiserver}`,
        '--tls-cert-file', pki(spec, 'apiserver.crt'), '--tls-private-key-file', pki(spec, 'apiserver.key'),
        '--client-ca-file', pki(spec, 'ca.crt'), '--anonymous-auth=false',
        '--service-account-issuer', 'https://kubernetes.default.svc.cluster.local',
        '--service-account-key-file', pki(spec, 'sa.pub'), '--service-account-signing-key-file', pki(spec, 'sa.key'),
        '--service-cluster-ip-range', spec.serviceCidr,
        '--authorization-mode', 'Node,RBAC', '--enable-admission-plugins', 'NodeRestriction',
        '--kubelet-client-certificate', pki(spec, 'apiserver-kubelet-client.crt'), '--kubelet-client-key', pki(spec, 'apiserver-kubelet-client.key'),
        '--kubelet-preferred-address-types', 'InternalIP',
        '--allow-privileged=true', '--profiling=false', '--v=1',
        // The `kubernetes` Service's endpoint may not be loopback; tests on 127.0.0.1 go without it.
        ...(host.startsWith('127.') ? ['--endpoint-reconciler-type=none'] : []),
      ],
    },
  ];
  if (spec.controllers) {
    const kc = (name: string): string => join(spec.dir, `${name}.kubeconfig`);
    commands.push(
      {
        component: 'kube-controller-manager',
        argv: [
          kubeTool('kube-controller-manager', env), '--kubeconfig', kc('controller-manager'),
          '--authentication-kubeconfig', kc('controller-manager'), '--authorization-kubeconfig', kc('controller-manager'),
          '--bind-address', host, '--secure-port=0', '--leader-elect=false', '--cluster-name', spec.cluster,
          '--use-service-account-credentials=true', '--service-account-private-key-file', pki(spec, 'sa.key'),
          '--root-ca-file', pki(spec, 'ca.crt'), '--service-cluster-ip-range', spec.serviceCidr,
          '--allocate-node-cidrs=false', '--profiling=false', '--v=1',
        ],
      },
      {
        component: 'kube-scheduler',
        argv: [
          kubeTool('kube-scheduler', env), '--kubeconfig', kc('scheduler'),
          '--authentication-kubeconfig', kc('scheduler'), '--authorization-kubeconfig', kc('scheduler'),
          '--bind-address', host, '--secure-port=0', '--leader-elect=false', '--profiling=false', '--v=1',
        ],
      },
    );
  }
  return commands;
}

/** GET `path` on the API server (at `server`, default its own address) as the admin; status 0 when unreachable. */
export async function adminGet(files: ControlPlaneFiles, path: string, server = files.server): Promise<{ status: number }> {
  const api = KubeApi.fromKubeconfig(files.adminKubeconfig, server);
  try {
    return await api.call('GET', path);
  } finally {
    api.close();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A control plane run as child processes of this one (tests); `stop` ends them and removes `dir`. */
export class ControlPlane {
  private readonly children = new Map<ControlPlaneComponent, ChildProcess>();
  private readonly onExit = (): void => {
    for (const c of this.children.values()) c.kill('SIGKILL');
  };

  private constructor(readonly spec: ControlPlaneSpec, readonly files: ControlPlaneFiles, private readonly commands: ReturnType<typeof controlPlaneCommands>) {}

  /**
   * Starts on `host` (127.0.0.1) at `ports` (default: free ones), waits until the API server is
   * ready. A free port can be taken by another process between the check and the bind: a component
   * that then exits with "address already in use" on ports chosen here is started again on others
   * (twice at most); on a port the caller gave, that is the error.
   */
  static async start(options: { cluster?: string; dir: string; host?: string; ports?: Partial<ControlPlaneSpec['ports']>; controllers?: boolean; nodes?: string[]; serviceCidr?: string; timeoutMs?: number }): Promise<ControlPlane> {
    const host = options.host ?? '127.0.0.1';
    for (let attempt = 1; ; attempt++) {
      const spec: ControlPlaneSpec = {
        cluster: options.cluster ?? 'weft-test',
        dir: options.dir,
        host,
        ports: {
          etcd: options.ports?.etcd ?? (await freePort(host)),
          etcdPeer: options.ports?.etcdPeer ?? (await freePort(host)),
          apiserver: options.ports?.apiserver ?? (await freePort(host)),
        },
        serviceCidr: options.serviceCidr ?? '10.96.0.0/16',
        controllers: options.controllers ?? false,
        ...(options.nodes ? { nodes: options.nodes } : {}),
      };
      const commands = controlPlaneCommands(spec);
      const cp = new ControlPlane(spec, await prepareControlPlane(spec), commands);
      process.once('exit', cp.onExit);
      try {
        for (const { component } of commands) await cp.startComponent(component, options.timeoutMs ?? 90_000);
        return cp;
      } catch (err) {
        await cp.stop();
        const chosenHere = (c: string): boolean => (c === 'etcd' ? options.ports?.etcd === undefined && options.ports?.etcdPeer === undefined : c === 'kube-apiserver' && options.ports?.apiserver === undefined);
        const m = err instanceof ControlPlaneError ? /^(etcd|kube-apiserver) exited \(\d+\) while starting: .*address already in use/s.exec(err.message) : null;
        if (!m || attempt === 3 || !chosenHere(m[1]!)) throw err;
      }
    }
  }

  get kubeconfig(): string {
    return this.files.adminKubeconfig;
  }

  /** The process id of a running component. */
  pid(component: ControlPlaneComponent): number | undefined {
    return this.children.get(component)?.pid;
  }

  logFile(component: ControlPlaneComponent): string {
    return join(this.spec.dir, 'logs', `${component}.log`);
  }

  /** Starts one component (again) and waits until it serves. */
  async startComponent(component: ControlPlaneComponent, timeoutMs = 90_000): Promise<void> {
    const command = this.commands.find((c) => c.component === component);
    if (!command) throw new ControlPlaneError(`${component} is not part of this control plane`);
    const log = this.logFile(component);
    const out = openSync(log, 'a');
    const child = spawn(command.argv[0]!, command.argv.slice(1), { stdio: ['ignore', out, out] });
    closeSync(out);
    this.children.set(component, child);
    let exited: number | null | undefined;
    child.once('exit', (code, signal) => (exited = code ?? (signal ? -1 : null)));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (exited !== undefined) throw new ControlPlaneError(`${component} exited (${exited}) while starting: ${tail(log)}`);
      if (await this.serving(component)) return;
      if (Date.now() > deadline) throw new ControlPlaneError(`${component} was not ready after ${timeoutMs / 1000}s: ${tail(log)}`);
      await sleep(200);
    }
  }

  private async serving(component: ControlPlaneComponent): Promise<boolean> {
    switch (component) {
      case 'kube-apiserver':
        return (await adminGet(this.files, '/readyz')).status === 200;
      case 'etcd':
        // etcd's own health is behind client TLS; the API server's etcd check tells once it runs.
        return new Promise((done) => {
          const req = request(`${this.files.etcd.endpoint}/health`, { ca: readFileSync(this.files.etcd.ca), cert: readFileSync(this.files.etcd.cert), key: readFileSync(this.files.etcd.key), timeout: 2_000 }, (res) => {
            res.resume();
            done(res.statusCode === 200);
          });
          req.on('error', () => done(false));
          req.on('timeout', () => req.destroy());
          req.end();
        });
      default:
        // The controllers serve nothing here (--secure-port=0): running and holding its lease-free loop is all.
        return true;
    }
  }

  /** Stops one component (SIGTERM, then SIGKILL after 10 s) and waits for it to exit. */
  async stopComponent(component: ControlPlaneComponent): Promise<void> {
    const child = this.children.get(component);
    this.children.delete(component);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(timer);
  }

  /** Stops everything, in reverse start order, and removes the state directory. */
  async stop(): Promise<void> {
    for (const { component } of [...this.commands].reverse()) await this.stopComponent(component);
    process.removeListener('exit', this.onExit);
    rmSync(this.spec.dir, { recursive: true, force: true });
  }
}
