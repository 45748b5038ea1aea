/**
 * ServiceMapServer: the service map over HTTP. GET / serves the page (static/, read once at start:
 * no CDN, nothing fetched from anywhere), GET /api/graph a snapshot of the map, GET /api/events
 * the map live as Server-Sent Events (a snapshot, then deltas every `flushMs` while anything
 * changed, the flow sources' state when it changes, a comment as heartbeat), GET /api/status the
 * flow sources. /api/graph and /api/events take `cluster` and `namespace` (repeated or
 * comma-separated) and show the part of the map GraphFilter describes.
 *
 * Bounded: at most `maxViewers` streams; a viewer that cannot keep up is not queued for: its
 * deltas are skipped until its socket drains, then it gets a fresh snapshot. Listening on a
 * loopback address (the default), it answers only requests whose Host names a loopback address or
 * localhost with its port: a web page elsewhere cannot read the map through DNS rebinding.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '@weft/common';
import { UiListenError, UiRequestError } from './errors.js';
import type { ServiceMap } from './service-map.js';
import type { FollowStatus, GraphFilter } from './types.js';

export interface ServiceMapServerOptions {
  map: ServiceMap;
  /** The flow sources' state, for the page's live indicator. */
  status: () => FollowStatus[];
  host: string;
  /** 0: any free port (listen() answers which). */
  port: number;
  /** The page's files (default: the package's static/). */
  staticDir?: string;
  /** How often changes go out to viewers (default 250 ms). */
  flushMs?: number;
  /** How often the map ages out old edges (default 5 s). */
  expireEveryMs?: number;
  /** A comment on every stream this often, so proxies and the browser keep it (default 15 s). */
  heartbeatMs?: number;
  /** Streams served at once (default 64). */
  maxViewers?: number;
  log: Logger;
  now?: () => number;
}

/** The page's files: the only paths served from disk. */
const STATIC: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/layout.js': { file: 'layout.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

/** A cluster or namespace name: a DNS subdomain (what Kubernetes allows for either). */
const NAME_RE = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]']);

interface Viewer {
  res: ServerResponse;
  filter: GraphFilter;
  /** Its socket is full: deltas are skipped until it drains, then a snapshot replaces them. */
  blocked: boolean;
}

export class ServiceMapServer {
  private readonly server: Server;
  private readonly viewers = new Set<Viewer>();
  private readonly files = new Map<string, Buffer>();
  private readonly timers: NodeJS.Timeout[] = [];
  private statusDirty = false;
  private port = 0;
  private readonly now: () => number;

  constructor(private readonly options: ServiceMapServerOptions) {
    this.now = options.now ?? Date.now;
    this.server = createServer((req, res) => this.handle(req, res));
  }

  /** Reads the page's files and listens; resolves with the page's URL. */
  async listen(): Promise<string> {
    const dir = this.options.staticDir ?? join(__dirname, '..', 'static');
    for (const { file } of Object.values(STATIC)) {
      if (!this.files.has(file)) this.files.set(file, readFileSync(join(dir, file)));
    }
    const { host, port } = this.options;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => reject(new UiListenError(hostPort(host, port), `${err.code ?? ''} ${err.message}`.trim(), { cause: err }));
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    const every = (ms: number, fn: () => void): void => void this.timers.push(setInterval(fn, ms).unref());
    every(this.options.flushMs ?? 250, () => this.flush());
    every(this.options.expireEveryMs ?? 5000, () => this.options.map.expire(this.now()));
    every(this.options.heartbeatMs ?? 15_000, () => this.broadcast(': ping\n\n'));
    return this.url;
  }

  get url(): string {
    return `http://${hostPort(this.options.host, this.port)}/`;
  }

  /** The flow sources changed state: tell every viewer at the next flush. */
  statusChanged(): void {
    this.statusDirty = true;
  }

