/** The PEM files of a mutual-TLS etcd connection, as the agent's and the apiserver's configs name them. */
import { readFileSync } from 'node:fs';

/** Paths of the CA, client certificate and key. */
export interface EtcdTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

/**
 * Reads the three files for KvClient's `tls`. `fail(field, reason)` builds the caller's typed error
 * (its config's error class, naming etcdTls.<field>). Read once, at start: a renewed certificate
 * takes effect when the process restarts.
 */
export function readEtcdTlsFiles(files: EtcdTlsFiles, fail: (field: keyof EtcdTlsFiles, reason: string) => Error): { ca: Buffer; cert: Buffer; key: Buffer } {
  const read = (k: keyof EtcdTlsFiles): Buffer => {
    try {
      return readFileSync(files[k]);
    } catch (err) {
      throw fail(k, `cannot read ${JSON.stringify(files[k])}: ${(err as Error).message}`);
    }
  };
  return { ca: read('ca'), cert: read('cert'), key: read('key') };
}
