/**
 * KubeClient: Weft's one door to the API server, built on @kubernetes/client-node.
 * Its KubeConfig finds the server and the credentials (the pod's service
 * account, or a kubeconfig file, with every auth plugin the client knows, and
 * a service-account token re-read as it rotates); its Watch carries the
 * newline-delimited event streams. Requests answered by one JSON document
 * (list, get, apply) go through node:http(s) with the options KubeConfig
 * computes, so objects arrive exactly as the API server sent them: the
 * client's typed API would turn list items into model classes (dates, dropped
 * unknown fields) while watch events stay plain JSON, and Weft validates what
 * the server sent, the way `weft apply` validates YAML.
 *
 * The client is an ES module and Weft's packages are CommonJS, so it is loaded
 * with import() when a client is first made: standalone mode never loads it.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { KubernetesApiError, KubernetesConfigError } from './errors.js';
import type { KubeStatus, KubeWatchEvent } from './types.js';

export type Query = Record<string, string | number | boolean | undefined>;

export interface KubeRequestOptions {
  query?: Query;
  /** Sent as JSON. */
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
  /** Default 30 s. */
  timeoutMs?: number;
}

export interface KubeClientOptions {
  /** A kubeconfig file (development); default: the pod's service account (in-cluster). */
  kubeconfig?: string;
  /** A context of the kubeconfig (`kubeconfig`, else $KUBECONFIG or ~/.kube/config, as kubectl reads them). */
  context?: string;
}

/** A running watch stream: abort() closes it (no callback follows). */
export interface WatchHandle {
  abort(): void;
}

type ClientModule = typeof import('@kubernetes/client-node');

let clientModule: Promise<ClientModule> | undefined;

function loadClient(): Promise<ClientModule> {
  // A real dynamic import (TypeScript keeps import() as is for CommonJS output under nodenext).
  clientModule ??= import('@kubernetes/client-node');
  return clientModule;
}

export class KubeClient {
  private constructor(
    readonly config: KubeConfig,
    private readonly mod: ClientModule,
  ) {}

  /**
   * Loads the configuration: `kubeconfig` if given; else, with a `context`, the kubeconfig kubectl
   * would read; else the in-cluster service account.
   */
  static async create(options: KubeClientOptions = {}): Promise<KubeClient> {
    const mod = await loadClient();
    const kc = new mod.KubeConfig();
    const source = options.kubeconfig ?? (options.context !== undefined ? process.env.KUBECONFIG || '~/.kube/config' : 'the in-cluster configuration');
    try {
      if (options.kubeconfig !== undefined) kc.loadFromFile(options.kubeconfig);
      else if (options.context !== undefined) kc.loadFromDefault();
      else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
      else throw new Error('not running in a pod (KUBERNETES_SERVICE_HOST is unset) and no kubeconfig path is configured');
    } catch (err) {
      throw new KubernetesConfigError((err as Error).message, { cause: err });
    }
    if (options.context !== undefined) {
      if (!kc.getContextObject(options.context)) throw new KubernetesConfigError(`context ${JSON.stringify(options.context)} is not in ${source} (contexts: ${kc.getContexts().map((c) => c.name).join(', ') || 'none'})`);
      kc.setCurrentContext(options.context);
    }
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new KubernetesConfigError(`${source} has no current cluster${options.context !== undefined ? ` for context ${options.context}` : ''}`);
    return new KubeClient(kc, mod);
  }

  get server(): string {
    return this.config.getCurrentCluster()!.server;
  }

  /** One request answered by a JSON document. Non-2xx answers throw KubernetesApiError with the Status' reason. */
  async request<T>(action: string, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, options: KubeRequestOptions = {}): Promise<T> {
    const url = new URL(this.server.replace(/\/+$/, '') + path);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const opts: RequestOptions = { method, headers: { accept: 'application/json' } };
    await this.config.applyToHTTPSOptions(opts);
    const body = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
    if (body) opts.headers = { ...opts.headers, 'content-type': options.contentType ?? 'application/json', 'content-length': body.length };
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = send(url, { ...opts, ...(options.signal ? { signal: options.signal } : {}), timeout: options.timeoutMs ?? 30_000 }, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${options.timeoutMs ?? 30_000} ms`)));
      req.on('error', reject);
      req.end(body);
    }).catch((err: Error) => {
      throw new KubernetesApiError(action, 0, '', err.message, { cause: err });
    });
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new KubernetesApiError(action, status, '', `the answer is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
    }
    if (status < 200 || status > 299) {
      const s = (json ?? {}) as KubeStatus;
      throw new KubernetesApiError(action, status, s.reason ?? '', s.message ?? '');
    }
    return json as T;
  }

  /**
   * Runs `command` in a pod's container (the API server's exec, over a WebSocket), its output to
   * `stdout` and `stderr`; resolves with its exit code once it ended (the status the server sends).
   */
  async exec(namespace: string, pod: string, container: string, command: string[], stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream): Promise<number> {
    const exec = new this.mod.Exec(this.config);
    return new Promise((resolve, reject) => {
      exec
        .exec(namespace, pod, container, command, stdout as never, stderr as never, null, false, (status) => {
          if (status.status === 'Success') return resolve(0);
          const code = status.details?.causes?.find((c) => c.reason === 'ExitCode')?.message;
          if (code !== undefined) return resolve(Number(code));
          reject(new KubernetesApiError(`exec in pod ${namespace}/${pod}`, 0, status.reason ?? '', status.message ?? ''));
        })
        .then(
          (ws) => ws.on('error', (err: Error) => reject(new KubernetesApiError(`exec in pod ${namespace}/${pod}`, 0, '', err.message, { cause: err }))),
          (err: Error) => reject(new KubernetesApiError(`exec in pod ${namespace}/${pod}`, 0, '', err.message, { cause: err })),
        );
    });
  }

  /** A GET whose 404 means "not there": undefined instead of an error. */
  async find<T>(action: string, path: string, signal?: AbortSignal): Promise<T | undefined> {
    try {
      return await this.request<T>(action, 'GET', path, signal ? { signal } : {});
    } catch (err) {
      if (err instanceof KubernetesApiError && err.status === 404) return undefined;
      throw err;
    }
  }

  /**
   * Opens a watch through the client's Watch. `onEvent` gets every line (it must not throw: Watch
   * swallows callback errors); `onDone` is called once, when the stream ends (undefined: closed by
   * the server) or fails (HTTP status or connection error), never after abort().
   */
  async watch(path: string, query: Query, onEvent: (e: KubeWatchEvent) => void, onDone: (err: KubernetesApiError | undefined) => void): Promise<WatchHandle> {
    let aborted = false;
    let finished = false;
    const done = (err: unknown): void => {
      if (aborted || finished) return;
      finished = true;
      if (!err) return onDone(undefined);
      const e = err as { statusCode?: number; message?: string };
      onDone(new KubernetesApiError(`watch ${path}`, e.statusCode ?? 0, e.statusCode === 410 ? 'Expired' : '', e.message ?? String(err), { cause: err }));
    };
    const controller = await new this.mod.Watch(this.config).watch(
      path,
      query,
      (type, object) => {
        if (!aborted && !finished) onEvent({ type: type as KubeWatchEvent['type'], object });
      },
      done,
    );
    return {
      abort: () => {
        aborted = true;
        controller.abort();
      },
    };
  }
}
