/**
 * Packets a namespace's kernel dropped because a queue was full: UDP sockets
 * whose receive or send buffer was full (/proc/net/snmp RcvbufErrors,
 * SndbufErrors) and devices that dropped on receive or transmit (a TUN whose
 * reader is late, a veth backlog). On a machine whose CPUs are shared by
 * many lab nodes these are what a starved process costs; tests and
 * benchmarks use them to tell that apart from packets lost to a protocol.
 */
import { execFileSync } from 'node:child_process';

export interface QueueDrops {
  udpRcvbuf: number;
  udpSndbuf: number;
  /** rx + tx dropped over every device of the namespace. */
  devices: number;
}

export function queueDrops(netns: string): QueueDrops {
  const inNs = (argv: string[]): string => execFileSync('ip', ['netns', 'exec', netns, ...argv], { encoding: 'utf8' });
  const udp = inNs(['cat', '/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Udp:')).map((l) => l.trim().split(/\s+/));
  const [head, values] = udp;
  if (!head || !values) throw new Error(`No Udp counters in /proc/net/snmp of ${netns}`);
  const field = (name: string): number => Number(values[head.indexOf(name)] ?? 0);
  const links = JSON.parse(inNs(['ip', '-j', '-s', 'link', 'show'])) as Array<{ stats64?: { rx: { dropped: number }; tx: { dropped: number } } }>;
  return { udpRcvbuf: field('RcvbufErrors'), udpSndbuf: field('SndbufErrors'), devices: links.reduce((a, l) => a + (l.stats64 ? l.stats64.rx.dropped + l.stats64.tx.dropped : 0), 0) };
}

/** All queue drops over `namespaces`, summed. */
export function totalQueueDrops(namespaces: readonly string[]): number {
  return namespaces.map(queueDrops).reduce((a, d) => a + d.udpRcvbuf + d.udpSndbuf + d.devices, 0);
}
