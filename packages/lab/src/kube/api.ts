/**
 * A small JSON client for the lab's own calls to a lab cluster's API server (its kube-proxy's
 * lists, the control plane's readiness, the benchmarks), authenticated by the client certificate
 * of a kubeconfig whose data is embedded, as `kubeconfig()` writes them. Weft's agent and
 * clustermesh-apiserver use @kubernetes/client-node through packages/kubernetes.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { WeftError } from '@weft/common';

export class KubeApiError extends WeftError {
  static readonly code = 'WEFT_ERR_LAB_KUBE_API';
  constructor(readonly status: number, message: string) {
    super(KubeApiError.code, message);
  }
}

interface KubeconfigFile {
  clusters: { cluster: { server: string; 'certificate-authority-data': string } }[];
  users: { user: { 'client-certificate-data': string; 'client-key-data': string } }[];
}

export class KubeApi {
  private readonly agent: Agent;

  constructor(readonly server: string, tls: { ca: Buffer; cert: Buffer; key: Buffer }) {
    this.agent = new Agent({ keepAlive: true, maxSockets: 4, ...tls });
  }

  /** The kubeconfig's first cluster and user; `server` overrides its address (the lab's loopback forwarder). */
  static fromKubeconfig(file: string, server?: string): KubeApi {
    const cfg = JSON.parse(readFileSync(file, 'utf8')) as KubeconfigFile;
    const b = (s: string): Buffer => Buffer.from(s, 'base64');
    const cluster = cfg.clusters[0]!.cluster;
    const user = cfg.users[0]!.user;
    return new KubeApi(server ?? cluster.server, { ca: b(cluster['certificate-authority-data']), cert: b(user['client-certificate-data']), key: b(user['client-key-data']) });
  }

  /** One request; resolves with status and parsed body whatever the status (status 0: no answer). */
  call<T = Record<string, unknown>>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; body: T | undefined }> {
    // A sized body: a chunked one on a DELETE left bytes on the kept-alive connection that the API
    // server read as the start of the next request (400).
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve) => {
      const req = request(new URL(path, this.server), { method, agent: this.agent, timeout: 10_000, headers: { accept: 'application/json', ...(data ? { 'content-type': contentType, 'content-length': data.length } : {}) } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let parsed: T | undefined;
          try {
            parsed = text ? (JSON.parse(text) as T) : undefined;
          } catch {
            parsed = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      });
      req.on('timeout', () => req.destroy(new Error('no answer in 10 s')));
      req.on('error', () => resolve({ status: 0, body: undefined }));
      req.end(data);
    });
  }

  /** Like `call`, but a status outside `ok` is a KubeApiError naming the request and the server's message. */
  async expect<T = Record<string, unknown>>(ok: number[], method: string, path: string, body?: unknown, contentType?: string): Promise<{ status: number; body: T | undefined }> {
    const r = await this.call<T>(method, path, body, contentType);
    if (!ok.includes(r.status)) {
      const message = (r.body as { message?: string } | undefined)?.message ?? (r.status === 0 ? 'no answer' : 'no message');
      throw new KubeApiError(r.status, `${method} ${path} on ${this.server}: ${r.status} ${message}`);
    }
    return r;
  }

  close(): void {
    this.agent.destroy();
  }
}
