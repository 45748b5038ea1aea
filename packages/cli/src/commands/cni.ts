/**
 * `weft cni install --bin-dir DIR --conf-dir DIR [--socket PATH]`: puts the CNI plugin and its
 * conflist into the host's CNI directories (the agent DaemonSet's init container runs it);
 * `weft cni uninstall --bin-dir DIR --conf-dir DIR` removes exactly what install wrote (its
 * preStop hook). Both are idempotent; -o json for scripts.
 */
import { installCni, uninstallCni } from '@weft/cni';
import { COMMANDS } from '../command-table.js';
import { parseFormat, printJson, UsageError } from '../output.js';
import { parseCommandArgs } from '../parse-command-args.js';

export async function cniInstall(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['cni install'], argv);
  const format = parseFormat(values.output);
  const { binDir, confDir } = dirs('install', values);
  const r = installCni({ binDir, confDir, socket: values.socket });
  if (format === 'json') return printJson(r);
  process.stdout.write(`installed ${r.plugin} (Node and the plugin in ${r.payload})\ninstalled ${r.conflist} (agent socket ${r.socket})\n`);
  for (const p of r.removed) process.stdout.write(`removed   ${p} (an earlier version)\n`);
}

export async function cniUninstall(argv: string[]): Promise<void> {
  const { values } = parseCommandArgs(COMMANDS['cni uninstall'], argv);
  const format = parseFormat(values.output);
  const r = uninstallCni(dirs('uninstall', values));
  if (format === 'json') return printJson(r);
  for (const p of r.removed) process.stdout.write(`removed ${p}\n`);
  for (const s of r.skipped) process.stdout.write(`left    ${s.path}: ${s.reason}\n`);
  if (r.removed.length === 0 && r.skipped.length === 0) process.stdout.write('nothing to remove\n');
}

function dirs(verb: string, values: { 'bin-dir': string | undefined; 'conf-dir': string | undefined }): { binDir: string; confDir: string } {
  const binDir = values['bin-dir'];
  const confDir = values['conf-dir'];
  if (!binDir || !confDir) throw new UsageError(`weft cni ${verb} needs --bin-dir and --conf-dir (see weft cni ${verb} --help)`);
  return { binDir, confDir };
}
