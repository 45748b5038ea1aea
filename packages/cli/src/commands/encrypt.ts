/**
 * `weft encrypt status`: per node, its encryption mode, lanes (device, kernel
 * WireGuard or wireguard-go) and keys,
 * epoch and rotation, and per peer node (own cluster and connected ones)
 * whether traffic to it is encrypted, the lane it is sent on, the peer's
 * epoch, last handshake and bytes; whether pod traffic arriving in the clear
 * is dropped (receive-side strictness); nodes refused as peers with the reason.
 *
 * `weft encrypt rotate`: rotates the WireGuard key of the selected nodes,
 * one node after the other, each waiting until every peer confirmed (unless
 * --no-wait). A node already rotating answers WEFT_ERR_ROTATION_IN_PROGRESS
 * and keeps its keys. -o json for scripts.
 */
import { WeftError } from '@weft/common';
import { AgentClient, type EncryptionStatus } from '@weft/agent';
import { agentSocket, readLabState, rotateLabIpsecKey } from '@weft/lab';
import { COMMANDS } from '../command-table.js';
import { agentsFor } from '../context.js';
import { parseFormat, printJson, printTable, progress, UsageError } from '../output.js';
import { parseCommandArgs } from '../parse-command-args.js';

/** A rotation that was given up or did not finish in time. */
export class RotationFailedError extends WeftError {
  static readonly code = 'WEFT_ERR_ROTATION_FAILED';
  constructor(message: string) {
    super(RotationFailedError.code, message);
  }
}

export async function encryptRotate(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['encrypt rotate'], argv);
  const format = parseFormat(values.output);
  const timeoutS = Number(values.timeout);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw new UsageError(`Invalid --timeout ${JSON.stringify(values.timeout)}: seconds, > 0`);
  return rotate(values, !values['no-wait'], timeoutS * 1000, format);
}

export async function encryptStatus(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['encrypt status'], argv);
  const format = parseFormat(values.output);
  const rows = await Promise.all(agentsFor(values).map(async ({ node, client }) => ({ node, ...(await client.encryption()) })));
  if (format === 'json') return printJson(rows);
  for (const r of rows) {
    if (r.mode === 'off') {
      process.stdout.write(`${r.node}: encryption off\n`);
      continue;
    }
    if (r.mode === 'ipsec') printIpsec(r);
    else printWireGuard(r);
    process.stdout.write(`  clear pod traffic from other nodes: ${r.clearIngress?.dropped ? `dropped (${r.clearIngress.by})` : 'accepted (strict off)'}\n`);
    for (const x of r.refused) process.stdout.write(`  refused ${x.cluster}/${x.node} (traffic to it is not encrypted): ${x.reason}\n`);
  }
}

type NodeStatus = EncryptionStatus & { node: string };

function printIpsec(r: NodeStatus): void {
  const x = r.ipsec!;
  process.stdout.write(`${r.node}: ipsec${r.strict ? ' (strict)' : ''}, router IP ${r.routerIp}, key ids ${x.keyIds.join(',')}, sending under ${x.sendKeyId}${x.waitingFor.length ? `, rotation waiting for ${x.waitingFor.join(', ')}` : ''}${x.keyFileError ? `; KEY FILE REFUSED (keys in force stay): ${x.keyFileError}` : ''}\n`);
  if (r.peers.length === 0) return;
  printTable(
    ['PEER', 'CLUSTER', 'ENCRYPTED', 'NODE IP', 'PEER KEY IDS', 'SENDING UNDER', 'SAS (DIR SPI KEY PACKETS)', 'RX BYTES', 'TX BYTES'],
    r.peers.map((p) => [p.node, p.cluster, p.encrypted ? 'yes' : 'no', p.endpoint, (p.keyIds ?? []).join(','), p.sendKeyId ?? '-', (p.sas ?? []).map((a) => `${a.direction} ${a.spi} ${a.keyId} ${a.packets}`).join('; '), p.rxBytes, p.txBytes]),
  );
}

function printWireGuard(r: NodeStatus): void {
  const rot = r.rotation ? `rotating lane ${r.rotation.lane} (${r.rotation.phase}, waiting for ${r.rotation.waitingFor.join(', ') || 'nothing'})` : 'no rotation';
  const last = r.lastRotation ? `; last rotation lane ${r.lastRotation.lane} ${r.lastRotation.outcome} in ${r.lastRotation.durationMs} ms at ${r.lastRotation.finishedAt}${r.lastRotation.detail ? ` (${r.lastRotation.detail})` : ''}` : '';
  process.stdout.write(`${r.node}: ${r.mode}${r.strict ? ' (strict)' : ''}, router IP ${r.routerIp}, epoch ${r.epoch}, ${rot}${last}${r.nextRotation ? `; next scheduled ${r.nextRotation}` : ''}\n`);
  for (const l of r.lanes ?? []) process.stdout.write(`  lane ${l.lane}: device ${l.device} (${l.implementation === 'kernel' ? 'kernel WireGuard' : 'wireguard-go'}), port ${l.port}, public key ${l.publicKey}, created ${l.keyCreated}\n`);
  if (r.peers.length === 0) return;
  printTable(
    ['PEER', 'CLUSTER', 'ENCRYPTED', 'LANE', 'ENDPOINT', 'PEER EPOCH', 'LAST HANDSHAKE', 'RX BYTES', 'TX BYTES', 'ROTATING'],
    r.peers.map((p) => [p.node, p.cluster, p.encrypted ? 'yes' : 'no', p.sendLane ?? '-', p.endpoint, p.epoch ?? '-', p.lastHandshake ?? 'never', p.rxBytes, p.txBytes, p.rotating ?? '-']),
  );
}

