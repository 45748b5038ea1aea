// A batched prober for the NetworkPolicy e2e suite: one long-lived node process per client pod,
// started inside the pod's network namespace, that probes all its targets at once on request.
// Starting a process per probe (weft lab exec, weft probe) costs seconds on a loaded machine; a
// table of 72 probes per check made that the suite's whole budget.
//
// A probe is one TCP connect, or one UDP datagram that the echo server sends back, with a short
// timeout: a policy drop shows as a timeout. A failed probe is tried once more with a longer
// timeout, so an allowed pair on a busy machine does not read as denied. Each attempt uses a new
// socket (a new source port), so no conntrack entry of an earlier, allowed attempt can carry a
// later one through a policy that now denies it.
//
// The process reads one JSON request per line on stdin and answers one JSON line on stdout; it
// exits when stdin closes, so it cannot outlive the test that started it.
'use strict';
const { spawn } = require('node:child_process');

const PROBER = `
  const net = require('node:net');
  const dgram = require('node:dgram');
  function tcp(host, port, ms) {
    return new Promise((resolve) => {
      const s = net.connect({ host, port });
      const done = (ok) => { clearTimeout(timer); s.destroy(); resolve(ok); };
      const timer = setTimeout(() => done(false), ms);
      s.once('connect', () => done(true));
      s.once('error', () => done(false));
    });
  }
  function udp(host, port, ms) {
    return new Promise((resolve) => {
      const s = dgram.createSocket('udp4');
      const marker = 'netpol-' + Math.random().toString(36).slice(2);
      const done = (ok) => { clearTimeout(timer); try { s.close(); } catch {} resolve(ok); };
      const timer = setTimeout(() => done(false), ms);
      s.on('message', (m) => { if (m.toString() === marker) done(true); });
      s.on('error', () => done(false));
      s.send(marker, port, host);
    });
  }
  async function probe(t, req) {
    const once = t.protocol === 'UDP' ? udp : tcp;
    return (await once(t.ip, t.port, req.timeoutMs)) || once(t.ip, t.port, req.retryTimeoutMs);
  }
  let buf = '';
  process.stdin.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\\n')) >= 0) {
      const req = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      Promise.all(req.targets.map((t) => probe(t, req))).then((results) => process.stdout.write(JSON.stringify({ id: req.id, results }) + '\\n'));
    }
  });
  process.stdin.on('end', () => process.exit(0));
  process.stdout.write(JSON.stringify({ ready: true }) + '\\n');
`;

class PodProber {
  /** Starts the prober in network namespace `netns` (a lab pod's). */
  constructor(netns) {
    this.netns = netns;
    this.nextId = 1;
    this.pending = new Map();
    this.child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', PROBER], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    this.ready = new Promise((resolve, reject) => {
      this.onReady = resolve;
      this.child.once('exit', (code, signal) => {
        const e = new Error(`Prober in ${netns} exited (${code ?? signal}): ${err.trim()}`);
        reject(e);
        for (const p of this.pending.values()) p.reject(e);
        this.pending.clear();
      });
    });
    this.ready.catch(() => undefined);
    this.child.stderr.on('data', (d) => (err += d));
    this.child.stdout.on('data', (d) => {
      out += d;
      let i;
      while ((i = out.indexOf('\n')) >= 0) {
        const msg = JSON.parse(out.slice(0, i));
        out = out.slice(i + 1);
        if (msg.ready) this.onReady();
        const p = this.pending.get(msg.id);
        if (p) {
          this.pending.delete(msg.id);
          p.resolve(msg.results);
        }
      }
    });
  }

  /** Probes every target ({ip, port, protocol}) at once; resolves one boolean per target. */
  async probe(targets, { timeoutMs, retryTimeoutMs }) {
    await this.ready;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.stdin.write(JSON.stringify({ id, targets, timeoutMs, retryTimeoutMs }) + '\n');
    });
  }

  /** Ends the process (closing stdin ends it; SIGKILL if it has not gone within a second). */
  async close() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 1000);
    await gone;
    clearTimeout(timer);
  }
}

module.exports = { PodProber };
