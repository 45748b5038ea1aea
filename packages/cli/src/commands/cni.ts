/**
 * `weft cni install --bin-dir DIR --conf-dir DIR [--socket PATH]`: puts the CNI plugin and its
 * conflist into the host's CNI directories (the agent DaemonSet's init container runs it);
 * `weft cni uninstall --bin-dir DIR --conf-dir DIR` removes exactly what install wrote (its
 * preStop hook). Both are idempotent; -o json for scripts.
 */
import { parseArgs } from 'node:util';
import { installCni, uninstallCni } from '@weft/cni';
import { parseFormat, printJson, UsageError } from '../output.js';

const USAGE = 'Usage: weft cni install --bin-dir DIR --conf-dir DIR [--socket PATH] [-o json]\n       weft cni uninstall --bin-dir DIR --conf-dir DIR [-o json]';

export async function cni(argv: string[]): Promise<void> {
  const [verb, ...rest] = argv;
  if (verb !== 'install' && verb !== 'uninstall') throw new UsageError(USAGE);
  const { values } = parseArgs({
    args: rest,
    options: { 'bin-dir': { type: 'string' }, 'conf-dir': { type: 'string' }, socket: { type: 'string' }, output: { type: 'string', short: 'o' } },
  });
  const format = parseFormat(values.output);
  const binDir = values['bin-dir'];
  const confDir = values['conf-dir'];
  if (!binDir || !confDir) throw new UsageError(`weft cni ${verb} needs --bin-dir and --conf-dir\n${USAGE}`);
  if (verb === 'install') {
    const r = installCni({ binDir, confDir, ...(values.socket !== undefined ? { socket: values.socket } : {}) });
    if (format === 'json') return printJson(r);
    process.stdout.write(`installed ${r.plugin} (Node and the plugin in ${r.payload})\ninstalled ${r.conflist} (agent socket ${r.socket})\n`);
    for (const p of r.removed) process.stdout.write(`removed   ${p} (an earlier version)\n`);
    return;
  }
  if (values.socket !== undefined) throw new UsageError(`weft cni uninstall takes no --socket\n${USAGE}`);
  const r = uninstallCni({ binDir, confDir });
  if (format === 'json') return printJson(r);
  for (const p of r.removed) process.stdout.write(`removed ${p}\n`);
  for (const s of r.skipped) process.stdout.write(`left    ${s.path}: ${s.reason}\n`);
  if (r.removed.length === 0 && r.skipped.length === 0) process.stdout.write('nothing to remove\n');
}
