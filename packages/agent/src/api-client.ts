/**
 * The agent's API as its clients see it (the CLI, the CNI plugin, the lab): HTTP over the agent's
 * unix socket (api.ts serves it). Light on purpose: the CNI plugin loads this on every pod start
 * and carries it to the host, so it imports Weft's errors and nothing third-party; the answers'
 * types come from the routes that produce them, as types only (erased at runtime).
 */
import { request } from 'node:http';
// The errors module alone, not @weft/common's index (pino): the CNI plugin carries this file to the
// host (packages/cni/src/install.ts), where only Weft's own modules go.
import { WeftError } from '@weft/common/errors';
import type { HealthReport } from '@weft/common';
import type { Policy } from '@weft/policy';
import type { CniArgs } from './cni-args.js';
import type { Datapath } from './datapath-port.js';
import type { EncryptionStatus } from './encryption.js';
import type { EndpointView, PolicyMapDump } from './endpoint-routes.js';
import type { ServiceState } from './services.js';
import type { NodeStatus } from './status-routes.js';

/** A value as it arrives through JSON: bigints as numbers (bigintJson), undefined properties absent. */
export type Wire<T> = T extends bigint ? number : T extends Array<infer E> ? Array<Wire<E>> : T extends object ? { [K in keyof T]: Wire<T[K]> } : T;

/** What POST /v1/cni answers for ADD. */
export interface CniAddResult {
  ip: string;
  gateway: string;
  hostIf: string;
  podIf: string;
  mac: string;
  identity: number;
  netns: string;
}

/**
 * The agent's API as the CLI, the CNI plugin and the lab see it: one typed method per route, the
 * answer's type taken from the route that produces it, so a client never re-declares it.
 */
export class AgentClient {
  constructor(readonly socketPath: string) {}

  health(signal?: AbortSignal): Promise<HealthReport> {
    return this.call('GET', '/v1/healthz', undefined, signal);
  }

  status(): Promise<Wire<NodeStatus>> {
    return this.call('GET', '/v1/status');
  }

  endpoints(): Promise<Wire<EndpointView[]>> {
    return this.call('GET', '/v1/endpoints');
  }

  /** An endpoint by id, IP or namespace/pod, and its BPF policy map. */
  policyMap(endpoint: string): Promise<Wire<PolicyMapDump>> {
    return this.call('GET', `/v1/bpf/policy?endpoint=${encodeURIComponent(endpoint)}`);
  }

  policies(): Promise<Wire<Policy[]>> {
    return this.call('GET', '/v1/policies');
  }

  ipcache(): Promise<Wire<Awaited<ReturnType<Datapath['dumpIpcache']>>>> {
    return this.call('GET', '/v1/bpf/ipcache');
  }

  nodes(): Promise<Wire<Awaited<ReturnType<Datapath['dumpNodes']>>>> {
    return this.call('GET', '/v1/bpf/nodes');
  }

  lb(): Promise<Wire<Awaited<ReturnType<Datapath['dumpServices']>>>> {
    return this.call('GET', '/v1/bpf/lb');
  }

  services(): Promise<Wire<ServiceState[]>> {
    return this.call('GET', '/v1/services');
  }

  /** Schedules a full service resync (every service resolved again, every frontend compared with the map). */
  resyncServices(): Promise<{ scheduled: boolean }> {
    return this.call('POST', '/v1/services/resync');
  }

  encryption(): Promise<Wire<EncryptionStatus>> {
    return this.call('GET', '/v1/encryption');
  }

  /** Starts a WireGuard key rotation: the lane and epoch it rotates to. */
  rotate(): Promise<{ lane: number; epoch: number }> {
    return this.call('POST', '/v1/encryption/rotate');
  }

  cni(command: 'ADD', args: CniArgs, signal?: AbortSignal): Promise<CniAddResult>;
  cni(command: string, args: CniArgs, signal?: AbortSignal): Promise<unknown>;
  cni(command: string, args: CniArgs, signal?: AbortSignal): Promise<unknown> {
    return this.call('POST', '/v1/cni', { command, args }, signal);
  }

  async call<T>(method: 'GET' | 'POST', path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, method, path, headers: { 'content-type': 'application/json' }, ...(signal ? { signal } : {}) }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', (err) => reject(new AgentUnreachableError(this.socketPath, err)));
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
    const parsed = text ? (JSON.parse(text) as T & { error?: { code: string; message: string; cniCode?: number } }) : ({} as T & { error?: undefined });
    if (status !== 200) {
      const e = parsed.error ?? { code: 'WEFT_ERR_INTERNAL', message: `HTTP ${status}` };
      throw new AgentApiError(e.code, e.message, e.cniCode);
    }
    return parsed;
  }

  /** Streams newline-delimited JSON until `signal` aborts. */
  stream(path: string, onItem: (item: unknown) => void, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, method: 'GET', path, signal }, (res) => {
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          buf += c;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line.trim()) onItem(JSON.parse(line));
          }
        });
        res.on('end', () => resolve());
        res.on('error', () => resolve());
      });
      req.on('error', (err) => (signal?.aborted ? resolve() : reject(new AgentUnreachableError(this.socketPath, err))));
      req.end();
    });
  }
}

export class AgentUnreachableError extends WeftError {
  static readonly code = 'WEFT_ERR_AGENT_UNREACHABLE';
  constructor(socket: string, cause: Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' || code === 'ECONNREFUSED' ? `nothing listens there (is the agent running?): ${cause.message}` : cause.message;
    super(AgentUnreachableError.code, `Cannot reach the agent at ${socket}: ${why}`, { cause });
  }
}

/** An error the agent answered with, carrying its code. */
export class AgentApiError extends WeftError {
  constructor(code: string, message: string, readonly cniCode?: number) {
    super(code, message);
  }
}
