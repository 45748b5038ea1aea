/**
 * `weft clustermesh-apiserver --config FILE`: runs a cluster's clustermesh-apiserver until SIGTERM.
 * A module of its own so the process loads only what the apiserver needs.
 */
import { ClusterMeshApiServer, loadMeshConfig } from '@weft/clustermesh';
import { COMMANDS } from '../command-table.js';
import { UsageError } from '../output.js';
import { parseCommandArgs } from '../parse-command-args.js';

export async function clustermeshApiserver(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['clustermesh-apiserver'], argv);
  if (!values.config) throw new UsageError('weft clustermesh-apiserver needs --config FILE (see weft clustermesh-apiserver --help)');
  const server = new ClusterMeshApiServer(loadMeshConfig(values.config));
  const stop = (): void => void server.stop().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await server.start();
  await new Promise(() => undefined);
}
