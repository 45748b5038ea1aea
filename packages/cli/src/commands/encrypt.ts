/**
 * `weft encrypt status`: per node, its encryption mode and key, and per peer
 * node (own cluster and connected ones) the endpoint, last handshake and
 * bytes; nodes refused as peers with the reason. -o json for scripts.
 */
import { parseArgs } from 'node:util';
import type { EncryptionStatus } from '@weft/agent';
import { agentsFor } from '../context.js';
import { parseFormat, printJson, printTable, UsageError } from '../output.js';

export async function encrypt(argv: string[]): Promise<void> {
  const [verb, ...rest] = argv;
  if (verb !== 'status') throw new UsageError('Usage: weft encrypt status [--cluster NAME] [--node NODE] [-o json]');
  const { values } = parseArgs({ args: rest, options: { cluster: { type: 'string' }, node: { type: 'string' }, agent: { type: 'string' }, output: { type: 'string', short: 'o' } } });
  const rows = await Promise.all(agentsFor(values).map(async ({ node, client }) => ({ node, ...(await client.call<EncryptionStatus>('GET', '/v1/encryption')) })));
  if (parseFormat(values.output) === 'json') return printJson(rows);
  for (const r of rows) {
    process.stdout.write(`${r.node}: ${r.mode}${r.mode === 'off' ? '' : `${r.strict ? ' (strict)' : ''}, device ${r.device}, router IP ${r.routerIp}, public key ${r.publicKey}`}\n`);
    if (r.peers.length > 0) printTable(['PEER', 'CLUSTER', 'ENDPOINT', 'ALLOWED IPS', 'LAST HANDSHAKE', 'RX BYTES', 'TX BYTES'], r.peers.map((p) => [p.node, p.cluster, p.endpoint, p.allowedIps.join(','), p.lastHandshake ?? 'never', p.rxBytes, p.txBytes]));
    for (const x of r.refused) process.stdout.write(`  refused ${x.cluster}/${x.node}: ${x.reason}\n`);
  }
}
