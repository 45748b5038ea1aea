/**
 * `weft relay --config FILE`: the cluster's relay (@weft/observer Relay) until SIGTERM: the Observer
 * API over every node of the cluster (the node list from an agent, each node over mutual TLS) and
 * over the relays of connected clusters, reached through their clustermesh-apiservers with the
 * credentials of the apiserver's configuration (`mesh`), read again on every refresh so a
 * `clustermesh connect` is picked up without a restart. With `metrics.listen`, Prometheus metrics
 * there (@weft/observer/relay-metrics, loaded only then).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { loadMeshConfig, resolveRemotes } from '@weft/clustermesh/config';
import { createLogger } from '@weft/common';
import { loadRelayConfig, ObserverClient, ObserverServer, observerServerName, peerServerName, Relay, RelayConfigError, type ObserverNode, type RemoteRelay, type TlsPaths } from '@weft/observer';
import { COMMANDS } from '../command-table.js';
import { UsageError } from '../output.js';
import { parseCommandArgs } from '../parse-command-args.js';

export async function relay(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS.relay, argv);
  if (!values.config) throw new UsageError('weft relay needs --config FILE (see weft relay --help)');
  const config = loadRelayConfig(values.config);
  const log = createLogger({ component: 'relay', cluster: config.cluster, node: 'relay' });
  const agentTls = readTls(values.config, 'agentTls', config.agentTls);
  const discover = async (): Promise<ObserverNode[]> => {
    const errors: string[] = [];
    for (const peer of config.peers) {
      const client = new ObserverClient(peer, { tls: { ...agentTls, serverName: peerServerName(config.cluster) }, timeoutSeconds: 5 });
      try {
        return await client.getNodes(true);
      } catch (err) {
        errors.push((err as Error).message);
      } finally {
        client.close();
      }
    }
    throw new Error(`no peer answered: ${errors.join('; ')}`);
  };
  const remotes = (): RemoteRelay[] => {
    if (!config.mesh) return [];
    try {
      const { remotes: list, problems } = resolveRemotes(loadMeshConfig(config.mesh));
      const bad = new Set(problems.map((p) => p.remote));
      return list
        .filter((r) => !bad.has(r.name))
        .map((r) => ({
          cluster: r.name,
          // A new certificate for the same address is a new link too.
          address: `${r.address}#${createHash('sha256').update(r.cert).digest('hex').slice(0, 12)}`,
          dial: () => new ObserverClient(r.address, { tls: { ca: Buffer.from(r.ca), cert: Buffer.from(r.cert), key: Buffer.from(r.key) }, timeoutSeconds: 5, encodedFlows: true }),
        }));
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'cannot read the clustermesh configuration; connected clusters are left out until it can be read');
      return [];
    }
  };
  const relay = new Relay({
    cluster: config.cluster,
    discover,
    dial: (n) => new ObserverClient(n.address, { tls: { ...agentTls, serverName: observerServerName(n.cluster, n.name) }, timeoutSeconds: 5, encodedFlows: true }),
    remotes,
    refreshMs: config.refreshSeconds * 1000,
    sortWindowMs: config.sortWindowMs,
    log,
  });
  const server = new ObserverServer({
    backend: relay,
    cluster: config.cluster,
    node: 'relay',
    // Many nodes' bursts meet here: room for 50,000 flows (tens of MiB) before a slow reader loses any.
    queueLimit: 50_000,
    ...(config.socket ? { socket: config.socket } : {}),
    ...(config.listen ? { listen: config.listen, tls: readTls(values.config, 'tls', config.tls!) } : {}),
    log,
  });
  const metrics = config.metrics
    ? new (await import('@weft/observer/relay-metrics')).RelayMetrics({ cluster: config.cluster, relay, calls: server.stats, listen: config.metrics.listen, log: log.child({ component: 'metrics' }) })
    : undefined;
  const stop = (): void => {
    relay.stop();
    void Promise.all([server.stop(), metrics?.stop()]).then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await relay.start();
  await server.start();
  await metrics?.start();
  log.info({ peers: config.peers, mesh: config.mesh }, 'relay ready');
  await new Promise(() => undefined);
}

function readTls(file: string, field: string, paths: TlsPaths): { ca: Buffer; cert: Buffer; key: Buffer } {
  const read = (k: keyof TlsPaths): Buffer => {
    try {
      return readFileSync(paths[k]);
    } catch (err) {
      throw new RelayConfigError(file, `${field}.${k}: cannot read ${JSON.stringify(paths[k])}: ${(err as Error).message}`);
    }
  };
  return { ca: read('ca'), cert: read('cert'), key: read('key') };
}
