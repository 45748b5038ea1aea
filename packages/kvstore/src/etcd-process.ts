/**
 * EtcdProcess: a real etcd server as a child process, for the demo, the tests,
 * the benchmarks and the lab. Own data directory, free loopback ports, waits
 * until etcd reports healthy, stops cleanly.
 *
 * Never leaks the process: etcd runs under a tiny shell guard that holds a
 * pipe from us on its stdin. When we exit in any way, kill -9 included, the
 * pipe closes, the guard's `read` returns and it terminates etcd. stop() uses
 * the same path (close the pipe), then escalates to SIGKILL if etcd lingers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { silentLogger, sleep, type Logger } from '@weft/common';
import { EtcdStartError } from './errors.js';

export interface EtcdProcessOptions {
  /** Member name. Default "weft-etcd". */
  name?: string;
  /** Data directory; a fresh temporary one (removed on stop) when omitted. */
  dataDir?: string;
  /** Host to listen on. Default 127.0.0.1 (a lab passes a namespace address). */
  host?: string;
  /** Client port; a free one when omitted. */
  clientPort?: number;
  peerPort?: number;
  /** etcd binary. Default: $WEFT_ETCD_BIN or "etcd" on PATH. */
  binary?: string;
  /** Extra command-line flags. */
  extraArgs?: string[];
  /** How long to wait for health. Default 20000 ms. */
  startTimeoutMs?: number;
  /** Prefix the command (e.g. ["ip", "netns", "exec", "ns"]). */
  wrap?: string[];
  /**
   * Also serve clients on a unix socket `<dir>/etcd:0` (reachable from every
   * network namespace; health is then probed through it). etcd wants host:port
   * in unix URLs and creates the socket relative to its working directory.
   */
  unixSocketDir?: string;
  /**
   * Serve clients over TLS and admit only clients with a certificate of `caFile` (etcd's
   * --client-cert-auth: with auth enabled, the certificate's CN is the user). PEM file paths.
   * Health is probed with the server's own certificate as the client's (it carries clientAuth).
   */
  tls?: { caFile: string; certFile: string; keyFile: string };
  logger?: Logger;
}

