/**
 * `weft echo-server --tcp P --udp P --http P [--name N]`: the lab's built-in
 * workload. TCP and UDP echo what they receive; HTTP answers with JSON naming
 * the server and the client address it saw (so tests can check source
 * addresses and which backend answered).
 */
import { createSocket } from 'node:dgram';
import { createServer as createHttp } from 'node:http';
import { createServer as createTcp } from 'node:net';
import { hostname } from 'node:os';
import { COMMANDS } from '../command-table.js';
import { UsageError } from '../output.js';
import { parseCommandArgs } from '../parse-command-args.js';

function port(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UsageError(`Invalid ${flag} ${JSON.stringify(v)}: use a port 1-65535`);
  return n;
}

export async function echoServer(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['echo-server'], argv);
  const name = values.name ?? process.env.WEFT_POD ?? hostname();
  const tcp = port(values.tcp, '--tcp');
  const udp = port(values.udp, '--udp');
  const http = port(values.http, '--http');
  if (tcp === undefined && udp === undefined && http === undefined) throw new UsageError('echo-server needs at least one of --tcp, --udp, --http');
  if (tcp !== undefined) createTcp((s) => s.on('error', () => undefined).pipe(s)).listen(tcp, '0.0.0.0');
  if (udp !== undefined) {
    const sock = createSocket('udp4');
    sock.on('message', (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
    sock.bind(udp, '0.0.0.0');
  }
  if (http !== undefined) {
    createHttp((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ server: name, cluster: process.env.WEFT_CLUSTER, client: req.socket.remoteAddress, path: req.url }) + '\n');
    }).listen(http, '0.0.0.0');
  }
  process.stderr.write(`echo-server ${name}: tcp ${tcp ?? '-'} udp ${udp ?? '-'} http ${http ?? '-'}\n`);
  await new Promise(() => undefined);
}
