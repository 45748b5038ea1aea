/**
 * `weft clustermesh-apiserver --config FILE`: runs a cluster's clustermesh-apiserver until SIGTERM.
 * A module of its own so the process loads only what the apiserver needs.
 */
import { parseArgs } from 'node:util';
import { ClusterMeshApiServer, loadMeshConfig } from '@weft/clustermesh';
import { UsageError } from '../output.js';

export async function clustermeshApiserver(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' } } });
  if (!values.config) throw new UsageError('weft clustermesh-apiserver needs --config FILE');
  const server = new ClusterMeshApiServer(loadMeshConfig(values.config));
  const stop = (): void => void server.stop().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await server.start();
  await new Promise(() => undefined);
}
