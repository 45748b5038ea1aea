/**
 * MetricsServer: a registry's exposition over plain HTTP, `GET /metrics` on `host:port` (Prometheus
 * text format 0.0.4), for every Weft component that serves metrics. Scrapes that arrive together
 * share one collection, so several scrapers cost what one does. Nothing else is served: any other
 * path is 404, any other method 405.
 *
 * A component adopts it in a few lines:
 *   const registry = createRegistry({ cluster, node });
 *   // ... its metrics, registered on `registry` ...
 *   const server = new MetricsServer({ registry, listen: config.metrics.listen, log });
 *   const { port } = await server.start();   // listen '127.0.0.1:0' in tests
 *   ...
 *   await server.stop();
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@weft/common';
import type { Registry } from 'prom-client';
import { MetricsConfigError, MetricsListenError } from './errors.js';
import { parseListen, type ListenAddress } from './listen.js';

export interface MetricsServerOptions {
  registry: Registry;
  /** IPv4:port; port 0 takes a free one (start() says which). */
  listen: string;
  log?: Logger;
}

export class MetricsServer {
  private server: Server | undefined;
  private bound: ListenAddress | undefined;
  /** The collection in progress: scrapes arriving meanwhile wait for it instead of starting their own. */
  private collecting: Promise<string> | undefined;
  private readonly listen: ListenAddress;

  constructor(private readonly options: MetricsServerOptions) {
    const parsed = parseListen(options.listen);
    if (typeof parsed === 'string') throw new MetricsConfigError(options.listen, parsed);
    this.listen = parsed;
  }

  /** Listens; resolves to the address bound (the real port when 0 was asked). */
  async start(): Promise<ListenAddress> {
    if (this.bound) return this.bound;
    const server = createServer((req, res) => this.handle(req, res));
    // A scraper that stops reading cannot hold a socket for long.
    server.requestTimeout = 30_000;
    server.headersTimeout = 10_000;
    server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(new MetricsListenError(this.options.listen, err.code ?? err.message, { cause: err })));
      server.listen(this.listen.port, this.listen.host, () => resolve());
    });
    server.on('error', (err) => this.options.log?.error({ err: err.message }, 'metrics server error'));
    this.server = server;
    const a = server.address() as AddressInfo;
    this.bound = { host: a.address, port: a.port };
    this.options.log?.info({ listen: `${a.address}:${a.port}` }, 'serving metrics');
    return this.bound;
  }

  /** The address bound, once started. */
  get address(): ListenAddress | undefined {
    return this.bound;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.bound = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') return void reply(res, 404, 'Not found: metrics are at /metrics\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return void reply(res, 405, `Method ${req.method} not allowed: GET /metrics\n`);
    }
    this.collect().then(
      (body) => {
        res.writeHead(200, { 'Content-Type': this.options.registry.contentType, 'Content-Length': Buffer.byteLength(body) });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: Error) => {
        this.options.log?.error({ err: err.message }, 'cannot collect metrics');
        reply(res, 500, `Cannot collect metrics: ${err.message}\n`);
      },
    );
  }

  private collect(): Promise<string> {
    this.collecting ??= this.options.registry.metrics().finally(() => (this.collecting = undefined));
    return this.collecting;
  }
}

function reply(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
