/**
 * A Kubernetes API server stand-in for tests: a node:http server on
 * 127.0.0.1 that replays exchanges in the API server's wire format
 * (testdata/*.json: written to that format by hand, since no API server can
 * run where Weft is developed). Each exchange names the request it answers
 * ("GET /api/v1/pods?watch=true&resourceVersion=100"); requests to one
 * method, path and kind (watch or not) are answered in recorded order, and
 * the query parameters the recording names must match (others may be added).
 * A list or object answer is one JSON document; a watch answer is a stream of
 * newline-delimited {type, object} events that then ends ("close"), breaks
 * mid-line ("drop": the socket is destroyed), or stays open ("hold", the
 * default). A request with nothing recorded for it is a mismatch: answered
 * 500 and kept in `mismatches`, which a test asserts empty. Not part of the
 * package's API (index.ts does not export it).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RecordedExchange {
  /** `METHOD /path?query`: the query parameters listed must be present with these values. */
  request: string;
  /** A single-document answer. */
  response?: { status: number; body: unknown };
  /** A watch answer: its events, then how the stream ends. */
  events?: unknown[];
  end?: 'close' | 'drop' | 'hold';
}

export interface Recording {
  description?: string;
  exchanges: RecordedExchange[];
}

export interface ReceivedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

const TOKEN = 'replay-token';

export class ReplayServer {
  readonly requests: ReceivedRequest[] = [];
  readonly mismatches: string[] = [];
  private readonly queues = new Map<string, RecordedExchange[]>();
  private readonly held = new Set<ServerResponse>();
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;
  private readonly waiters: Array<{ test: () => boolean; resolve: () => void }> = [];
  private dir: string | undefined;

  constructor(recording: Recording) {
    for (const ex of recording.exchanges) {
      const { method, path, query } = parseRequest(ex.request);
      const q = this.queue(method, path, query.watch === 'true');
      q.push(ex);
    }
    this.server = createServer((req, res) => void this.serve(req, res));
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** A kubeconfig file pointing at this server with a bearer token, as a developer's would. */
  kubeconfig(): string {
    this.dir ??= mkdtempSync(join(tmpdir(), 'weft-kube-'));
    return writeKubeconfig(join(this.dir, 'kubeconfig'), { replay: this });
  }

  /** Requests received so far to `path` (watch or not). */
  received(path: string, watch: boolean): ReceivedRequest[] {
    return this.requests.filter((r) => r.path === path && (r.query.watch === 'true') === watch);
  }

  /** Resolves once `test` holds (checked after every request). */
  until(test: () => boolean, what = 'a condition', timeoutMs = 5000): Promise<void> {
    if (test()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}; requests: ${this.requests.map((r) => `${r.method} ${r.path} ${JSON.stringify(r.query)}`).join(' | ')}`)), timeoutMs);
      this.waiters.push({ test, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  /** Every recorded exchange has been served. */
  get exhausted(): boolean {
    return [...this.queues.values()].every((q) => q.length === 0);
  }

  async close(): Promise<void> {
    for (const res of this.held) res.end();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  private queue(method: string, path: string, watch: boolean): RecordedExchange[] {
    const key = `${method} ${path}${watch ? ' (watch)' : ''}`;
    let q = this.queues.get(key);
    if (!q) this.queues.set(key, (q = []));
    return q;
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://replay');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const got: ReceivedRequest = { method: req.method ?? 'GET', path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers, body: Buffer.concat(chunks).toString() };
    this.requests.push(got);
    const watch = got.query.watch === 'true';
    const ex = this.queue(got.method, got.path, watch).shift();
    const expected = ex ? parseRequest(ex.request).query : {};
    const wrong = Object.entries(expected).filter(([k, v]) => got.query[k] !== v);
    if (!ex || wrong.length > 0) {
      this.mismatches.push(`${got.method} ${req.url}: ${ex ? `expected ${ex.request}` : 'nothing recorded'}`);
      this.answer(res, 500, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'no recorded response', reason: 'InternalError', code: 500 });
    } else if (ex.events) {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' });
      for (const e of ex.events) res.write(`${JSON.stringify(e)}\n`);
      if (ex.end === 'close') res.end();
      else if (ex.end === 'drop') res.write('{"type":"MODIFIED","object":{"kind":', () => res.socket?.destroy());
      else this.held.add(res);
    } else {
      this.answer(res, ex.response?.status ?? 200, ex.response?.body);
    }
    for (const w of this.waiters.splice(0)) {
      if (w.test()) w.resolve();
      else this.waiters.push(w);
    }
  }

  private answer(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }
}

/**
 * A kubeconfig file with one context per server (named by the keys, each with its own cluster and
 * user entry), as a developer reaching several clusters has; the current context is the first.
 */
export function writeKubeconfig(file: string, servers: Record<string, ReplayServer>): string {
  const names = Object.keys(servers);
  const lines = ['apiVersion: v1', 'kind: Config', 'clusters:'];
  for (const n of names) lines.push(`- name: ${n}\n  cluster:\n    server: ${servers[n]!.url}\n    insecure-skip-tls-verify: true`);
  lines.push('users:');
  for (const n of names) lines.push(`- name: ${n}\n  user:\n    token: ${TOKEN}`);
  lines.push('contexts:');
  for (const n of names) lines.push(`- name: ${n}\n  context:\n    cluster: ${n}\n    user: ${n}`);
  lines.push(`current-context: ${names[0]}`, '');
  writeFileSync(file, lines.join('\n'));
  return file;
}

function parseRequest(line: string): { method: string; path: string; query: Record<string, string> } {
  const [method = 'GET', target = '/'] = line.split(' ');
  const url = new URL(target, 'http://replay');
  return { method, path: url.pathname, query: Object.fromEntries(url.searchParams) };
}

export const REPLAY_TOKEN = TOKEN;
