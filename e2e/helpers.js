// Shared helpers for the end-to-end tests: run the weft CLI as a user does,
// and run commands inside lab pods.
'use strict';
const { execFile, spawn } = require('node:child_process');
const { join } = require('node:path');

const WEFT = join(__dirname, '..', 'packages', 'cli', 'bin', 'weft.js');

/** Runs `weft ARGS...`; resolves {code, stdout, stderr}. */
function weft(args, options = {}) {
  return new Promise((resolve) => {
    execFile(process.execPath, [WEFT, ...args], { timeout: options.timeout ?? 180_000, maxBuffer: 64 << 20, env: { ...process.env, WEFT_LOG_LEVEL: 'warn', ...options.env } }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

async function weftJson(args, options) {
  const r = await weft([...args, '-o', 'json'], options);
  if (r.code !== 0) throw new Error(`weft ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** `weft probe` from inside a pod: resolves true when the peer answered. */
async function probe(pod, target) {
  const r = await weft(['lab', 'exec', pod, '--', process.execPath, WEFT, 'probe', '--timeout', '1500', ...target]);
  return r.code === 0;
}

/** Waits for `cond`; `what` says what for (a function: read when the time is up, for the last state seen). */
async function until(cond, what, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The pid of the process in network namespace `ns` whose command line contains `needle`. */
function pidInNetns(ns, needle) {
  const { execFileSync } = require('node:child_process');
  const { readFileSync } = require('node:fs');
  const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split(/\s+/).filter(Boolean);
  const pid = pids.find((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(needle);
    } catch {
      return false;
    }
  });
  return pid === undefined ? undefined : Number(pid);
}

/**
 * A node script that sends one UDP datagram and collects what comes back to its socket within
 * `waitMs`: argv[1] is JSON {bind, bindPort, to, port, payload (hex), waitMs}; it prints
 * {replies: [{from, data}]}. No raw socket: the kernel builds the outer headers, so a forged packet
 * is a payload (a VXLAN or Geneve header and an inner frame) or a source address borrowed for the
 * occasion.
 */
const UDP_SENDER = `
  const a = JSON.parse(process.argv[1]);
  const s = require('node:dgram').createSocket('udp4');
  const replies = [];
  s.on('message', (m, r) => replies.push({ from: r.address + ':' + r.port, data: m.toString('latin1') }));
  s.bind(a.bindPort, a.bind, () => s.send(Buffer.from(a.payload, 'hex'), a.port, a.to, (err) => {
    if (err) { console.log(JSON.stringify({ error: err.message })); process.exit(1); }
    setTimeout(() => { console.log(JSON.stringify({ replies })); s.close(); }, a.waitMs);
  }));
`;

/** Runs UDP_SENDER under `prefix` (e.g. ip netns exec NS); resolves what it printed. */
function sendUdpVia(prefix, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(prefix[0], [...prefix.slice(1), process.execPath, '-e', UDP_SENDER, JSON.stringify({ waitMs: 1500, ...args })], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`UDP sender failed (${code}): ${out}${err}`))));
  });
}

/** One UDP datagram from the lab's underlay namespace (where the bridge all nodes are plugged into lives). */
function fromUnderlay(args) {
  return sendUdpVia(['ip', 'netns', 'exec', 'weft-lab-ul'], args);
}

/** The tunnel payloads the injections send: the datapath tests' builder (loaded when first used). */
const vxlanPayload = (p) => require('@weft/datapath').vxlanPayload(p);
const genevePayload = (p) => require('@weft/datapath').genevePayload(p);

/**
 * Gives the lab's underlay namespace addresses on its bridge and host routes via nodes, for
 * fromUnderlay; returns the undo. ARP is answered and asked only with the bridge's own subnet
 * address (arp_announce 2), so a borrowed pod address never becomes a node's neighbour.
 */
function onUnderlay({ addresses, routes = [] }) {
  const { execFileSync } = require('node:child_process');
  const ns = (...args) => execFileSync('ip', ['netns', 'exec', 'weft-lab-ul', ...args], { encoding: 'utf8' });
  ns('sysctl', '-qw', 'net.ipv4.conf.br0.arp_announce=2');
  for (const a of addresses) ns('ip', 'addr', 'add', a, 'dev', 'br0');
  for (const [dst, via] of routes) ns('ip', 'route', 'add', dst, 'via', via);
  return () => {
    for (const [dst] of routes) ns('ip', 'route', 'del', dst);
    for (const a of addresses) ns('ip', 'addr', 'del', a, 'dev', 'br0');
  };
}

/**
 * A TCP stream from inside network namespace `netns` to an echo server at host:port: 100 bytes
 * every `everyMs` for `forMs`, then `drainMs` for the echoes. Resolves with the exit code and what
 * was sent and echoed back (`error` when the connection failed), so a test can assert that no
 * byte was lost while it changed something under the stream.
 */
function tcpStream(netns, host, port, { everyMs, forMs, drainMs }) {
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', `
    const s = require('net').connect(${Number(port)}, ${JSON.stringify(host)});
    let sent = 0, got = 0;
    s.on('data', (d) => { got += d.length; });
    const t = setInterval(() => { s.write('x'.repeat(100)); sent += 100; }, ${Number(everyMs)});
    setTimeout(() => { clearInterval(t); setTimeout(() => { console.log(JSON.stringify({ sent, got })); s.destroy(); }, ${Number(drainMs)}); }, ${Number(forMs)});
    s.on('error', (e) => { console.log(JSON.stringify({ error: e.message, sent, got })); process.exit(1); });
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, out, ...JSON.parse(out.trim() || '{}') })));
}

function isRoot() {
  return process.getuid && process.getuid() === 0;
}

module.exports = { WEFT, weft, weftJson, probe, until, isRoot, pidInNetns, spawn, tcpStream, fromUnderlay, onUnderlay, sendUdpVia, vxlanPayload, genevePayload };
