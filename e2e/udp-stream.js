// A UDP stream between two pods while something happens (key rotations), for the encryption tests
// on the host and in the kernel lane. iperf3 sends 100-byte datagrams from before `during` starts
// until 2 s after it ends (a long stream, stopped then: how long `during` takes varies, under
// emulation especially); its server reports the datagrams received and lost (gaps in their
// sequence). Loss is attributed: `overflowed` counts the kernel's drops to full queues (socket
// buffers, device backlogs: packages/net/src/drops.ts) over `path`, the namespaces the stream
// crosses; a CPU-starved process overflows those, key handling does not. Tests assert
// lost <= overflowed.
'use strict';
const { spawn } = require('node:child_process');
const { totalQueueDrops } = require('../packages/net/dist/index.js');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * @param {{ from: string, to: string, ip: string, datagramsPerSecond: number, path: string[], during: () => Promise<T> }} o
 * @returns {Promise<{ result: T, packets: number, lost: number, overflowed: number, seconds: number, ranThrough: boolean }>}
 * @template T
 */
async function udpStreamDuring(o) {
  const overflowBefore = totalQueueDrops(o.path);
  const server = spawn('ip', ['netns', 'exec', o.to, 'iperf3', '-s', '-1', '-p', '5401', '-J'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let report = '';
  server.stdout.on('data', (d) => (report += d));
  const serverDone = new Promise((r) => server.once('exit', r));
  let client;
  try {
    await sleep(1000);
    const started = Date.now();
    const bits = `${o.datagramsPerSecond * 800}`;
    client = spawn('ip', ['netns', 'exec', o.from, 'iperf3', '-c', o.ip, '-p', '5401', '-u', '-b', bits, '-l', '100', '-t', '3600'], { stdio: 'ignore' });
    const clientDone = new Promise((r) => client.once('exit', r));
    await sleep(1000);
    const result = await o.during();
    await sleep(2000);
    const ranThrough = client.exitCode === null;
    const seconds = (Date.now() - started) / 1000;
    client.kill('SIGINT');
    await clientDone;
    await serverDone;
    const sum = JSON.parse(report).end.sum;
    return { result, packets: sum.packets, lost: sum.lost_packets, overflowed: totalQueueDrops(o.path) - overflowBefore, seconds, ranThrough };
  } finally {
    client?.kill('SIGKILL');
    server.kill('SIGKILL');
  }
}

module.exports = { udpStreamDuring };
