/**
 * Certificates for the mesh, made with Debian's openssl (Node cannot issue
 * X.509 certificates): a CA per cluster, a server certificate for its
 * clustermesh-apiserver, and one client certificate per remote, signed by our
 * CA with CN = the remote's cluster name. ECDSA P-256.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeshCertError } from './errors.js';

export interface Pem {
  cert: string;
  key: string;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    throw new MeshCertError(`openssl ${args[0]} failed: ${(err as { stderr?: Buffer }).stderr?.toString().trim() ?? (err as Error).message}`, { cause: err });
  }
}

function inTemp<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'weft-certs-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function createCa(cluster: string, days = 3650): Pem {
  return inTemp((dir) => {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', String(days), '-subj', `/CN=weft-${cluster}-ca`], dir);
    return { cert: readFileSync(join(dir, 'ca.crt'), 'utf8'), key: readFileSync(join(dir, 'ca.key'), 'utf8') };
  });
}

/** A certificate signed by `ca`; `ips` become IP subject alternative names (server certificates). */
export function issue(ca: Pem, cn: string, options: { ips?: string[]; days?: number } = {}): Pem {
  return inTemp((dir) => {
    writeFileSync(join(dir, 'ca.crt'), ca.cert);
    writeFileSync(join(dir, 'ca.key'), ca.key, { mode: 0o600 });
    const ext = options.ips?.length ? `subjectAltName=${options.ips.map((ip) => `IP:${ip}`).join(',')}\n` : 'basicConstraints=CA:FALSE\n';
    writeFileSync(join(dir, 'ext.cnf'), ext);
    openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'c.key', '-out', 'c.csr', '-subj', `/CN=${cn}`], dir);
    openssl(['x509', '-req', '-in', 'c.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'c.crt', '-days', String(options.days ?? 365), '-extfile', 'ext.cnf'], dir);
    return { cert: readFileSync(join(dir, 'c.crt'), 'utf8'), key: readFileSync(join(dir, 'c.key'), 'utf8') };
  });
}
