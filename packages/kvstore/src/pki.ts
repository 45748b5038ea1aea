/**
 * Certificates for Weft's mutual TLS (etcd clients, the etcd server, the clustermesh), issued in
 * process with @peculiar/x509 on Node's WebCrypto: no `openssl` child process, and a CA key never
 * written anywhere (`weft clustermesh connect` signs with a CA key read from a Secret, on a user's
 * laptop). Why this library: docs/credentials.md, "Certificates".
 *
 * Shapes (what tests and the chart rely on):
 *  - CA: CN as given, basicConstraints CA:true (critical), keyUsage keyCertSign + cRLSign, SKID.
 *  - leaf: CN as given, IP and DNS subject alternative names as given, basicConstraints CA:false,
 *    keyUsage digitalSignature, extendedKeyUsage serverAuth + clientAuth (as helm's
 *    genSignedCert, so a leaf from the chart and one from here are used the same way), SKID, AKID.
 * New keys are ECDSA P-256. A CA key may be ECDSA (P-256, P-384) or RSA, in PKCS#8, SEC1 or PKCS#1
 * PEM: the chart's CAs come from helm's genPrivateKey (SEC1) and users bring their own.
 */
import { createPrivateKey, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import type * as X509 from '@peculiar/x509';
import { CertificateError } from './errors.js';

type CryptoKey = webcrypto.CryptoKey;
type Algorithm = webcrypto.Algorithm;
type EcdsaParams = webcrypto.EcdsaParams;

/**
 * @peculiar/x509 (with the reflect-metadata polyfill it needs), loaded on first use: it takes
 * ~100 ms to load, which every process importing @weft/kvstore (each agent, each
 * clustermesh-apiserver, each CLI call) would otherwise pay at start without issuing anything.
 */
let x509Lib: typeof X509 | undefined;
function lib(): typeof X509 {
  if (!x509Lib) {
    require('reflect-metadata');
    x509Lib = require('@peculiar/x509') as typeof X509;
    x509Lib.cryptoProvider.set(webcrypto);
  }
  return x509Lib;
}
const subtle = webcrypto.subtle;

/** A certificate and its private key, PEM (PKCS#8 for keys this module makes). */
export interface Pem {
  cert: string;
  key: string;
}

export interface IssueOptions {
  /** IP subject alternative names (server certificates). */
  ips?: string[];
  /** DNS subject alternative names (server certificates). */
  dnsNames?: string[];
  /**
   * Organizations (O) of the subject. Kubernetes reads them as the user's groups
   * (`system:masters`, `system:nodes`).
   */
  organizations?: string[];
  /** Validity in days. Default 365. */
  days?: number;
  /** Start of validity (tests make expired certificates with it). Default: now, less a few minutes for clock skew. */
  notBefore?: Date;
}

const EC: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const DAY_MS = 86_400_000;
/** Clocks of issuer and verifier differ: a certificate is valid from a little before it was made. */
const BACKDATE_MS = 5 * 60_000;
/** X.509 CN and DNS names: printable, no separators that could smuggle another RDN or name. */
const NAME_RE = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$/;

/** Kubernetes user and group names in a subject also take ':' (`system:node:n1`, `system:nodes`). */
const SUBJECT_RE = /^[A-Za-z0-9]([A-Za-z0-9._:-]{0,62}[A-Za-z0-9])?$/;

function checkSubject(what: string, value: string): void {
  if (!SUBJECT_RE.test(value)) throw new CertificateError(`${what} ${JSON.stringify(value)} must be 1-64 letters, digits, '.', '_', ':' or '-'`);
}

function checkName(what: string, value: string): void {
  if (!NAME_RE.test(value)) throw new CertificateError(`${what} ${JSON.stringify(value)} must be 1-64 letters, digits, '.', '_' or '-'`);
}

function checkDays(days: number): void {
  if (!Number.isInteger(days) || days < 1 || days > 36_500) throw new CertificateError(`validity ${JSON.stringify(days)} must be a whole number of days, 1-36500`);
}

function toPem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function serial(): string {
  const b = randomBytes(16);
  b[0]! &= 0x7f; // positive
  b[0]! |= 0x01; // no leading zero byte to strip
  return b.toString('hex');
}

function validity(days: number, notBefore?: Date): { notBefore: Date; notAfter: Date } {
  const start = notBefore?.getTime() ?? Date.now() - BACKDATE_MS;
  return { notBefore: new Date(start), notAfter: new Date(start + days * DAY_MS) };
}

/** The WebCrypto form of a PEM private key of any common encoding, with the algorithm to sign with. */
async function importSigningKey(pem: string): Promise<{ key: CryptoKey; algorithm: Algorithm | EcdsaParams }> {
  let obj: KeyObject;
  try {
    obj = createPrivateKey(pem);
  } catch (err) {
    throw new CertificateError(`the CA key is not a PEM private key: ${(err as Error).message}`, { cause: err });
  }
  const pkcs8 = obj.export({ type: 'pkcs8', format: 'der' });
  if (obj.asymmetricKeyType === 'ec') {
    const curve = obj.asymmetricKeyDetails?.namedCurve;
    const named = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : undefined;
    if (!named) throw new CertificateError(`the CA key's curve ${JSON.stringify(curve)} is not supported (P-256, P-384)`);
    const key = await subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: named }, false, ['sign']);
    return { key, algorithm: { name: 'ECDSA', hash: named === 'P-256' ? 'SHA-256' : 'SHA-384' } as EcdsaParams };
  }
  if (obj.asymmetricKeyType === 'rsa') {
    const key = await subtle.importKey('pkcs8', pkcs8, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign']);
    return { key, algorithm: { name: 'RSASSA-PKCS1-v1_5' } };
  }
  throw new CertificateError(`the CA key's type ${JSON.stringify(obj.asymmetricKeyType)} is not supported (ECDSA, RSA)`);
}

