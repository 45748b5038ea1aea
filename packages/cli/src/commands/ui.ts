/**
 * `weft ui`: the service map. Follows the flows of the cluster's relay (every node of the cluster
 * and of the clusters connected to it; each agent when there is no relay) into a ServiceMap and
 * serves it as a web page with a live graph (@weft/ui), until SIGINT or SIGTERM. Prints the page's
 * address on stdout; the relay's state is on the page (and in the logs when it changes).
 */
import { createLogger } from '@weft/common';
import { parseSince } from '@weft/observer';
import { FlowFollower, isLoopback, ServiceMap, ServiceMapServer } from '@weft/ui';
import { COMMANDS } from '../command-table.js';
import { observersFor } from '../context.js';
import { UsageError } from '../output.js';
import { parseCommandArgs } from '../parse-command-args.js';

export async function ui(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS.ui, argv);
  const { host, port } = parseListen(values.listen);
  const sinceMs = parseSince(values.since);
  if (sinceMs === undefined) throw new UsageError(`Invalid --since ${JSON.stringify(values.since)}: a duration (30s, 5m, 2h, 1d) or an RFC 3339 time`);
  const expireMs = durationMs(values.expire);
  if (expireMs === undefined || expireMs < 10_000) throw new UsageError(`Invalid --expire ${JSON.stringify(values.expire)}: a duration of at least 10s (30s, 15m, 2h)`);
  const sources = observersFor({ cluster: values.cluster, server: values.server });
  const log = createLogger({ component: 'ui' });
  const map = new ServiceMap({ expireMs });
  let server: ServiceMapServer | undefined;
  const follower = new FlowFollower({ sources, sinceMs, onFlow: (f) => map.add(f), onStatus: () => server?.statusChanged(), log });
  server = new ServiceMapServer({ map, status: () => follower.status(), host, port, log });
  try {
    const url = await server.listen();
    follower.start();
    if (!isLoopback(host)) process.stderr.write(`weft ui: serving on ${host}, not a loopback address: whoever reaches it sees every flow (the page has no login)\n`);
    process.stdout.write(`Service map at ${url} (flows from ${sources.map((s) => s.name).join(', ')}); Ctrl-C ends it\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  } finally {
    await follower.stop();
    await server.close();
    for (const { client } of sources) client.close();
  }
}

/** `HOST:PORT` or `[IPv6]:PORT`. */
function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s[\]]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`Invalid --listen ${JSON.stringify(text)}: use HOST:PORT, e.g. 127.0.0.1:12000 (port 0: any free port)`);
  return { host: m[1] ?? m[2]!, port };
}

function durationMs(text: string): number | undefined {
  const m = /^(\d+)(s|m|h|d)$/.exec(text);
  return m ? Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'] : undefined;
}
