/** `weft etcd-issuer --config FILE`: the etcd credential issuer (the chart runs it beside etcd). */
import { createLogger } from '@weft/common';
import { loadEtcdIssuerConfig, runEtcdIssuer } from '@weft/clustermesh';
import { COMMANDS } from '../command-table.js';
import { UsageError } from '../output.js';
import { parseCommandArgs } from '../parse-command-args.js';

export async function etcdIssuer(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['etcd-issuer'], argv);
  if (!values.config) throw new UsageError('weft etcd-issuer needs --config FILE (see weft etcd-issuer --help)');
  const config = loadEtcdIssuerConfig(values.config);
  const log = createLogger({ component: 'etcd-issuer' });
  const stop = new AbortController();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => stop.abort());
  await runEtcdIssuer(config, log, stop.signal);
}
