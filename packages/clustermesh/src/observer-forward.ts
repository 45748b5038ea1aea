/**
 * The Observer API of this cluster for connected clusters' relays, on the clustermesh-apiserver's
 * own mutual-TLS port: a caller must present a certificate of our CA naming a configured remote
 * (as for Sync), and gets this cluster's flows only: every call is passed to the local relay with
 * `local_only`, so a remote can neither reach a third cluster through us nor loop back to itself.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from '@weft/common';
import { expandEnv, ObserverClient, ObserverHandlerSet, type ObserverBackend, type ObserverHandlers } from '@weft/observer';
import { MeshConfigError } from './errors.js';
import type { MeshConfig } from './types.js';

export function observerForward(config: NonNullable<MeshConfig['observer']>, cluster: string, isRemote: (cn: string | undefined) => boolean, log: Logger): { handlers: ObserverHandlers; close: () => void } {
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
  const relay = new ObserverClient(address, { timeoutSeconds: 10, encodedFlows: true, ...(tls ? { tls } : {}) });
  const backend: ObserverBackend = {
    getFlows: (request, _match, sink, signal) =>
      relay.getEncodedFlows({ ...request, localOnly: true }, (r) => {
        if ('encoded' in r) sink.encodedFlow(r);
        else if (r.lostEvents) sink.lost(r.lostEvents);
        else if (r.nodeStatus) sink.nodeStatus(r.nodeStatus);
      }, signal),
    serverStatus: () => relay.serverStatus(true),
    getNodes: () => relay.getNodes(true),
  };
  const set = new ObserverHandlerSet({
    backend,
    cluster,
    node: 'clustermesh-apiserver',
    authorize: (call) => {
      const subject = call.getAuthContext().sslPeerCertificate?.subject?.CN;
      const cn = typeof subject === 'string' ? subject : undefined;
      if (isRemote(cn)) return undefined;
      log.warn({ peer: cn ?? '(no certificate)' }, 'refused an observer call from a peer that is not a configured remote');
      return `certificate ${String(cn)} is not a configured remote of ${cluster}`;
    },
  });
  return {
    handlers: set.handlers,
    close: () => {
      set.close();
      relay.close();
    },
  };
}
