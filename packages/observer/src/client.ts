/**
 * ObserverClient: the Observer API of an agent or a relay, at `unix:///path` (no TLS) or
 * `host:port` (mutual TLS: the CA that issued the server's certificate, this client's certificate,
 * and the name the server's certificate must carry).
 */
import * as grpc from '@grpc/grpc-js';
import { ObserverRequestError, ObserverUnavailableError } from './errors.js';
import { MAX_MESSAGE_BYTES, observerProto, observerProtoEncoded } from './proto.js';
import type { FlowGate } from './backend.js';
import type { EncodedFlow } from './codec.js';
import type { ObserverClient as GeneratedClient } from './gen/weft/observer/v1/Observer';
import type { TlsFiles } from './server.js';
import type { GetFlowsRequestInput, GetFlowsResponse, ObserverNode, ServerStatus } from './types.js';
import type { GetFlowBatchesResponse__Output as GetFlowBatchesResponse } from './gen/weft/observer/v1/GetFlowBatchesResponse';

export interface ObserverClientOptions {
  tls?: TlsFiles & { serverName?: string };
  /** Seconds a unary call may take (default 10). */
  timeoutSeconds?: number;
  /** Leave flows encoded (getEncodedFlows): a relay passes them on as they came. */
  encodedFlows?: boolean;
}

export class ObserverClient {
  private readonly client: GeneratedClient;

  constructor(
    readonly address: string,
    private readonly options: ObserverClientOptions = {},
  ) {
    const Ctor = (options.encodedFlows ? observerProtoEncoded() : observerProto()).weft.observer.v1.Observer;
    const unix = address.startsWith('unix:');
    if (!unix && !options.tls) throw new TypeError(`The observer at ${address} is reached only with TLS`);
    const creds = unix ? grpc.credentials.createInsecure() : grpc.credentials.createSsl(options.tls!.ca, options.tls!.key, options.tls!.cert);
    // Its own subchannels, reconnecting within 5 s: a relay must notice a restarted agent at its next
    // check, not after grpc-js's default backoff of up to two minutes, nor through another client's.
    const channel: grpc.ChannelOptions = {
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 20_000,
      'grpc.use_local_subchannel_pool': 1,
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 5000,
      // An 8 MiB receive window: at HTTP/2's default 64 KiB, a stream of flow batches waits for a
      // window update every few hundred flows, and a busy reader's updates come late.
      'grpc-node.flow_control_window': 8 << 20,
    };
    if (options.tls?.serverName) channel['grpc.ssl_target_name_override'] = options.tls.serverName;
    this.client = new Ctor(address, creds, channel) as unknown as GeneratedClient;
  }

  /**
   * Streams the responses to `onResponse` until the server ends the stream (history only) or
   * `signal` aborts (then it resolves quietly). Rejects with ObserverUnavailableError, or with the
   * server's INVALID_ARGUMENT message as one for a bad filter. Asks with GetFlowBatches (many
   * responses to a message), or with GetFlows (`perMessage`: one each, as Hubble's clients do).
   */
  getFlows(request: GetFlowsRequestInput, onResponse: (r: GetFlowsResponse) => void, signal?: AbortSignal, options: { perMessage?: boolean; gate?: FlowGate } = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return resolve();
      const call: grpc.ClientReadableStream<unknown> = options.perMessage ? this.client.getFlows(request) : this.client.getFlowBatches(request);
      const onAbort = (): void => call.cancel();
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = (err?: Error): void => {
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      if (options.perMessage) call.on('data', onResponse as (r: unknown) => void);
      else {
        const gate = options.gate;
        const resume = (): void => void call.resume();
        call.on('data', (batch: GetFlowBatchesResponse) => {
          batch.responses.forEach((r) => onResponse(r));
          // Read no further while what we pass on is backed up (the server holds, or drops and counts).
          if (gate && !gate.open) {
            call.pause();
            gate.whenOpen(resume);
          }
        });
      }
      call.on('error', (err: grpc.ServiceError) => {
        if (err.code === grpc.status.CANCELLED && signal?.aborted) return done();
        if (err.code === grpc.status.INVALID_ARGUMENT) return done(new ObserverRequestError(this.address, err.details || err.message, { cause: err }));
        done(new ObserverUnavailableError(this.address, err.details || err.message, { cause: err }));
      });
      call.on('end', () => done());
    });
  }

  /**
   * As getFlows in batches, each flow left encoded with its time (a client made with
   * `encodedFlows`); lost events and node states come decoded.
   */
  getEncodedFlows(request: GetFlowsRequestInput, onResponse: (r: GetFlowsResponse | EncodedFlow) => void, signal?: AbortSignal, gate?: FlowGate): Promise<void> {
    if (!this.options.encodedFlows) throw new TypeError('getEncodedFlows needs a client made with encodedFlows');
    return this.getFlows(request, onResponse as (r: GetFlowsResponse) => void, signal, { gate });
  }

  serverStatus(localOnly = false): Promise<ServerStatus> {
    return new Promise((resolve, reject) =>
      this.client.serverStatus({ localOnly }, { deadline: this.deadline() }, (err, res) => (err ? reject(new ObserverUnavailableError(this.address, err.details || err.message, { cause: err })) : resolve(res!))),
    );
  }

  getNodes(localOnly = false): Promise<ObserverNode[]> {
    return new Promise((resolve, reject) =>
      this.client.getNodes({ localOnly }, { deadline: this.deadline() }, (err, res) => (err ? reject(new ObserverUnavailableError(this.address, err.details || err.message, { cause: err })) : resolve(res!.nodes))),
    );
  }

  /** Resolves when the channel is connected, rejects after `ms`. */
  waitForReady(ms: number): Promise<void> {
    return new Promise((resolve, reject) => this.client.waitForReady(Date.now() + ms, (err) => (err ? reject(new ObserverUnavailableError(this.address, err.message, { cause: err })) : resolve())));
  }

  close(): void {
    this.client.close();
  }

  private deadline(): Date {
    return new Date(Date.now() + (this.options.timeoutSeconds ?? 10) * 1000);
  }
}