function parseCert(pem: string, what: string): X509.X509Certificate {
  const x509 = lib();
  try {
    return new x509.X509Certificate(pem);
  } catch (err) {
    throw new CertificateError(`${what} is not a PEM certificate: ${(err as Error).message}`, { cause: err });
  }
}

/** A new self-signed CA, CN `weft-<name>-ca`, valid `days` (default 3650). */
export async function createCa(name: string, days = 3650): Promise<Pem> {
  const x509 = lib();
  checkName('CA name', name);
  checkDays(days);
  const keys = await subtle.generateKey(EC, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: [{ CN: [`weft-${name}-ca`] }],
    ...validity(days),
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: toPem(await subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY') };
}

/** Signs a leaf certificate for `publicKey` with `ca` (CA certificate and key, PEM). */
async function sign(ca: Pem, cn: string, publicKey: CryptoKey | X509.PublicKey, options: IssueOptions): Promise<string> {
  const x509 = lib();
  checkSubject('common name', cn);
  for (const o of options.organizations ?? []) checkSubject('organization', o);
  const days = options.days ?? 365;
  checkDays(days);
  const names: X509.JsonGeneralName[] = [];
  for (const ip of options.ips ?? []) {
    if (isIP(ip) === 0) throw new CertificateError(`IP address ${JSON.stringify(ip)} of the certificate for ${cn} is not an IP address`);
    names.push({ type: 'ip', value: ip });
  }
  for (const dns of options.dnsNames ?? []) {
    checkName('DNS name', dns);
    names.push({ type: 'dns', value: dns });
  }
  const caCert = parseCert(ca.cert, 'the CA certificate');
  if (!caCert.getExtension(x509.BasicConstraintsExtension)?.ca) throw new CertificateError(`the CA certificate ${caCert.subject} is not a CA (basicConstraints CA:true)`);
  const signer = await importSigningKey(ca.key);
  const caSkid = caCert.getExtension(x509.SubjectKeyIdentifierExtension);
  const akid = caSkid ? new x509.AuthorityKeyIdentifierExtension(caSkid.keyId) : await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: [...(options.organizations ?? []).map((o) => ({ O: [o] })), { CN: [cn] }],
    issuer: caCert.subjectName,
    ...validity(days, options.notBefore),
    publicKey,
    signingKey: signer.key,
    signingAlgorithm: signer.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : []),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      akid,
    ],
  });
  // A key that does not belong to the CA certificate would make a certificate nobody can verify.
  if (!(await cert.verify({ publicKey: caCert.publicKey, signatureOnly: true }))) throw new CertificateError(`the CA key does not belong to the CA certificate ${caCert.subject}`);
  return cert.toString('pem') + '\n';
}

/** A new key pair and a certificate for it, CN = `cn`, signed by `ca`. */
export async function issue(ca: Pem, cn: string, options: IssueOptions = {}): Promise<Pem> {
  const keys = await subtle.generateKey(EC, true, ['sign', 'verify']);
  const cert = await sign(ca, cn, keys.publicKey, options);
  return { cert, key: toPem(await subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY') };
}

/**
 * A new key pair and a certificate signing request for it (PKCS#10, PEM): the requester keeps
 * the key, the issuer sees only the request. The requested CN is a hint; the issuer decides.
 */
export async function createCsr(cn: string): Promise<{ csr: string; key: string }> {
  const x509 = lib();
  checkName('common name', cn);
  const keys = await subtle.generateKey(EC, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: [{ CN: [cn] }], keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams });
  return { csr: csr.toString('pem') + '\n', key: toPem(await subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY') };
}

/**
 * A certificate for the key of a signing request, with CN = `cn` chosen by the issuer: the
 * request's own subject and extensions are ignored, only its key is used, and only after its
 * signature proves the requester holds that key. Refuses anything but an ECDSA P-256 key.
 */
export async function issueFromCsr(ca: Pem, csrPem: string, cn: string, options: IssueOptions = {}): Promise<string> {
  const x509 = lib();
  let csr: X509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw new CertificateError(`the signing request is not a PEM PKCS#10 request: ${(err as Error).message}`, { cause: err });
  }
  const alg = csr.publicKey.algorithm as webcrypto.EcKeyAlgorithm;
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') throw new CertificateError(`the signing request's key is ${alg.name} ${alg.namedCurve ?? ''}; only ECDSA P-256 is issued`.replace(/ +;/, ';'));
  if (!(await csr.verify())) throw new CertificateError('the signing request\'s signature does not verify: the requester does not hold its key');
  return sign(ca, cn, csr.publicKey, options);
}
