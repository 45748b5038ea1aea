/**
 * ObserverServer: the Observer API over gRPC for a backend (an agent's LocalObserver, a relay), on
 * a unix socket (local tools, no TLS: the socket's permissions guard it) and optionally a TCP
 * address with mutual TLS (the relay's way in: only certificates of the configured CA).
 *
 * A stream's reader sets its pace: when grpc-js's buffer holds its budget, flows wait in a queue of
 * `queueLimit`; beyond it they are dropped, counted (the backend's lostStreamFlows and the stream's
 * own count) and, once the reader catches up, reported to it as a LostEvent, so a slow reader never
 * grows the server's memory and never believes it saw everything.
 */
import { chmodSync, rmSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '@weft/common';
import type { FlowGate, FlowSink, ObserverBackend } from './backend.js';
import { FlowFilterError } from './errors.js';
import { compileFlowFilters } from './filter.js';
import { MAX_MESSAGE_BYTES, observerProto } from './proto.js';
import type { EncodedFlow, OutgoingResponse } from './codec.js';
import type { GetFlowsResponse as ResponseInput } from './gen/weft/observer/v1/GetFlowsResponse';
import type { ObserverHandlers } from './gen/weft/observer/v1/Observer';
import type { Flow, GetFlowsRequest, LostEvent, NodeStatusEvent } from './types.js';

export interface TlsFiles {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** Who serves, for the sinks' lost-event reports. */
export interface ObserverHandlerOptions {
  backend: ObserverBackend & { lostStreamFlows?: number };
  cluster: string;
  node: string;
  /** Flows a stream may hold back for a slow reader before dropping (default 10,000). */
  queueLimit?: number;
  /** Refuses a call (the reason) before anything runs; e.g. a peer certificate that is not admitted. */
  authorize?: (call: Pick<grpc.ServerUnaryCall<unknown, unknown>, 'getAuthContext'>) => string | undefined;
}

export interface ObserverServerOptions extends ObserverHandlerOptions {
  /** A unix socket path (mode 0600), served without TLS. */
  socket?: string;
  /** host:port served with mutual TLS (`tls` required). */
  listen?: string;
  tls?: TlsFiles;
  log: Logger;
}

/** What an Observer service has served since it started (the relay's metrics read these). */
export class ObserverCallStats {
  /** GetFlows and GetFlowBatches streams open now: following live flows, or reading history. */
  following = 0;
  reading = 0;
  /** Responses handed to grpc-js: flows, lost events and node events. */
  sent = 0;
  /** Finished calls, by method and gRPC status code name ("GetFlows OK"). */
  readonly finished = new Map<string, number>();

  finish(method: string, code: grpc.status): void {
    const key = `${method} ${grpc.status[code] ?? String(code)}`;
    this.finished.set(key, (this.finished.get(key) ?? 0) + 1);
  }
}

/**
 * The Observer service's handlers for a backend: what ObserverServer serves, and what another gRPC
 * server adds to its own port (the clustermesh-apiserver's forward). `close()` ends every stream.
 */
export class ObserverHandlerSet {
  private readonly calls = new Set<AbortController>();
  readonly handlers: ObserverHandlers;
  readonly stats = new ObserverCallStats();

  constructor(private readonly options: ObserverHandlerOptions) {
    const o = options;
    const denied = (call: Pick<grpc.ServerUnaryCall<unknown, unknown>, 'getAuthContext'>): Partial<grpc.StatusObject> | undefined => {
      const reason = o.authorize?.(call);
      return reason === undefined ? undefined : { code: grpc.status.PERMISSION_DENIED, details: reason };
    };
    this.handlers = {
      GetFlows: (call) => void this.getFlows(call, false, denied(call)),
      GetFlowBatches: (call) => void this.getFlows(call, true, denied(call)),
      ServerStatus: (call, done) => {
        const answer = this.unary('ServerStatus', done);
        const refusal = denied(call);
        if (refusal) return answer(refusal);
        o.backend.serverStatus(call.request.localOnly).then((s) => answer(null, s), (err: Error) => answer({ code: grpc.status.UNAVAILABLE, details: err.message }));
      },
      GetNodes: (call, done) => {
        const answer = this.unary('GetNodes', done);
        const refusal = denied(call);
        if (refusal) return answer(refusal);
        o.backend.getNodes(call.request.localOnly).then((nodes) => answer(null, { nodes }), (err: Error) => answer({ code: grpc.status.UNAVAILABLE, details: err.message }));
      },
    };
  }

  close(): void {
    for (const c of this.calls) c.abort();
  }

  /** `done`, counting the call's outcome first. */
  private unary<T>(method: string, done: grpc.sendUnaryData<T>): (err: Partial<grpc.StatusObject> | null, value?: T) => void {
    return (err, value) => {
      this.stats.finish(method, err ? (err.code ?? grpc.status.UNKNOWN) : grpc.status.OK);
      done(err, value);
    };
  }

  private async getFlows(call: grpc.ServerWritableStream<GetFlowsRequest, unknown>, batched: boolean, refusal: Partial<grpc.StatusObject> | undefined): Promise<void> {
    const method = batched ? 'GetFlowBatches' : 'GetFlows';
    const stats = this.stats;
    if (refusal) {
      stats.finish(method, refusal.code ?? grpc.status.UNKNOWN);
      return void call.emit('error', refusal);
    }
    const follow = call.request.follow;
    const ac = new AbortController();
    this.calls.add(ac);
    call.on('cancelled', () => ac.abort());
    call.on('error', () => ac.abort());
    const sink = new StreamSink(call, this.options, batched, stats);
    if (follow) stats.following++;
    else stats.reading++;
    let code = grpc.status.CANCELLED;
    try {
      const match = compileFlowFilters(call.request.allow, call.request.deny);
      await this.options.backend.getFlows(call.request, match, sink, ac.signal);
      if (!ac.signal.aborted) {
        await sink.drained();
        call.end();
        code = grpc.status.OK;
      }
    } catch (err) {
      const e = err as Error;
      if (!ac.signal.aborted) {
        code = err instanceof FlowFilterError ? grpc.status.INVALID_ARGUMENT : grpc.status.UNAVAILABLE;
        call.emit('error', { code, details: e.message });
      }
    } finally {
      this.calls.delete(ac);
      if (follow) stats.following--;
      else stats.reading--;
      stats.finish(method, code);
    }
  }
}

export class ObserverServer {
  private server: grpc.Server | undefined;
  private readonly handlerSet: ObserverHandlerSet;
  /** The TCP port bound (for listen port 0). */
  port = 0;

  constructor(private readonly options: ObserverServerOptions) {
    this.handlerSet = new ObserverHandlerSet(options);
  }

  /** What has been served since the server was made. */
  get stats(): ObserverCallStats {
    return this.handlerSet.stats;
  }

  async start(): Promise<void> {
    const o = this.options;
    const server = new grpc.Server({ 'grpc.max_send_message_length': MAX_MESSAGE_BYTES, 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES });
    server.addService(observerProto().weft.observer.v1.Observer.service, this.handlerSet.handlers);
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
    this.handlerSet.close();
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
}

/**
 * What a stream may have waiting in grpc-js's buffer: messages (GetFlows), or batches. Both above
 * the buffer's high-water mark (16): a stream holds back only after a write said so, so 'drain'
 * always follows. Below it, waiting for 'drain' every 16 messages would pace a stream by event-loop
 * turns (a few thousand flows a second, CPUs idle).
 */
const WRITE_BUDGET = 4096;
const BATCH_BUDGET = 32;
/** The most responses in one batch. */
const MAX_BATCH = 1024;
/** Batches in grpc-js's buffer at which the stream's gate closes: 4 left a TLS socket idle between them (103k against 131k flows/s through, 4 x 50k). */
const GATE_BATCHES = 16;

/**
 * One stream's writes. GetFlows writes a message per response; GetFlowBatches gathers what arrives
 * in one turn of the event loop (at most MAX_BATCH) into one message. While grpc-js's buffer holds
 * its budget, responses wait in a queue of `queueLimit`; beyond it they are dropped and counted, and
 * the reader is told how many with a LostEvent once it catches up.
 */
class StreamSink implements FlowSink, FlowGate {
  private queue: OutgoingResponse[] = [];
  private head = 0;
  private blocked = false;
  private scheduled = false;
  private dropped = 0;
  private readonly lostHeld = new Map<string, LostEvent>();
  private readonly limit: number;
  private waiters: Array<() => void> = [];
  private gateWaiters: Array<() => void> = [];
  readonly gate: FlowGate | undefined;

  constructor(
    private readonly call: grpc.ServerWritableStream<GetFlowsRequest, unknown>,
    private readonly options: ObserverHandlerOptions,
    private readonly batched: boolean,
    private readonly stats: ObserverCallStats,
  ) {
    this.limit = options.queueLimit ?? 10_000;
    this.gate = batched ? this : undefined;
    call.on('drain', () => {
      this.blocked = false;
      this.flush();
    });
  }

  flow(flow: Flow): void {
    this.send({ flow, cluster: flow.cluster, node: flow.node, time: flow.time });
  }

  encodedFlow(flow: EncodedFlow): void {
    this.send(flow);
  }

  lost(event: LostEvent): void {
    this.send({ lostEvents: event, cluster: event.cluster, node: event.node });
  }

  nodeStatus(event: NodeStatusEvent): void {
    this.send({ nodeStatus: event, cluster: event.cluster, node: event.node });
  }

  get open(): boolean {
    return !this.blocked && this.queue.length - this.head < MAX_BATCH && this.call.writableLength < GATE_BATCHES;
  }

  whenOpen(resume: () => void): void {
    if (this.open) return resume();
    this.gateWaiters.push(resume);
  }

  /** A batch left grpc-js's buffer: whoever waits for the gate may go on. */
  private wrote(): void {
    if (this.gateWaiters.length === 0 || !this.open) return;
    const waiters = this.gateWaiters;
    this.gateWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once everything queued has been handed to grpc-js. */
  drained(): Promise<void> {
    if (!this.blocked) this.flush();
    if (this.idle()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private idle(): boolean {
    return this.queue.length === this.head && this.dropped === 0 && this.lostHeld.size === 0;
  }

  /** Another server's LostEvent that found the queue full: summed with its like, sent on catching up. */
  private keepLost(event: LostEvent): void {
    const key = `${event.source}\0${event.cluster}\0${event.node}`;
    const held = this.lostHeld.get(key);
    if (held) held.numEventsLost = Number(held.numEventsLost) + Number(event.numEventsLost);
    else this.lostHeld.set(key, { ...event });
  }

  private send(message: OutgoingResponse): void {
    if (this.queue.length - this.head >= this.limit) {
      const lost = (message as ResponseInput).lostEvents;
      if (lost) return this.keepLost(lost as LostEvent);
      this.dropped++;
      const b = this.options.backend;
      if (b.lostStreamFlows !== undefined) b.lostStreamFlows++;
      return;
    }
    this.queue.push(message);
    if (this.blocked) return;
    if (!this.batched || this.queue.length - this.head >= MAX_BATCH) return this.flush();
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        if (!this.blocked) this.flush();
      });
    }
  }

  /** Writes what is queued until grpc-js's buffer holds its budget; then the lost count, if any. */
  private flush(): void {
    for (;;) {
      while (this.head < this.queue.length && !this.blocked) {
        let ok: boolean;
        if (this.batched) {
          const end = Math.min(this.queue.length, this.head + MAX_BATCH);
          ok = this.call.write({ responses: this.queue.slice(this.head, end) }, () => this.wrote());
          this.stats.sent += end - this.head;
          this.head = end;
        } else {
          ok = this.call.write(this.queue[this.head++]!);
          this.stats.sent++;
        }
        if (!ok && this.call.writableLength >= (this.batched ? BATCH_BUDGET : WRITE_BUDGET)) this.blocked = true;
      }
      if (this.blocked || (this.dropped === 0 && this.lostHeld.size === 0)) break;
      // Caught up after dropping: say how many were lost, after what was sent before them.
      if (this.dropped > 0) {
        const event: LostEvent = { source: 'STREAM_QUEUE', numEventsLost: this.dropped, cluster: this.options.cluster, node: this.options.node };
        this.dropped = 0;
        this.queue.push({ lostEvents: event, cluster: event.cluster, node: event.node });
      }
      for (const event of this.lostHeld.values()) this.queue.push({ lostEvents: event, cluster: event.cluster, node: event.node });
      this.lostHeld.clear();
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 65_536) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.wrote();
    if (this.blocked || !this.idle()) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

function bind(server: grpc.Server, address: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port))));
}
