import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@weft/common';
import { CertificateError, EtcdAuth, EtcdProcess, KvClient, KvstorePermissionError, createCa, issue, requestEtcdCredential, type Pem } from '@weft/kvstore';
import { KubeClient } from '@weft/kubernetes';
import { ReplayServer, writeKubeconfig, type RecordedExchange } from '@weft/kubernetes/testing';
import { ensureEtcdCredential, validateAgentConfig } from '@weft/agent';
import { EtcdCredentialIssuer, EtcdIssuerServer, ISSUER_PATH } from './etcd-issuer.js';
import { applyClusterRoles } from './etcd-roles.js';

const REVIEW = 'POST /apis/authentication.k8s.io/v1/tokenreviews';
const AGENT = 'system:serviceaccount:kube-system:weft-agent';

/**
 * The API server's answer to a TokenReview (authentication.k8s.io/v1), as it writes it: compared
 * with what kube-apiserver v1.37.2 answers (test/chart.kube.test.js runs the issuer against one), the
 * recorded answers had `"creationTimestamp": null` in metadata and `authenticated: false` on a
 * refusal; the real server sends neither (it omits false and sends `user: {}` with the error).
 */
function review(status: Record<string, unknown>): RecordedExchange {
  return { request: REVIEW, response: { status: 201, body: { kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', metadata: {}, spec: { audiences: ['weft-etcd-issuer'] }, status } } };
}
const user = (username: string, node?: string) => ({
  username,
  uid: 'u-1',
  groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
  extra: {
    'authentication.kubernetes.io/credential-id': ['JTI=1'],
    'authentication.kubernetes.io/pod-name': ['weft-agent-abcde'],
    'authentication.kubernetes.io/pod-uid': ['p-1'],
    ...(node ? { 'authentication.kubernetes.io/node-name': [node], 'authentication.kubernetes.io/node-uid': ['n-1'] } : {}),
  },
});

/**
 * The issuer between a real etcd (TLS, client-cert auth, RBAC) and the API server's TokenReview
 * (replayed): the agent's side posts a signing request with its token and gets a certificate for
 * its node only, that etcd then holds to that node's keys.
 */
describe('etcd credential issuer (TokenReview replayed, real etcd) @etcd', function () {
  this.timeout(60_000);
  let dir: string;
  let etcd: EtcdProcess;
  let ca: Pem;
  let root: KvClient;
  let api: ReplayServer;
  let server: EtcdIssuerServer;
  let url: string;
  const clients: KvClient[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-issuer-'));
    ca = await createCa('c1-etcd', 2);
    const etcdCert = await issue(ca, 'weft-etcd', { ips: ['127.0.0.1'], dnsNames: ['localhost'], days: 2 });
    writeFileSync(join(dir, 'ca.crt'), ca.cert);
    writeFileSync(join(dir, 'server.crt'), etcdCert.cert);
    writeFileSync(join(dir, 'server.key'), etcdCert.key, { mode: 0o600 });
    etcd = await EtcdProcess.start({ name: 'issuer', tls: { caFile: join(dir, 'ca.crt'), certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key') } });
    const rootCert = await issue(ca, 'root');
    root = new KvClient({ endpoints: [etcd.endpoint], tls: { ca: Buffer.from(ca.cert), cert: Buffer.from(rootCert.cert), key: Buffer.from(rootCert.key) } });
    await applyClusterRoles(new EtcdAuth(root));
    api = await new ReplayServer({
      exchanges: [
        review({ authenticated: true, audiences: ['weft-etcd-issuer'], user: user(AGENT, 'node-a') }),
        review({ authenticated: true, audiences: ['weft-etcd-issuer'], user: user(AGENT, 'node-a') }),
        review({ user: {}, error: '[invalid bearer token, service account token has expired]' }),
        review({ authenticated: true, audiences: ['weft-etcd-issuer'], user: user('system:serviceaccount:default:builder', 'node-a') }),
        review({ authenticated: true, audiences: ['weft-etcd-issuer'], user: user(AGENT) }),
        review({ authenticated: true, audiences: ['https://kubernetes.default.svc'], user: user(AGENT, 'node-a') }),
        review({ authenticated: true, audiences: ['weft-etcd-issuer'], user: user(AGENT, 'root') }),
        review({ authenticated: true, audiences: ['weft-etcd-issuer'], user: user(AGENT, 'node-c') }),
      ],
    }).start();
    const kube = await KubeClient.create({ kubeconfig: writeKubeconfig(join(dir, 'kubeconfig'), { test: api }) });
    const issuer = new EtcdCredentialIssuer({ kube, etcd: root, ca, agentServiceAccount: { namespace: 'kube-system', name: 'weft-agent' }, days: 7, logger: silentLogger() });
    server = new EtcdIssuerServer(issuer, await issue(ca, 'weft-etcd-issuer', { ips: ['127.0.0.1'] }));
    url = `https://127.0.0.1:${await server.listen(0, '127.0.0.1')}${ISSUER_PATH}`;
  });
  after(async () => {
    for (const c of clients) c.close();
    root?.close();
    await server?.close();
    await api?.close();
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives a node-bound agent token a certificate for its node, which etcd holds to that node\'s keys', async () => {
    const cred = await requestEtcdCredential({ url, ca: ca.cert, token: 'token-of-node-a', node: 'node-a' });
    const posted = JSON.parse(api.requests[0]!.body) as { spec: { token: string; audiences: string[] } };
    assert.deepEqual(posted.spec, { token: 'token-of-node-a', audiences: ['weft-etcd-issuer'] });
    const a = new KvClient({ endpoints: [etcd.endpoint], tls: { ca: Buffer.from(cred.ca), cert: Buffer.from(cred.cert), key: Buffer.from(cred.key) }, retry: { maxAttempts: 2, initialMs: 50, maxMs: 100 } });
    clients.push(a);
    await a.put('weft/state/v1/nodes/node-a', '{}');
    await a.put('weft/state/v1/endpoints/node-a/10.101.1.5', '{}');
    await assert.rejects(a.put('weft/state/v1/nodes/node-b', '{}'), KvstorePermissionError);
  });

  it('names the certificate after the token\'s node, whatever the requester asks for', async () => {
    // node-a's token, asking to be node-b: the certificate says node-a, and the requester refuses to use it as node-b's.
    await assert.rejects(requestEtcdCredential({ url, ca: ca.cert, token: 'token-of-node-a', node: 'node-b' }), (e: Error) => e instanceof CertificateError && /certificate for CN=node-a, not CN=node-b/.test(e.message));
  });

  it('refuses, with the reason, a token the API server rejects, of another ServiceAccount, bound to no node, for another audience, or of a reserved name', async () => {
    const refused = async (re: RegExp): Promise<void> => {
      await assert.rejects(requestEtcdCredential({ url, ca: ca.cert, token: 't', node: 'node-a' }), (e: Error) => e instanceof CertificateError && /refused \(403\)/.test(e.message) && re.test(e.message), String(re));
    };
    await refused(/did not authenticate the token: \[invalid bearer token, service account token has expired\]/);
    await refused(/of "system:serviceaccount:default:builder", not of the agents' ServiceAccount system:serviceaccount:kube-system:weft-agent/);
    await refused(/bound to no node: it must be a pod-bound token of one node/);
    await refused(/not for audience weft-etcd-issuer \(it is for https:\/\/kubernetes.default.svc\)/);
    await refused(/node name "root" is the etcd user of another component/);
    assert.deepEqual(api.mismatches, []);
    // Without a token nothing is even asked of the API server.
    const before = api.requests.length;
    await assert.rejects(requestEtcdCredential({ url, ca: ca.cert, token: '', node: 'node-a' }), /no bearer token/);
    assert.equal(api.requests.length, before);
  });

  it('the agent obtains its credential before opening etcd, writes it 0600 where etcdTls says, and asks again only when it ages', async () => {
    writeFileSync(join(dir, 'token'), 'token-of-node-c\n');
    const config = validateAgentConfig({
      cluster: 'c1', clusterId: 1, node: 'node-c', etcd: [etcd.endpoint], nodeIp: '10.99.1.13', podCidr: '10.101.3.0/24', bpfDir: '/nonexistent',
      etcdTls: { ca: join(dir, 'ca.crt'), cert: join(dir, 'node.crt'), key: join(dir, 'node.key') },
      etcdIssuer: { url, tokenFile: join(dir, 'token') },
    });
    const before = api.requests.length;
    await ensureEtcdCredential(config, silentLogger());
    assert.equal(api.requests.length, before + 1);
    assert.equal(JSON.parse(api.requests.at(-1)!.body).spec.token, 'token-of-node-c', 'the token file, trimmed');
    assert.equal(new X509Certificate(readFileSync(join(dir, 'node.crt'))).subject, 'CN=node-c');
    assert.equal(statSync(join(dir, 'node.key')).mode & 0o777, 0o600);
    const c = new KvClient({ endpoints: [etcd.endpoint], tls: { ca: readFileSync(join(dir, 'ca.crt')), cert: readFileSync(join(dir, 'node.crt')), key: readFileSync(join(dir, 'node.key')) } });
    clients.push(c);
    await c.put('weft/state/v1/nodes/node-c', '{}');
    // Fresh: nothing is asked again (a restart does not cost a TokenReview).
    await ensureEtcdCredential(config, silentLogger());
    assert.equal(api.requests.length, before + 1);
    assert.throws(() => validateAgentConfig({ cluster: 'c1', clusterId: 1, node: 'n', etcd: ['x:1'], nodeIp: '10.99.1.13', podCidr: '10.101.3.0/24', bpfDir: '/x', etcdIssuer: { url, tokenFile: '/t' } }), /etcdIssuer: needs etcdTls/);
    assert.throws(() => validateAgentConfig({ cluster: 'c1', clusterId: 1, node: 'n', etcd: ['x:1'], nodeIp: '10.99.1.13', podCidr: '10.101.3.0/24', bpfDir: '/x', etcdTls: { ca: 'a', cert: 'b', key: 'c' }, etcdIssuer: { url: 'http://x/y', tokenFile: '/t' } }), /etcdIssuer.url: "http:\/\/x\/y" must be an https:\/\/ URL/);
  });
});
