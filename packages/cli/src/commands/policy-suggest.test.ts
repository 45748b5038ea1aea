// `weft policy suggest` as a user runs it, against a real observer server on a unix socket holding
// flows: what it asks for, what it writes, and how it fails.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@weft/common';
import { LocalObserver, makeFlow, ObserverServer, type FlowEndpoint } from '@weft/observer';
import { parseYamlDocuments } from '@weft/resources';

const WEFT = join(__dirname, '..', '..', 'bin', 'weft.js');

function weft(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WEFT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const pod = (cluster: string, ns: string, name: string, app: string, ip: string, identity: number, port = 0): FlowEndpoint => ({
  ip,
  port,
  identity,
  namespace: ns,
  pod: name,
  labels: [`k8s:app=${app}`, `k8s:io.kubernetes.pod.namespace=${ns}`, `k8s:weft.io/cluster=${cluster}`],
  cluster,
});

describe('weft policy suggest', function () {
  this.timeout(30_000);
  let dir: string;
  let local: LocalObserver;
  let server: ObserverServer;
  let socket: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-suggest-'));
    socket = join(dir, 'observer.sock');
    local = new LocalObserver({ cluster: 'c1', node: 'c1-node1', capacity: 100, lostBpfEvents: async () => 0 });
    server = new ObserverServer({ backend: local, cluster: 'c1', node: 'c1-node1', socket, queueLimit: 100, log: silentLogger() });
    await server.start();
    const web = pod('c1', 'shop', 'web-1', 'web', '10.101.1.10', 65800, 40000);
    const api = pod('c1', 'shop', 'api-1', 'api', '10.101.1.20', 65801, 8080);
    const db = pod('c2', 'data', 'db-0', 'db', '10.102.1.30', 131328, 5432);
    local.add(makeFlow({ point: 'from-endpoint', source: web, destination: api }));
    local.add(makeFlow({ point: 'to-endpoint', trafficDirection: 'INGRESS', source: web, destination: api }));
    local.add(makeFlow({ point: 'from-endpoint', source: { ...api, port: 41000 }, destination: db }));
    // Not traffic to admit: a drop, and what another cluster's node saw (as a relay would pass it on).
    local.add(makeFlow({ verdict: 'DROPPED', dropReason: 'POLICY_DENIED', point: 'from-endpoint', source: web, destination: db }));
    local.add(makeFlow({ cluster: 'c2', node: 'c2-node1', point: 'to-endpoint', trafficDirection: 'INGRESS', source: { ...api, port: 41000 }, destination: db }));
  });

  after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes YAML that weft apply reads: a NetworkPolicy for web, a WeftNetworkPolicy for api (its peer is in c2)', async () => {
    const r = await weft(['policy', 'suggest', '--server', `unix://${socket}`, '--cluster', 'c1']);
    assert.equal(r.code, 0, r.stderr);
    const docs = parseYamlDocuments(r.stdout, 'out.yaml').map((d) => d.value as { kind: string; metadata: { name: string }; spec: Record<string, unknown> });
    assert.deepEqual(docs.map((d) => `${d.kind}/${d.metadata.name}`), ['WeftNetworkPolicy/weft-suggested-api', 'NetworkPolicy/weft-suggested-web']);
    assert.deepEqual(docs[0]!.spec.egress, [{ toEndpoints: [{ matchLabels: { app: 'db', 'io.kubernetes.pod.namespace': 'data', 'weft.io/cluster': 'c2' } }], toPorts: [{ ports: [{ port: '5432', protocol: 'TCP' }] }] }]);
    assert.match(r.stderr, /weft: 3 flows of c1, 3 connections of 2 workloads: 2 policies/, 'the verdict and cluster filters left the drop and c2\'s flow at the server');
    const again = await weft(['policy', 'suggest', '--server', `unix://${socket}`, '--cluster', 'c1']);
    assert.equal(again.stdout, r.stdout, 'the same flows, the same bytes');
  });

  it('writes a JSON List with -o json, only a namespace\'s workloads with --namespace, nothing for a window without flows', async () => {
    const json = await weft(['policy', 'suggest', '--server', `unix://${socket}`, '--cluster', 'c1', '--namespace', 'shop', '-o', 'json']);
    assert.equal(json.code, 0, json.stderr);
    const list = JSON.parse(json.stdout) as { kind: string; items: Array<{ metadata: { name: string } }> };
    assert.equal(list.kind, 'List');
    assert.equal(list.items.length, 2);
    const other = await weft(['policy', 'suggest', '--server', `unix://${socket}`, '--cluster', 'c1', '--namespace', 'data']);
    assert.deepEqual([other.code, other.stdout], [0, '']);
    const recent = await weft(['policy', 'suggest', '--server', `unix://${socket}`, '--cluster', 'c1', '--since', '5m']);
    assert.deepEqual([recent.code, recent.stdout], [0, '']);
    assert.match(recent.stderr, /0 flows of c1/);
  });

  it('refuses flows of two clusters without --cluster, and wrong use with exit 2', async () => {
    const both = await weft(['policy', 'suggest', '--server', `unix://${socket}`]);
    assert.equal(both.code, 1);
    assert.match(both.stderr, /Cannot suggest policies: the flows come from 2 clusters \(c1, c2\); name the cluster whose workloads get policies \[WEFT_ERR_POLICY_ADVISOR\]/);
    for (const [args, message] of [
      [['--since', 'yesterday'], /Invalid --since "yesterday"/],
      [['-o', 'table'], /Invalid output format "table": use yaml or json/],
      [['--namespace', 'Shop'], /Invalid --namespace "Shop"/],
      [['--world-cidr-limit', 'many'], /Invalid --world-cidr-limit "many"/],
      [['--follow'], /Unknown option --follow for weft policy suggest/],
    ] as const) {
      const r = await weft(['policy', 'suggest', '--server', `unix://${socket}`, ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });
});
