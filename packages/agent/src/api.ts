/**
 * The agent's local API: HTTP over a unix socket in the agent's state
 * directory (reachable from any network namespace, protected by file
 * permissions). The CNI plugin and the CLI use it.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
// The errors module alone, not @weft/common's index (pino): the CNI plugin loads this file on every pod
// start and carries it to the host (packages/cni/src/install.ts), where only Weft's own modules go.
import { WeftError } from '@weft/common/dist/errors.js';

export type Handler = (req: { method: string; path: string; query: URLSearchParams; body: unknown }, res: ServerResponse) => Promise<unknown>;

/** Answered, with status 503, for a route the agent serves only once it has started. */
export const AGENT_STARTING = 'WEFT_ERR_AGENT_STARTING';

export class ApiServer {
  private server: Server | undefined;
  private readonly routes = new Map<string, Handler>();
  /**
   * While true, a route not registered yet answers 503 AGENT_STARTING instead of 404: the agent
   * serves its health while it starts, and callers (the CNI plugin) treat it as not running yet.
   */
  starting = false;

  constructor(readonly socketPath: string) {}

  route(method: string, path: string, handler: Handler): void {
    this.routes.set(`${method} ${path}`, handler);
  }

  async start(): Promise<void> {
    mkdirSync(dirname(this.socketPath), { recursive: true });
    rmSync(this.socketPath, { force: true });
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.socketPath, () => resolve());
    });
    chmodSync(this.socketPath, 0o600);
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    rmSync(this.socketPath, { force: true });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://agent');
    const handler = this.routes.get(`${req.method} ${url.pathname}`);
    try {
      if (!handler && this.starting) throw new ApiError(503, AGENT_STARTING, `The agent is starting: ${req.method} ${url.pathname} is served once it has started (see weft agent health)`);
      if (!handler) throw new ApiError(404, 'WEFT_ERR_NOT_FOUND', `No route ${req.method} ${url.pathname}`);
      let body: unknown;
      if (req.method === 'POST') {
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        const text = Buffer.concat(chunks).toString();
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          throw new ApiError(400, 'WEFT_ERR_BAD_REQUEST', 'Request body is not JSON');
        }
      }
      const result = await handler({ method: req.method!, path: url.pathname, query: url.searchParams, body }, res);
      if (res.writableEnded || res.headersSent) return;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result ?? {}, bigintJson));
    } catch (err) {
      if (res.headersSent) return void res.end();
      const e = err as Error & { code?: string; status?: number; cniCode?: number };
      const status = err instanceof ApiError ? err.status : 500;
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: e.code ?? 'WEFT_ERR_INTERNAL', message: e.message, ...(e.cniCode !== undefined ? { cniCode: e.cniCode } : {}) } }));
    }
  }
}

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export function bigintJson(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? Number(value) : value;
}

/** The agent's API as the CLI and the CNI plugin see it. */
export class AgentClient {
  constructor(readonly socketPath: string) {}

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
