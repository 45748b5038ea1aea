/**
 * The requesting side of the etcd credential issuer (packages/clustermesh/src/etcd-issuer.ts):
 * a new key pair that never leaves this process until the caller stores it, a signing request,
 * one HTTPS POST with a ServiceAccount token, and checks of what comes back (the certificate is
 * for our key, names our node, and chains to the CA we trust) before anyone uses it.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { request } from 'node:https';
import { CertificateError } from './errors.js';
import { createCsr } from './pki.js';

export interface CredentialRequest {
  /** The issuer, e.g. https://10.96.0.20:9382/v1/etcd-credentials. */
  url: string;
  /** The CA the issuer's server certificate and the issued certificate come from (PEM). */
  ca: string;
  /** A ServiceAccount token for audience weft-etcd-issuer. */
  token: string;
  /** This node: the certificate must name it. */
  node: string;
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface IssuedNodeCredential {
  cert: string;
  key: string;
  ca: string;
}

export async function requestEtcdCredential(r: CredentialRequest): Promise<IssuedNodeCredential> {
  const { csr, key } = await createCsr(r.node);
  const body = Buffer.from(JSON.stringify({ csr }));
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(r.url, {
      method: 'POST',
      ca: r.ca,
      headers: { authorization: `Bearer ${r.token}`, 'content-type': 'application/json', 'content-length': body.length },
      timeout: r.timeoutMs ?? 15_000,
      ...(r.signal ? { signal: r.signal } : {}),
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${r.timeoutMs ?? 15_000} ms`)));
    req.on('error', reject);
    req.end(body);
  }).catch((err: Error) => {
    throw new CertificateError(`the issuer at ${r.url} cannot be reached: ${err.message}`, { cause: err });
  });
  let answer: { cert?: unknown; ca?: unknown; message?: unknown };
  try {
    answer = JSON.parse(text) as typeof answer;
  } catch {
    throw new CertificateError(`the issuer at ${r.url} answered ${status} with no JSON`);
  }
  if (status !== 200) throw new CertificateError(`the issuer at ${r.url} refused (${status}): ${String(answer.message ?? text)}`);
  if (typeof answer.cert !== 'string') throw new CertificateError(`the issuer at ${r.url} answered without a certificate`);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(answer.cert);
  } catch (err) {
    throw new CertificateError(`the issuer at ${r.url} answered with a certificate that does not parse: ${(err as Error).message}`, { cause: err });
  }
  if (!cert.checkPrivateKey(createPrivateKey(key))) throw new CertificateError(`the issuer at ${r.url} answered with a certificate for another key`);
  if (cert.subject !== `CN=${r.node}`) throw new CertificateError(`the issuer at ${r.url} answered with a certificate for ${cert.subject}, not CN=${r.node}`);
  if (!cert.verify(new X509Certificate(r.ca).publicKey)) throw new CertificateError(`the issuer at ${r.url} answered with a certificate the trusted CA did not sign`);
  return { cert: answer.cert, key, ca: r.ca };
}