async function rotate(values: { cluster?: string; node?: string; agent?: string }, wait: boolean, timeoutMs: number, format: 'table' | 'json'): Promise<void> {
  const [first] = agentsFor(values);
  if ((await first!.client.encryption()).mode === 'ipsec') return rotateIpsec(wait, timeoutMs, format);
  const results: Array<{ node: string; lane: number; epoch: number; outcome: string; durationMs?: number; detail?: string }> = [];
  for (const { node, client } of agentsFor(values)) {
    const started = await client.rotate();
    if (!wait) {
      results.push({ node, ...started, outcome: 'started' });
      continue;
    }
    if (format === 'table') progress(`${node}: rotating lane ${started.lane}...`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await client.encryption();
      const last = s.lastRotation;
      // The rotation we started has finished once it is the last one and none runs.
      if (!s.rotation && last && (s.epoch ?? 0) > started.epoch) {
        const row = { node, lane: last.lane, epoch: s.epoch ?? 0, outcome: last.outcome, ...(last.durationMs !== undefined ? { durationMs: last.durationMs } : {}), ...(last.detail ? { detail: last.detail } : {}) };
        results.push(row);
        if (last.outcome !== 'done') throw new RotationFailedError(`${node}: key rotation of lane ${last.lane} was given up: ${last.detail ?? 'no reason given'}; the keys in force stay`);
        break;
      }
      if (Date.now() > deadline) throw new RotationFailedError(`${node}: key rotation of lane ${started.lane} has not finished after ${timeoutMs / 1000} s; waiting for ${s.rotation?.waitingFor.join(', ') || '?'} (it goes on; see weft encrypt status)`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  if (format === 'json') return printJson(results);
  for (const r of results) process.stdout.write(`${r.node}: lane ${r.lane} ${r.outcome}${r.durationMs !== undefined ? ` in ${r.durationMs} ms` : ''}, epoch ${r.epoch}\n`);
}

/**
 * IPsec keys are the mesh's, not a node's: a new key id in the key file every
 * agent watches (the lab's; in Kubernetes, the chart's Secret). Waits until
 * every node of every lab cluster sends under the new key and has dropped
 * the old one (make-before-break: the agents order the steps).
 */
async function rotateIpsec(wait: boolean, timeoutMs: number, format: 'table' | 'json'): Promise<void> {
  const state = readLabState();
  if (!state) throw new UsageError('IPsec keys rotate with the mesh key file; outside the lab write a new key id to every node\'s ipsecKeyFile');
  const started = Date.now();
  const keyId = rotateLabIpsecKey();
  if (format === 'table') progress(`ipsec: mesh key id ${keyId} written; waiting for every node to send under it and drop the old one...`);
  const nodes = state.clusters.flatMap((c) => c.nodes.map((n) => ({ cluster: c.name, node: n.name, client: new AgentClient(agentSocket(n)) })));
  const results: Array<{ cluster: string; node: string; keyIds: number[]; sendKeyId: number }> = [];
  for (const n of nodes) {
    for (;;) {
      const s = await n.client.encryption();
      if (s.ipsec?.keyFileError) throw new RotationFailedError(`${n.cluster}/${n.node}: the key file was refused: ${s.ipsec.keyFileError}; the keys in force stay`);
      const done = s.ipsec && s.ipsec.sendKeyId === keyId && s.ipsec.keyIds.join() === String(keyId);
      if (done || !wait) {
        results.push({ cluster: n.cluster, node: n.node, keyIds: s.ipsec?.keyIds ?? [], sendKeyId: s.ipsec?.sendKeyId ?? 0 });
        break;
      }
      if (Date.now() - started > timeoutMs) throw new RotationFailedError(`${n.cluster}/${n.node}: IPsec key id ${keyId} not in sole use after ${timeoutMs / 1000} s; waiting for ${s.ipsec?.waitingFor.join(', ') || '?'} (it goes on; see weft encrypt status)`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const durationMs = Date.now() - started;
  if (format === 'json') return printJson({ keyId, durationMs, nodes: results });
  process.stdout.write(`ipsec: every node sends under key id ${keyId} and has dropped the old key (${durationMs} ms)\n`);
}
