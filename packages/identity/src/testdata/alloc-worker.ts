/**
 * A separate allocator process for the concurrency tests: allocates the label
 * sets named by indices on argv, prints one JSON line {labels: id}, then
 * either exits (releasing nothing: its lease goes with it) or, with --hold,
 * keeps running until killed.
 */
import { KvClient } from '@weft/kvstore';
import { silentLogger } from '@weft/common';
import { IdentityAllocator } from '../allocator.js';

async function main(): Promise<void> {
  const [endpoint, node, spec, ...flags] = process.argv.slice(2);
  const hold = flags.includes('--hold');
  const indices = spec!.split(',').map(Number);
  const client = new KvClient({ endpoints: [endpoint!], retry: { maxAttempts: 30, initialMs: 50, maxMs: 1000 } });
  const allocator = new IdentityAllocator({ client, clusterId: 7, clusterName: 'east', node: node!, sessionTtlSeconds: 2, logger: silentLogger() });
  await allocator.start();
  const results = await Promise.all(indices.map((i) => allocator.allocate({ app: `app-${i}`, tier: `t${i % 7}` })));
  const out: Record<string, number> = {};
  for (const r of results) out[r.labels.key] = r.id;
  process.stdout.write(JSON.stringify(out) + '\n');
  if (hold) {
    setInterval(() => undefined, 1000);
    return;
  }
  await allocator.stop({ release: false });
  client.close();
}

main().catch((err) => {
  process.stderr.write(`worker failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