  async close(): Promise<void> {
    for (const t of this.timers.splice(0)) clearInterval(t);
    for (const v of this.viewers) v.res.end();
    this.viewers.clear();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    try {
      if (!this.hostAllowed(req.headers.host)) return void this.send(res, 421, 'text/plain; charset=utf-8', 'This server answers requests for a loopback address or localhost only.\n');
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('Allow', 'GET, HEAD');
        return void this.send(res, 405, 'text/plain; charset=utf-8', 'Method not allowed\n');
      }
      const url = new URL(req.url ?? '/', 'http://localhost');
      const page = STATIC[url.pathname];
      if (page) return void this.send(res, 200, page.type, this.files.get(page.file)!, req.method === 'HEAD');
      switch (url.pathname) {
        case '/api/graph':
          return void this.json(res, 200, { ...this.options.map.snapshot(parseFilter(url.searchParams)), sources: this.options.status() });
        case '/api/status':
          return void this.json(res, 200, { sources: this.options.status(), stats: this.options.map.stats() });
        case '/api/events':
          return this.stream(req, res, parseFilter(url.searchParams));
        default:
          return void this.send(res, 404, 'text/plain; charset=utf-8', 'Not found\n');
      }
    } catch (err) {
      if (err instanceof UiRequestError) return void this.json(res, 400, err.toJSON());
      this.options.log.error({ err: (err as Error).message, url: req.url }, 'service map request failed');
      if (!res.headersSent) this.send(res, 500, 'text/plain; charset=utf-8', 'Internal error\n');
      else res.end();
    }
  }

  private stream(req: IncomingMessage, res: ServerResponse, filter: GraphFilter): void {
    if (this.viewers.size >= (this.options.maxViewers ?? 64)) {
      res.setHeader('Retry-After', '10');
      return void this.send(res, 503, 'text/plain; charset=utf-8', 'Too many viewers of the service map; try again later\n');
    }
    res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'text/event-stream; charset=utf-8', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    res.flushHeaders();
    req.socket.setNoDelay(true);
    const viewer: Viewer = { res, filter, blocked: false };
    this.viewers.add(viewer);
    const gone = (): void => void this.viewers.delete(viewer);
    req.on('close', gone);
    res.on('error', gone);
    // Reconnect soon after the server comes back (EventSource's own default is a few seconds).
    this.write(viewer, 'retry: 1000\n\n');
    this.sendSnapshot(viewer);
  }

  private sendSnapshot(viewer: Viewer): void {
    const snapshot = { ...this.options.map.snapshot(viewer.filter), sources: this.options.status(), filter: viewer.filter };
    this.write(viewer, event('snapshot', snapshot));
  }

  private flush(): void {
    const map = this.options.map;
    const delta = map.takeDelta();
    const status = this.statusDirty ? event('status', { sources: this.options.status(), stats: map.stats() }) : undefined;
    this.statusDirty = false;
    if (!delta && !status) return;
    const facets = delta ? map.facets() : undefined;
    const stats = delta ? map.stats() : undefined;
    let unfiltered: string | undefined;
    for (const viewer of this.viewers) {
      if (viewer.blocked) continue;
      if (delta) {
        const mine = map.filterDelta(delta, viewer.filter);
        let text: string;
        if (mine === delta) text = unfiltered ??= event('delta', { ...delta, facets, stats });
        else text = event('delta', { ...mine, facets, stats });
        if (!this.write(viewer, text)) continue;
      }
      if (status) this.write(viewer, status);
    }
  }

  private broadcast(text: string): void {
    for (const viewer of this.viewers) if (!viewer.blocked) this.write(viewer, text);
  }

  /** Writes to a viewer; false when its socket is full (it then waits for 'drain' and a snapshot). */
  private write(viewer: Viewer, text: string): boolean {
    if (viewer.res.write(text)) return true;
    viewer.blocked = true;
    viewer.res.once('drain', () => {
      if (!this.viewers.has(viewer)) return;
      viewer.blocked = false;
      this.sendSnapshot(viewer);
    });
    return false;
  }

  private hostAllowed(host: string | undefined): boolean {
    if (!isLoopback(this.options.host)) return true;
    if (!host) return false;
    const m = /^(\[[0-9a-fA-F:.]+\]|[^:]+)(?::(\d+))?$/.exec(host);
    if (!m) return false;
    const name = m[1]!.toLowerCase();
    return (LOOPBACK_NAMES.has(name) || name === this.options.host || /^127(\.\d{1,3}){3}$/.test(name)) && Number(m[2] ?? 80) === this.port;
  }

  private send(res: ServerResponse, status: number, type: string, body: string | Buffer, headOnly = false): void {
    res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
    res.end(headOnly ? undefined : body);
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    this.send(res, status, 'application/json; charset=utf-8', JSON.stringify(body));
  }
}

function event(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** `cluster` and `namespace`, each repeated or comma-separated; a bad name is a UiRequestError. */
export function parseFilter(params: URLSearchParams): GraphFilter {
  const values = (name: string): string[] => {
    const out = params.getAll(name).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
    for (const v of out) if (!NAME_RE.test(v)) throw new UiRequestError(name, v, 'a cluster or namespace name is lowercase letters, digits, "-" and ".", at most 253 characters');
    return [...new Set(out)];
  };
  return { clusters: values('cluster'), namespaces: values('namespace') };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

function hostPort(host: string, port: number): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}
