import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { CertificateError } from './errors.js';
import { createCa, createCsr, issue, issueFromCsr, type Pem } from './pki.js';

/**
 * A real mutual-TLS handshake on loopback: the server wants a client certificate of `ca`. Says
 * which client CN the server accepted, or why the server refused the client.
 */
async function handshake(ca: string, server: Pem, client: Pem, servername = 'localhost'): Promise<{ accepted?: string; refused?: string }> {
  const srv = createServer({ ca, cert: server.cert, key: server.key, requestCert: true, rejectUnauthorized: true }, (s: TLSSocket) => {
    s.end(String((s.getPeerCertificate() as { subject?: { CN?: string } }).subject?.CN));
  });
  const refused = new Promise<string>((resolve) => srv.once('tlsClientError', (e: Error) => resolve(e.message)));
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  try {
    const sock = connect({ host: '127.0.0.1', port: (srv.address() as AddressInfo).port, ca, cert: client.cert, key: client.key, servername });
    let out = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (out += d));
    const closed = new Promise<void>((resolve) => {
      sock.once('close', () => resolve());
      sock.once('error', () => resolve());
    });
    const result = await Promise.race([closed.then(() => (out ? { accepted: out } : undefined)), refused.then((r) => ({ refused: r }))]);
    return result ?? { refused: await refused };
  } finally {
    srv.close();
  }
}

