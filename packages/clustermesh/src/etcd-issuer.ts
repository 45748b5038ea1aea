/**
 * The etcd credential issuer: how an agent in Kubernetes gets its own etcd identity (CN = its
 * node) when the chart, rendered once for every node, cannot know the nodes.
 *
 * At start the agent makes a key pair and a signing request (the key never leaves the node) and
 * posts the request with its ServiceAccount token, projected with audience `weft-etcd-issuer`
 * and bound to its pod. The issuer asks the API server who that is (TokenReview): the token must
 * be valid for that audience, of the agents' ServiceAccount, and bound to a node
 * (`authentication.kubernetes.io/node-name` in the user's extra info, Kubernetes 1.30+). It then
 * gives that node its etcd user and role (etcd-roles.ts) and signs the request's key with CN =
 * that node. What the requester asked for as a name is ignored: a stolen token of node A gets a
 * certificate for node A, never for B.
 *
 * The issuer holds the etcd CA key and an etcd root client; in the chart it belongs next to etcd
 * (docs/credentials.md). One request is small (a CSR); bodies over 16 KiB are refused.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger, WeftError, type Logger } from '@weft/common';
import { CertificateError, EtcdAuth, issueFromCsr, type KvClient, type Pem } from '@weft/kvstore';
import type { KubeClient } from '@weft/kubernetes';
import { EtcdCredentialError } from './errors.js';
import { admitNode, checkNodeName } from './etcd-roles.js';

export const ISSUER_AUDIENCE = 'weft-etcd-issuer';
export const ISSUER_PATH = '/v1/etcd-credentials';
export const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';
const MAX_BODY = 16 * 1024;

export interface EtcdIssuerOptions {
  /** The API server, for TokenReview (the issuer's ServiceAccount may create tokenreviews). */
  kube: KubeClient;
  /** A root client of the cluster's etcd (users and roles). */
  etcd: KvClient;
  /** The etcd CA, in memory. */
  ca: Pem;
  /** The agents' ServiceAccount: only its tokens get credentials. */
  agentServiceAccount: { namespace: string; name: string };
  /** Validity of issued certificates in days. Default 365. */
  days?: number;
  logger?: Logger;
}

interface TokenReview {
  status?: { authenticated?: boolean; error?: string; audiences?: string[]; user?: { username?: string; extra?: Record<string, string[]> } };
}

export interface IssuedCredential {
  node: string;
  cert: string;
  ca: string;
}

export class EtcdCredentialIssuer {
  private readonly log: Logger;
  constructor(private readonly o: EtcdIssuerOptions) {
    this.log = o.logger ?? silentLogger();
  }

  /** The node a token stands for, as the API server says; refuses anything else. */
  async nodeOf(token: string, signal?: AbortSignal): Promise<string> {
    if (token === '' || /\s/.test(token)) throw new EtcdCredentialError('no bearer token in the request');
    const review = await this.o.kube.request<TokenReview>('review a token', 'POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [ISSUER_AUDIENCE] } },
      ...(signal ? { signal } : {}),
    });
    const s = review.status ?? {};
    if (s.authenticated !== true) throw new EtcdCredentialError(`the API server did not authenticate the token${s.error ? `: ${s.error}` : ''}`);
    if (!(s.audiences ?? []).includes(ISSUER_AUDIENCE)) throw new EtcdCredentialError(`the token is not for audience ${ISSUER_AUDIENCE} (it is for ${(s.audiences ?? []).join(', ') || 'none'})`);
    const want = `system:serviceaccount:${this.o.agentServiceAccount.namespace}:${this.o.agentServiceAccount.name}`;
    if (s.user?.username !== want) throw new EtcdCredentialError(`the token is of ${JSON.stringify(s.user?.username)}, not of the agents' ServiceAccount ${want}`);
    const nodes = s.user.extra?.[NODE_NAME_EXTRA] ?? [];
    if (nodes.length !== 1) throw new EtcdCredentialError(`the token is bound to ${nodes.length === 0 ? 'no node' : `nodes ${nodes.join(', ')}`}: it must be a pod-bound token of one node (${NODE_NAME_EXTRA}, Kubernetes 1.30 or later)`);
    const node = nodes[0]!;
    checkNodeName(node);
    return node;
  }

  /** A certificate with CN = the token's node for the key of `csr`, and that node's etcd user and role. */
  async issue(token: string, csr: string, signal?: AbortSignal): Promise<IssuedCredential> {
    const node = await this.nodeOf(token, signal);
    let cert: string;
    try {
      cert = await issueFromCsr(this.o.ca, csr, node, { days: this.o.days ?? 365 });
    } catch (err) {
      if (err instanceof CertificateError) throw new EtcdCredentialError(`node ${node}: ${err.message}`, { cause: err });
      throw err;
    }
    // The user and role before the certificate goes out: it works the moment the agent has it.
    await admitNode(new EtcdAuth(this.o.etcd), node);
    this.log.info({ node }, 'issued an etcd credential');
    return { node, cert, ca: this.o.ca.cert };
  }
}

/** The issuer over HTTPS: POST ISSUER_PATH, `Authorization: Bearer <token>`, body {"csr": PEM}. */
export class EtcdIssuerServer {
  private server: Server | undefined;

  constructor(
    private readonly issuer: EtcdCredentialIssuer,
    private readonly tls: Pem,
    private readonly log: Logger = silentLogger(),
  ) {}

  async listen(port: number, host: string): Promise<number> {
    const server = createServer({ cert: this.tls.cert, key: this.tls.key }, (req, res) => void this.handle(req, res));
    this.server = server;
    server.listen(port, host);
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
    return (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const answer = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      if (req.method !== 'POST' || req.url !== ISSUER_PATH) return answer(404, { code: 'WEFT_ERR_NOT_FOUND', message: `only POST ${ISSUER_PATH}` });
      const auth = req.headers.authorization ?? '';
      const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
      const body = await readBody(req);
      let csr: unknown;
      try {
        csr = (JSON.parse(body) as { csr?: unknown }).csr;
      } catch {
        throw new EtcdCredentialError('the request body is not JSON {"csr": "<PEM>"}');
      }
      if (typeof csr !== 'string') throw new EtcdCredentialError('the request body has no "csr" string');
      answer(200, await this.issuer.issue(token, csr));
    } catch (err) {
      const refused = err instanceof EtcdCredentialError;
      if (!refused) this.log.error({ err: (err as Error).message }, 'etcd credential request failed');
      else this.log.warn({ reason: (err as Error).message }, 'etcd credential refused');
      answer(refused ? 403 : 500, { code: (err as WeftError).code ?? 'WEFT_ERR_INTERNAL', message: (err as Error).message });
    }
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new EtcdCredentialError(`the request body is larger than ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
