/**
 * ObserverServer: the Observer API over gRPC for a backend (an agent's LocalObserver, a relay), on
 * a unix socket (local tools, no TLS: the socket's permissions guard it) and optionally a TCP
 * address with mutual TLS (the relay's way in: only certificates of the configured CA).
 *
 * A stream's reader sets its pace: when grpc-js's buffer is full, flows wait in a queue of
 * `queueLimit`; beyond it they are dropped, counted (the backend's lostStreamFlows and the stream's
 * own count) and, once the reader catches up, reported to it as a LostEvent, so a slow reader never
 * grows the server's memory and never believes it saw everything.
 */
import { chmodSync, rmSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '@weft/common';
import type { FlowSink, ObserverBackend } from './backend.js';
import { FlowFilterError } from './errors.js';
import { compileFlowFilters } from './filter.js';
import { MAX_MESSAGE_BYTES, observerProto } from './proto.js';
import type { GetFlowsResponse as GetFlowsResponseInput } from './gen/weft/observer/v1/GetFlowsResponse';
import type { ObserverHandlers } from './gen/weft/observer/v1/Observer';
import type { Flow, GetFlowsRequest, LostEvent, NodeStatusEvent } from './types.js';

export interface TlsFiles {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

export interface ObserverServerOptions {
  backend: ObserverBackend & { lostStreamFlows?: number };
  cluster: string;
  node: string;
  /** A unix socket path (mode 0600), served without TLS. */
  socket?: string;
  /** host:port served with mutual TLS (`tls` required). */
  listen?: string;
  tls?: TlsFiles;
  /** Flows a stream may hold back for a slow reader before dropping (default 10,000). */
  queueLimit?: number;
  log: Logger;
}

export class ObserverServer {
  private server: grpc.Server | undefined;
  private readonly calls = new Set<AbortController>();
  /** The TCP port bound (for listen port 0). */
  port = 0;

  constructor(private readonly options: ObserverServerOptions) {}

  async start(): Promise<void> {
    const o = this.options;
    const server = new grpc.Server({ 'grpc.max_send_message_length': MAX_MESSAGE_BYTES, 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES });
    const handlers: ObserverHandlers = {
      GetFlows: (call) => void this.getFlows(call),
      ServerStatus: (call, done) => {
        o.backend.serverStatus(call.request.localOnly).then((s) => done(null, s), (err: Error) => done({ code: grpc.status.UNAVAILABLE, details: err.message }));
      },
      GetNodes: (call, done) => {
        o.backend.getNodes(call.request.localOnly).then((nodes) => done(null, { nodes }), (err: Error) => done({ code: grpc.status.UNAVAILABLE, details: err.message }));
      },
    };
    server.addService(observerProto().weft.observer.v1.Observer.service, handlers);
    if (o.socket) {
      rmSync(o.socket, { force: true });
      await bind(server, `unix://${o.socket}`, grpc.ServerCredentials.createInsecure());
      chmodSync(o.socket, 0o600);
    }
    if (o.listen) {
      if (!o.tls) throw new TypeError('The observer serves TCP only with TLS');
      const creds = grpc.ServerCredentials.createSsl(o.tls.ca, [{ cert_chain: o.tls.cert, private_key: o.tls.key }], true);
      this.port = await bind(server, o.listen, creds);
    }
    this.server = server;
    o.log.info({ socket: o.socket, listen: o.listen, port: this.port || undefined }, 'observer serving');
  }

  async stop(): Promise<void> {
    for (const c of this.calls) c.abort();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, 2000);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    if (this.options.socket) rmSync(this.options.socket, { force: true });
  }

  private async getFlows(call: grpc.ServerWritableStream<GetFlowsRequest, GetFlowsResponseInput>): Promise<void> {
    const ac = new AbortController();
    this.calls.add(ac);
    call.on('cancelled', () => ac.abort());
    call.on('error', () => ac.abort());
    const sink = new StreamSink(call, this.options);
    try {
      const match = compileFlowFilters(call.request.allow, call.request.deny);
      await this.options.backend.getFlows(call.request, match, sink, ac.signal);
      if (!ac.signal.aborted) {
        await sink.drained();
        call.end();
      }
    } catch (err) {
      const e = err as Error;
      if (!ac.signal.aborted) call.emit('error', { code: err instanceof FlowFilterError ? grpc.status.INVALID_ARGUMENT : grpc.status.UNAVAILABLE, details: e.message });
    } finally {
      this.calls.delete(ac);
    }
  }
}

/** One stream's writes, queued while grpc-js's buffer is full, dropped and counted beyond the limit. */
class StreamSink implements FlowSink {
  private queue: GetFlowsResponseInput[] = [];
  private head = 0;
  private blocked = false;
  private dropped = 0;
  private readonly limit: number;
  private waiters: Array<() => void> = [];

  constructor(
    private readonly call: grpc.ServerWritableStream<GetFlowsRequest, GetFlowsResponseInput>,
    private readonly options: ObserverServerOptions,
  ) {
    this.limit = options.queueLimit ?? 10_000;
    call.on('drain', () => this.flush());
  }

  flow(flow: Flow): void {
    this.send({ flow, cluster: flow.cluster, node: flow.node, time: flow.time });
  }

  lost(event: LostEvent): void {
    this.send({ lostEvents: event, cluster: event.cluster, node: event.node });
  }

  nodeStatus(event: NodeStatusEvent): void {
    this.send({ nodeStatus: event, cluster: event.cluster, node: event.node });
  }

  /** Resolves once everything queued has been handed to grpc-js. */
  drained(): Promise<void> {
    if (!this.blocked && this.queue.length === this.head && this.dropped === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private send(message: GetFlowsResponseInput): void {
    if (this.blocked) {
      if (this.queue.length - this.head < this.limit) this.queue.push(message);
      else {
        this.dropped++;
        const b = this.options.backend;
        if (b.lostStreamFlows !== undefined) b.lostStreamFlows++;
      }
      return;
    }
    if (!this.call.write(message)) this.blocked = true;
  }

  private flush(): void {
    this.blocked = false;
    while (this.head < this.queue.length) {
      const ok = this.call.write(this.queue[this.head++]!);
      if (!ok) {
        this.blocked = true;
        return;
      }
    }
    this.queue = [];
    this.head = 0;
    if (this.dropped > 0) {
      const n = this.dropped;
      this.dropped = 0;
      const event: LostEvent = { source: 'STREAM_QUEUE', numEventsLost: n, cluster: this.options.cluster, node: this.options.node };
      if (!this.call.write({ lostEvents: event, cluster: event.cluster, node: event.node })) {
        this.blocked = true;
        return;
      }
    }
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

function bind(server: grpc.Server, address: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port))));
}
