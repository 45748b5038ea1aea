/**
 * The Observer API of this cluster for connected clusters' relays, on the clustermesh-apiserver's
 * own mutual-TLS port: a caller must present a certificate of our CA naming a configured remote
 * (as for Sync), and gets this cluster's flows only: every call is passed to the local relay with
 * `localOnly`, so a remote can neither reach a third cluster through us nor loop back to itself.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '@weft/common';
import { expandEnv, ObserverClient, type ObserverHandlers } from '@weft/observer';
import { MeshConfigError } from './errors.js';
import type { MeshConfig } from './types.js';

export function observerForward(config: NonNullable<MeshConfig['observer']>, isRemote: (cn: string | undefined) => boolean, log: Logger): { handlers: ObserverHandlers; close: () => void } {
  const address = expandEnv(config.relay, process.env, (problem) => {
    throw new MeshConfigError(`observer.relay ${JSON.stringify(config.relay)}: ${problem}`);
  });
  const read = (k: 'ca' | 'cert' | 'key'): Buffer => {
    try {
      return readFileSync(config.tls![k]);
    } catch (err) {
      throw new MeshConfigError(`observer.tls.${k}: cannot read ${JSON.stringify(config.tls![k])}: ${(err as Error).message}`);
    }
  };
  const tls = config.tls ? { ca: read('ca'), cert: read('cert'), key: read('key'), ...(config.serverName ? { serverName: config.serverName } : {}) } : undefined;
  const relay = new ObserverClient(address, { timeoutSeconds: 10, ...(tls ? { tls } : {}) });
  const refuse = (call: Pick<grpc.ServerUnaryCall<unknown, unknown>, "getAuthContext">): grpc.ServiceError | undefined => {
    const subject = call.getAuthContext().sslPeerCertificate?.subject?.CN;
    const cn = typeof subject === 'string' ? subject : undefined;
    if (isRemote(cn)) return undefined;
    log.warn({ peer: cn ?? '(no certificate)' }, 'refused an observer call from a peer that is not a configured remote');
    return Object.assign(new Error('not a configured remote'), { code: grpc.status.PERMISSION_DENIED, details: `certificate ${String(cn)} is not a configured remote`, metadata: new grpc.Metadata() });
  };
  const unavailable = (err: Error): grpc.ServiceError => Object.assign(new Error(err.message), { code: grpc.status.UNAVAILABLE, details: err.message, metadata: new grpc.Metadata() });
  const handlers: ObserverHandlers = {
    GetFlows: (call) => {
      const denied = refuse(call);
      if (denied) return void call.emit('error', denied);
      const ac = new AbortController();
      call.on('cancelled', () => ac.abort());
      relay.getFlows({ ...call.request, localOnly: true }, (r) => call.write(r), ac.signal).then(
        () => call.end(),
        (err: Error) => call.emit('error', unavailable(err)),
      );
    },
    ServerStatus: (call, done) => {
      const denied = refuse(call);
      if (denied) return done(denied);
      relay.serverStatus(true).then((s) => done(null, s), (err: Error) => done(unavailable(err)));
    },
    GetNodes: (call, done) => {
      const denied = refuse(call);
      if (denied) return done(denied);
      relay.getNodes(true).then((nodes) => done(null, { nodes }), (err: Error) => done(unavailable(err)));
    },
  };
  return { handlers, close: () => relay.close() };
}
