/**
 * `weft agent uninstall [--socket PATH] [--cni-bin-dir DIR --cni-conf-dir DIR] [-o json]`: takes
 * Weft off this node, the chart's preStop hook with cni.uninstall. The CNI plugin and its conflist
 * go first (with both directories), so the runtime networks no new pod with Weft; then the running
 * agent stops its loops and removes its datapath (programs, tunnel device, pins) and encryption's
 * devices or SAs (POST /v1/uninstall). Pods keep their veths and addresses. Idempotent: an agent
 * that already did it answers with nothing removed.
 */
import { AgentClient } from '@weft/agent/api-client';
import { uninstallCni } from '@weft/cni/install';
import { COMMANDS } from '../command-table.js';
import { parseFormat, printJson, UsageError } from '../output.js';
import { parseCommandArgs } from '../parse-command-args.js';

export async function agentUninstall(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['agent uninstall'], argv);
  const format = parseFormat(values.output);
  const binDir = values['cni-bin-dir'];
  const confDir = values['cni-conf-dir'];
  if ((binDir === undefined) !== (confDir === undefined)) throw new UsageError('weft agent uninstall takes --cni-bin-dir and --cni-conf-dir together');
  const cni = binDir && confDir ? uninstallCni({ binDir, confDir }) : undefined;
  const client = new AgentClient(values.socket);
  const { removed } = await client.call<{ removed: string[] }>('POST', '/v1/uninstall');
  if (format === 'json') return printJson({ cni: cni ?? null, datapath: removed });
  for (const p of cni?.removed ?? []) process.stdout.write(`removed ${p}\n`);
  for (const s of cni?.skipped ?? []) process.stdout.write(`left    ${s.path}: ${s.reason}\n`);
  for (const r of removed) process.stdout.write(`removed ${r}\n`);
}