describe('pki (x509 on WebCrypto)', () => {
  let ca: Pem;
  before(async () => {
    ca = await createCa('east', 30);
  });

  it('makes a CA that Node parses as one, with an ECDSA P-256 key that matches it', () => {
    const c = new X509Certificate(ca.cert);
    assert.equal(c.subject, 'CN=weft-east-ca');
    assert.equal(c.ca, true);
    assert.equal(c.verify(c.publicKey), true, 'self-signed');
    assert.equal(c.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(c.checkPrivateKey(createPrivateKey(ca.key)), true);
    assert.match(ca.key, /^-----BEGIN PRIVATE KEY-----\n/);
  });

  it('issues leaves with the CN and SANs asked for, verified by the CA, never CAs themselves', async () => {
    const server = await issue(ca, 'clustermesh-east', { ips: ['10.99.1.2'], dnsNames: ['localhost'], days: 10 });
    const c = new X509Certificate(server.cert);
    assert.equal(c.subject, 'CN=clustermesh-east');
    assert.equal(c.subjectAltName, 'IP Address:10.99.1.2, DNS:localhost');
    assert.equal(c.ca, false);
    assert.equal(c.verify(new X509Certificate(ca.cert).publicKey), true);
    assert.equal(c.checkIssued(new X509Certificate(ca.cert)), true);
    assert.deepEqual(c.keyUsage?.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    assert.equal(c.checkPrivateKey(createPrivateKey(server.key)), true);
    const days = (Date.parse(c.validTo) - Date.now()) / 86_400_000;
    assert.ok(days > 9.9 && days <= 10, `valid ~10 days, got ${days}`);
  });

  it('passes a real mutual-TLS handshake, and a client of another CA is refused', async () => {
    const server = await issue(ca, 'weft-etcd', { ips: ['127.0.0.1'], dnsNames: ['localhost'] });
    assert.deepEqual(await handshake(ca.cert, server, await issue(ca, 'node-a')), { accepted: 'node-a' });
    const rogue = await createCa('rogue', 30);
    const refused = await handshake(ca.cert, server, await issue(rogue, 'node-a'));
    // OpenSSL aborts the handshake; Node's server reports that as a reset, never as a connection.
    assert.equal(refused.accepted, undefined);
    assert.ok(refused.refused, 'the server refused the client');
  });

  it('signs with the CA keys helm and openssl make: SEC1 ECDSA and PKCS#1 RSA', async () => {
    for (const [type, opts] of [['ec', { namedCurve: 'P-256', privateKeyEncoding: { type: 'sec1', format: 'pem' } }], ['rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' } }]] as const) {
      const pair = generateKeyPairSync(type as 'ec', { ...(opts as object), publicKeyEncoding: { type: 'spki', format: 'pem' } } as never) as unknown as { privateKey: string };
      // A CA certificate for that key, itself made through this module's signing path.
      const self = await selfSigned(pair.privateKey);
      const leaf = await issue({ cert: self, key: pair.privateKey }, 'west');
      assert.equal(new X509Certificate(leaf.cert).verify(new X509Certificate(self).publicKey), true, `${type} CA`);
    }
  });

  it('refuses a CA key that is not the CA certificate\'s, bad names and bad addresses, naming them', async () => {
    const other = await createCa('other', 30);
    await assert.rejects(issue({ cert: ca.cert, key: other.key }, 'x'), (e: Error) => e instanceof CertificateError && /CA key does not belong to the CA certificate CN=weft-east-ca/.test(e.message));
    await assert.rejects(issue(ca, 'a/b'), /common name "a\/b" must be/);
    await assert.rejects(issue(ca, 'n\nCN=admin'), /common name "n\\nCN=admin" must be/);
    await assert.rejects(issue(ca, 'x', { ips: ['10.0.0.300'] }), /IP address "10.0.0.300" of the certificate for x is not an IP address/);
    await assert.rejects(issue(ca, 'x', { days: 0 }), /validity 0 must be/);
    await assert.rejects(issue({ cert: (await issue(ca, 'leaf')).cert, key: ca.key }, 'x'), /is not a CA/);
    await assert.rejects(issue({ cert: ca.cert, key: 'nope' }, 'x'), /the CA key is not a PEM private key/);
    await assert.rejects(issue(ca, 'x', { organizations: ['a\nO=system:masters'] }), /organization "a\\nO=system:masters" must be/);
  });

  it('puts Kubernetes users and groups in the subject: CN with colons, one O per group', async () => {
    const leaf = new X509Certificate((await issue(ca, 'system:node:n1', { organizations: ['system:nodes', 'weft'] })).cert);
    assert.equal(leaf.subject, 'O=system:nodes\nO=weft\nCN=system:node:n1');
  });

  it('issues from a signing request with the issuer\'s CN, and refuses a forged request', async () => {
    const { csr, key } = await createCsr('node-a');
    const cert = await issueFromCsr(ca, csr, 'node-b');
    const c = new X509Certificate(cert);
    assert.equal(c.subject, 'CN=node-b', 'the issuer decides the name, not the requester');
    assert.equal(c.checkPrivateKey(createPrivateKey(key)), true, 'the certificate is for the requester\'s key');
    // A request whose signature does not verify (one byte of the signature flipped).
    const der = Buffer.from(csr.replace(/-----[^-]+-----/g, '').replace(/\s/g, ''), 'base64');
    der[der.length - 3]! ^= 0xff;
    const forged = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    await assert.rejects(issueFromCsr(ca, forged, 'node-a'), (e: Error) => e instanceof CertificateError && /signature does not verify|not a PEM PKCS#10/.test(e.message));
    await assert.rejects(issueFromCsr(ca, 'garbage', 'node-a'), /not a PEM PKCS#10 request/);
  });
});

/** A self-signed CA certificate for an existing key (as helm's genCAWithKey makes), through @peculiar/x509. */
async function selfSigned(keyPem: string): Promise<string> {
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  const { webcrypto } = await import('node:crypto');
  const obj = createPrivateKey(keyPem);
  const rsa = obj.asymmetricKeyType === 'rsa';
  const alg = rsa ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } : { name: 'ECDSA', namedCurve: 'P-256' };
  const priv = await webcrypto.subtle.importKey('pkcs8', obj.export({ type: 'pkcs8', format: 'der' }), alg, false, ['sign']);
  const { createPublicKey } = await import('node:crypto');
  const pub = await webcrypto.subtle.importKey('spki', createPublicKey(obj).export({ type: 'spki', format: 'der' }), alg, true, ['verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=helm-ca',
    keys: { privateKey: priv, publicKey: pub },
    signingAlgorithm: rsa ? { name: 'RSASSA-PKCS1-v1_5' } : { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
  });
  return cert.toString('pem');
}
