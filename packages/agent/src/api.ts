/**
 * The agent's local API: HTTP over a unix socket in the agent's state
 * directory (reachable from any network namespace, protected by file
 * permissions). The CNI plugin and the CLI use it through api-client.ts.
 *
 * Whoever can connect can make the agent run `ip` as root, so the socket is
 * 0600 (owner root) from the moment it exists: it is bound under a 0177 umask,
 * not chmod-ed after the fact, which would leave a window where it is as wide
 * as the process umask allows. No group needs it (the CNI plugin and the CLI
 * run as root). Request bodies are capped (MAX_BODY_BYTES, 413 beyond it) so
 * a client cannot grow the agent's memory.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';

export type Handler = (req: { method: string; path: string; query: URLSearchParams; body: unknown }, res: ServerResponse) => Promise<unknown>;

/** Answered, with status 503, for a route the agent serves only once it has started. */
export const AGENT_STARTING = 'WEFT_ERR_AGENT_STARTING';

/** Answered, with status 413, for a request body over the server's limit. */
export const BODY_TOO_LARGE = 'WEFT_ERR_API_BODY_TOO_LARGE';

/** The largest request body the agent reads: a CNI request is under 1 KiB. */
export const MAX_BODY_BYTES = 64 * 1024;

export class ApiServer {
  private server: Server | undefined;
  private readonly routes = new Map<string, Handler>();
  /**
   * While true, a route not registered yet answers 503 AGENT_STARTING instead of 404: the agent
   * serves its health while it starts, and callers (the CNI plugin) treat it as not running yet.
   */
  starting = false;

  constructor(
    readonly socketPath: string,
    readonly options: { maxBodyBytes?: number } = {},
  ) {}

  route(method: string, path: string, handler: Handler): void {
    this.routes.set(`${method} ${path}`, handler);
  }

  async start(): Promise<void> {
    mkdirSync(dirname(this.socketPath), { recursive: true });
    rmSync(this.socketPath, { force: true });
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      // listen() binds synchronously, so the umask covers exactly the socket's creation.
      const umask = process.umask(0o177);
      try {
        this.server!.listen(this.socketPath, () => resolve());
      } finally {
        process.umask(umask);
      }
    });
    // Already 0600; this also narrows a socket some other umask-ignoring path created.
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
        const text = await this.readBody(req, res);
        if (text === undefined) return;
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

  /**
   * The body, or undefined once a 413 has been answered: a declared length over the limit is
   * refused before reading; a body that grows past it stops being kept where it crosses (the rest
   * is discarded as it arrives, and the connection closes after the answer).
   */
  private readBody(req: IncomingMessage, res: ServerResponse): Promise<string | undefined> {
    const limit = this.options.maxBodyBytes ?? MAX_BODY_BYTES;
    const tooLarge = (): void => {
      res.writeHead(413, { 'content-type': 'application/json', connection: 'close' }).end(JSON.stringify({ error: { code: BODY_TOO_LARGE, message: `Request body of ${req.method} ${req.url} is larger than ${limit} bytes` } }));
    };
    return new Promise((resolve, reject) => {
      if (Number(req.headers['content-length'] ?? 0) > limit) {
        tooLarge();
        req.resume();
        return resolve(undefined);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      let over = false;
      req.on('data', (c: Buffer) => {
        if (over) return;
        size += c.length;
        if (size <= limit) return void chunks.push(c);
        over = true;
        chunks.length = 0;
        tooLarge();
        resolve(undefined);
      });
      req.on('end', () => resolve(over ? undefined : Buffer.concat(chunks).toString()));
      req.on('error', (err) => (over ? undefined : reject(err)));
    });
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
