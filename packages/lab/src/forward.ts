/**
 * A byte-stream forwarder between a TCP address and a unix socket. No lab interface is attached
 * to the machine's own network namespace, so `kubectl` and `helm` on the machine reach a lab
 * cluster's API server through two of them: one inside the cluster's control-plane namespace
 * (unix socket -> the API server's address there) and one in the machine's namespace (loopback ->
 * that unix socket, which, being a file, is reachable from any namespace). Loopback only: nothing
 * is routed.
 */
import { rmSync } from 'node:fs';
import { connect, createServer, isIP, type Server, type Socket } from 'node:net';
import type { Logger } from '@weft/common';
import { LabError } from './errors.js';

export type ForwardAddress = { unix: string } | { host: string; port: number };

/** `unix:/path` or `tcp:host:port`. */
export function parseForwardAddress(text: string, what: string): ForwardAddress {
  if (text.startsWith('unix:/')) return { unix: text.slice('unix:'.length) };
  const m = /^tcp:(.+):(\d{1,5})$/.exec(text);
  const port = Number(m?.[2]);
  if (!m || isIP(m[1]!) === 0 || port < 1 || port > 65535) throw new LabError(`${what} ${JSON.stringify(text)} is neither unix:/path nor tcp:IP:port`);
  return { host: m[1]!, port };
}

export function formatForwardAddress(a: ForwardAddress): string {
  return 'unix' in a ? `unix:${a.unix}` : `tcp:${a.host}:${a.port}`;
}

/** Listens on `from` and pipes each connection to a new one to `to`; resolves once listening. */
export async function forward(from: ForwardAddress, to: ForwardAddress, log: Logger): Promise<Server> {
  if ('unix' in from) rmSync(from.unix, { force: true });
  // Half-open connections stay half-open (a client may end its side and still read the answer);
  // a side that is gone, or failed, takes the other with it.
  const server = createServer({ allowHalfOpen: true }, (inbound: Socket) => {
    const outbound = 'unix' in to ? connect({ path: to.unix, allowHalfOpen: true }) : connect({ port: to.port, host: to.host, allowHalfOpen: true });
    const fail = (err: Error): void => {
      log.debug({ err: err.message }, 'forwarded connection failed');
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on('error', fail).on('close', () => outbound.destroy());
    outbound.on('error', fail).on('close', () => inbound.end());
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new LabError(`Cannot listen on ${formatForwardAddress(from)}: ${err.message}`, { cause: err })));
    if ('unix' in from) server.listen(from.unix, resolve);
    else server.listen(from.port, from.host, resolve);
  });
  log.info({ from: formatForwardAddress(from), to: formatForwardAddress(to) }, 'forwarding');
  return server;
}
