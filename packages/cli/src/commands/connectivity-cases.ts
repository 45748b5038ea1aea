/**
 * What `weft connectivity test` checks, shared by its two runners (the lab's, and the one against
 * Kubernetes clusters running the chart): the workload's names and labels, the echo server's
 * ports, the policy and the service, the list of cases with their expected outcome, and the
 * report. A runner only decides where the pods run and how a probe is sent; a case added here is
 * run by both.
 */
import { printJson, printTable, type OutputFormat } from '../output.js';

export const NS = 'weft-conntest';
export const SERVICE = 'ct-echo';
/** The `app` label of the echo servers, of the client the policy admits, and of the one it does not. */
export const APP = { echo: 'ct-echo', client: 'ct-client', intruder: 'ct-intruder' } as const;
export const PORTS = { tcp: 8080, udp: 9090, http: 8081 } as const;

/** The echo server's command line: the remote cluster's serves HTTP only. */
export function echoCommand(remote = false): string[] {
  return remote ? ['weft', 'echo-server', '--http', String(PORTS.http)] : ['weft', 'echo-server', '--tcp', String(PORTS.tcp), '--udp', String(PORTS.udp), '--http', String(PORTS.http)];
}

/**
 * The policy on the echo servers: only the client may reach them, on HTTP and UDP (TCP 8080 is
 * open on the server but not allowed). In a remote cluster: only the client of cluster
 * `sourceCluster`, on HTTP.
 */
export function policyDoc(sourceCluster?: string): Record<string, unknown> {
  const from = sourceCluster === undefined ? { app: APP.client } : { app: APP.client, 'weft.io/cluster': sourceCluster };
  const ports = sourceCluster === undefined ? [{ port: String(PORTS.http), protocol: 'TCP' }, { port: String(PORTS.udp), protocol: 'UDP' }] : [{ port: String(PORTS.http), protocol: 'TCP' }];
  return {
    apiVersion: 'weft.io/v1',
    kind: 'WeftNetworkPolicy',
    metadata: { name: 'echo-ingress', namespace: NS },
    spec: { endpointSelector: { matchLabels: { app: APP.echo } }, ingress: [{ fromEndpoints: [{ matchLabels: from }], toPorts: [{ ports }] }] },
  };
}

/** The echo servers' service, global when a remote cluster takes part. */
export function serviceDoc(global: boolean): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: SERVICE, namespace: NS, annotations: global ? { 'weft.io/global': 'true' } : {} },
    spec: { selector: { app: APP.echo }, ports: [{ name: 'http', port: 80, targetPort: PORTS.http }] },
  };
}

export interface Case {
  name: string;
  /** Who sends: the admitted client or the intruder. */
  from: 'client' | 'intruder';
  /** `weft probe` arguments. */
  target: string[];
  expect: 'pass' | 'drop';
}

export interface CaseResult {
  name: string;
  expected: string;
  /** pass, drop, or (Kubernetes) error: the probe did not run to an answer. */
  observed: string;
  ok: boolean;
  detail: string;
}

export interface CaseTargets {
  /** Echo server IPs: on the client's node, and on another node (the same node when there is one). */
  same: string;
  other: string;
  crossNode: boolean;
  /** The service's ClusterIP. */
  vip: string;
  /** An HTTP echo server outside the cluster (the lab's world host); no case without it. */
  world?: string;
  /** The echo server of a second cluster. */
  remote?: { from: string; to: string; ip: string };
}

/** Every case, in the order they are reported. */
export function connectivityCases(t: CaseTargets): Case[] {
  const where = t.crossNode ? 'across nodes' : 'same node';
  const http = (ip: string, port: number = PORTS.http): string[] => ['--http', `http://${ip}:${port}/`];
  const cases: Case[] = [
    { name: 'pod to pod, same node, allowed (HTTP)', from: 'client', target: http(t.same), expect: 'pass' },
    { name: `pod to pod, ${where}, allowed (HTTP)`, from: 'client', target: http(t.other), expect: 'pass' },
    { name: `pod to pod, ${where}, allowed (UDP)`, from: 'client', target: ['--udp', `${t.other}:${PORTS.udp}`], expect: 'pass' },
    { name: 'pod to pod, same node, denied by policy (wrong source)', from: 'intruder', target: http(t.same), expect: 'drop' },
    { name: `pod to pod, ${where}, denied by policy (wrong source)`, from: 'intruder', target: http(t.other), expect: 'drop' },
    { name: 'pod to pod, denied by policy (port not allowed)', from: 'client', target: ['--tcp', `${t.other}:${PORTS.tcp}`], expect: 'drop' },
  ];
  if (t.world !== undefined) cases.push({ name: 'pod to world (HTTP)', from: 'client', target: http(t.world), expect: 'pass' });
  cases.push({ name: 'pod to ClusterIP service (HTTP)', from: 'client', target: http(t.vip, 80), expect: 'pass' });
  if (t.remote) {
    const { from, to, ip } = t.remote;
    cases.push(
      { name: `pod to pod, across clusters (${from} -> ${to}), allowed by cluster label (HTTP)`, from: 'client', target: http(ip), expect: 'pass' },
      { name: `pod to pod, across clusters (${from} -> ${to}), denied by policy (wrong source)`, from: 'intruder', target: http(ip), expect: 'drop' },
    );
  }
  return cases;
}

/** The name of the global-service case, run when a second cluster takes part. */
export function globalServiceCaseName(a: string, b: string): string {
  return `global service answered from both clusters (${a}, ${b})`;
}

/** Prints the results (a table and a summary, or JSON with `extra`) and sets exit code 1 on any failure. */
export function reportResults(format: OutputFormat, results: CaseResult[], extra: Record<string, unknown>): void {
  const passed = results.filter((r) => r.ok).length;
  if (format === 'json') printJson({ ...extra, passed, failed: results.length - passed, results });
  else {
    printTable(['RESULT', 'CASE', 'EXPECTED', 'OBSERVED', 'DETAIL'], results.map((r) => [r.ok ? 'PASS' : 'FAIL', r.name, r.expected, r.observed, r.detail]));
    process.stdout.write(`\n${passed} passed, ${results.length - passed} failed\n`);
  }
  if (passed !== results.length) process.exitCode = 1;
}