/** A port that was free a moment ago on `host`. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

// The guard: start etcd, wait for our pipe to close or for a signal, stop etcd.
const GUARD =
  'exec 3<&0; etcd_pid=; trap \'kill -TERM $etcd_pid 2>/dev/null\' TERM INT; "$@" 3<&- & etcd_pid=$!; ' +
  '(read -r _ <&3; kill -TERM $etcd_pid 2>/dev/null) & reader=$!; exec 3<&-; ' +
  'wait $etcd_pid; code=$?; wait $etcd_pid 2>/dev/null; kill $reader 2>/dev/null; exit $code';

export class EtcdProcess {
  readonly name: string;
  readonly host: string;
  readonly dataDir: string;
  private readonly ownsDataDir: boolean;
  private clientPort = 0;
  private peerPort = 0;
  private child: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;
  private readonly log: Logger;
  private stderrTail = '';
  private probeTls: EtcdClientTls | undefined;

  constructor(private readonly options: EtcdProcessOptions = {}) {
    this.name = options.name ?? 'weft-etcd';
    this.host = options.host ?? '127.0.0.1';
    this.ownsDataDir = options.dataDir === undefined;
    this.dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'weft-etcd-'));
    this.log = (options.logger ?? silentLogger()).child({ etcd: this.name });
  }

  /** Starts a server and waits until it is healthy. */
  static async start(options: EtcdProcessOptions = {}): Promise<EtcdProcess> {
    const etcd = new EtcdProcess(options);
    await etcd.start();
    return etcd;
  }

  get clientUrl(): string {
    return `${this.options.tls ? 'https' : 'http'}://${this.host}:${this.clientPort}`;
  }

  /** host:port, the form KvClient takes. */
  get endpoint(): string {
    return `${this.host}:${this.clientPort}`;
  }

  /** The unix socket endpoint, when `unixSocketDir` was given. */
  get unixEndpoint(): string | undefined {
    // gRPC names a unix socket unix:// whether or not TLS runs over it (etcd itself says unixs://).
    return this.options.unixSocketDir ? `unix://${this.options.unixSocketDir}/etcd:0` : undefined;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts (or restarts after stop()) on the same ports and data. */
  async start(): Promise<void> {
    if (this.running) return;
    const bin = this.options.binary ?? process.env.WEFT_ETCD_BIN ?? 'etcd';
    mkdirSync(this.dataDir, { recursive: true });
    let lastError: unknown;
    // A port found free can be taken before etcd binds it; try fresh ports a few times.
    for (let attempt = 0; attempt < 3; attempt++) {
      const explicit = this.clientPort !== 0 || this.options.clientPort !== undefined;
      if (!explicit || attempt > 0) {
        this.clientPort = this.options.clientPort ?? (await freePort(this.host));
        this.peerPort = this.options.peerPort ?? (await freePort(this.host));
      }
      try {
        await this.spawnAndWait(bin);
        return;
      } catch (err) {
        lastError = err;
        await this.stop({ keepData: true });
        if (this.options.clientPort !== undefined || !/address already in use/.test(this.stderrTail)) break;
      }
    }
    // A server that never started leaves nothing behind; a restart keeps its data.
    if (this.ownsDataDir && !existsSync(join(this.dataDir, 'member'))) rmSync(this.dataDir, { recursive: true, force: true });
    throw lastError;
  }

  private async spawnAndWait(bin: string): Promise<void> {
    const peerUrl = `http://${this.host}:${this.peerPort}`;
    const tls = this.options.tls;
    const args = [
      bin,
      '--name', this.name,
      '--data-dir', this.dataDir,
      '--listen-client-urls', this.options.unixSocketDir ? `${this.clientUrl},${tls ? 'unixs' : 'unix'}://etcd:0` : this.clientUrl,
      // bcrypt-cost 4: users' passwords are random and unused (certificates are the credential, auth.ts).
      ...(tls ? ['--cert-file', tls.certFile, '--key-file', tls.keyFile, '--trusted-ca-file', tls.caFile, '--client-cert-auth', '--bcrypt-cost', '4'] : []),
      '--advertise-client-urls', this.clientUrl,
      '--listen-peer-urls', peerUrl,
      '--initial-advertise-peer-urls', peerUrl,
      '--initial-cluster', `${this.name}=${peerUrl}`,
      '--initial-cluster-state', existsSync(join(this.dataDir, 'member')) ? 'existing' : 'new',
      '--logger', 'zap',
      '--log-level', 'warn',
      ...(this.options.extraArgs ?? []),
    ];
    const command = [...(this.options.wrap ?? []), 'sh', '-c', GUARD, 'etcd-guard', ...args];
    this.stderrTail = '';
    if (this.options.unixSocketDir) mkdirSync(this.options.unixSocketDir, { recursive: true });
    const child = spawn(command[0]!, command.slice(1), { stdio: ['pipe', 'ignore', 'pipe'], ...(this.options.unixSocketDir ? { cwd: this.options.unixSocketDir } : {}) });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    child.on('error', (err) => {
      this.stderrTail += `\n${err.message}`;
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-4000);
    });
    // Our end of the guard's pipe must not keep this process alive.
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    child.unref();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
    this.log.info({ endpoint: this.endpoint, dataDir: this.dataDir }, 'starting etcd');

    const deadline = Date.now() + (this.options.startTimeoutMs ?? 20_000);
    while (Date.now() < deadline) {
      if (!this.running) {
        throw new EtcdStartError(`Cannot start etcd "${this.name}": it exited with code ${child.exitCode ?? child.signalCode}: ${lastLines(this.stderrTail)}`);
      }
      if (await this.healthy()) {
        this.log.info({ endpoint: this.endpoint, pid: child.pid }, 'etcd is healthy');
        return;
      }
      await sleep(50);
    }
    throw new EtcdStartError(`Cannot start etcd "${this.name}": not healthy within ${this.options.startTimeoutMs ?? 20_000} ms: ${lastLines(this.stderrTail)}`);
  }

  /** One health probe against etcd's /health endpoint. */
  healthy(): Promise<boolean> {
    const tls = this.options.tls;
    if (tls && !this.probeTls) this.probeTls = { ca: readFileSync(tls.caFile), cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) };
    return etcdHealthy(this.options.unixSocketDir ? { socketPath: `${this.options.unixSocketDir}/etcd:0` } : { host: this.host, port: this.clientPort }, this.probeTls);
  }

  /**
   * Stops etcd: closes the guard's pipe (SIGTERM to etcd), escalates to SIGKILL
   * after `graceMs`. Removes the data directory it created unless `keepData`.
   */
  async stop(options: { keepData?: boolean; graceMs?: number } = {}): Promise<void> {
    const child = this.child;
    if (child && this.running) {
      child.stdin?.end();
      child.kill('SIGTERM');
      const timer = setTimeout(() => void this.kill(), options.graceMs ?? 5000);
      await this.exited;
      clearTimeout(timer);
    }
    this.child = undefined;
    if (!options.keepData && this.ownsDataDir) rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** Kills etcd outright (a crash, for fault tests); data is kept for a restart. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    // Kill etcd itself first so it cannot shut down gracefully, then the guard.
    await new Promise<void>((resolve) => {
      const pk = spawn('pkill', ['-KILL', '-P', String(child.pid)], { stdio: 'ignore' });
      pk.on('exit', () => resolve());
      pk.on('error', () => resolve());
    });
    child.kill('SIGKILL');
    await this.exited;
    this.child = undefined;
  }
}

/** The lines of etcd's output that say what went wrong (its usage text would bury them). */
/** A client's TLS material, PEM. */
export interface EtcdClientTls {
  ca: Buffer | string;
  cert: Buffer | string;
  key: Buffer | string;
}

/**
 * One probe of an etcd's /health endpoint, over TCP or its unix socket; over TLS with `tls` (a
 * client certificate, since etcd then wants one; the server is verified as `localhost` on a unix
 * socket, as gRPC does).
 */
export function etcdHealthy(target: { host: string; port: number } | { socketPath: string }, tls?: EtcdClientTls): Promise<boolean> {
  return new Promise((resolve) => {
    const options = { ...target, path: '/health', timeout: 1000 };
    const onResponse = (res: import('node:http').IncomingMessage): void => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(res.statusCode === 200 && body.includes('"health":"true"')));
    };
    const req = tls
      ? httpsRequest({ ...options, ca: tls.ca, cert: tls.cert, key: tls.key, ...('socketPath' in target ? { servername: 'localhost' } : {}) }, onResponse)
      : request(options, onResponse);
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

function lastLines(text: string): string {
  const lines = text.trim().split('\n').filter((l) => l.trim() !== '');
  const errors = lines.filter((l) => /error|fatal|panic|flag provided|invalid|cannot|failed|in use/i.test(l));
  return (errors.length > 0 ? errors.slice(0, 3) : lines.slice(-5)).join(' | ') || '(no output)';
}
