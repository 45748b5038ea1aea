/** `weft etcd-issuer --config FILE`: the etcd credential issuer (the chart runs it beside etcd). */
import { parseArgs } from 'node:util';
import { createLogger } from '@weft/common';
import { loadEtcdIssuerConfig, runEtcdIssuer } from '@weft/clustermesh';
import { UsageError } from '../output.js';

export async function etcdIssuer(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' } } });
  if (!values.config) throw new UsageError('weft etcd-issuer needs --config FILE');
  const config = loadEtcdIssuerConfig(values.config);
  const log = createLogger({ component: 'etcd-issuer' });
  const stop = new AbortController();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => stop.abort());
  await runEtcdIssuer(config, log, stop.signal);
}
