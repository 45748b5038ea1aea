/**
 * Putting the CNI plugin on a node and taking it off again: `weft cni install` (the agent
 * DaemonSet's init container) and `weft cni uninstall` (its preStop hook).
 *
 * The container runtime runs CNI plugins on the host, where neither Node nor Weft is installed,
 * so install copies everything the plugin needs into the host's CNI bin directory:
 *
 *   <bin-dir>/weft-cni                  a sh launcher (0755)
 *   <bin-dir>/.weft-cni-<version>/      node (a copy of the running binary), the plugin's modules
 *                                       under node_modules/@weft/..., and weft-managed.json
 *   <conf-dir>/05-weft.conflist         the network configuration: plugin weft-cni, agent socket
 *
 * Invariants: each file appears whole (written beside its target, then renamed); a new payload
 * is complete before the launcher points at it, and the launcher exists before the conflist
 * names it (uninstall goes the other way). Every file Weft writes carries a marker, and a file
 * without one is never overwritten or removed: install refuses (WEFT_ERR_CNI_FILE_CONFLICT),
 * uninstall leaves it and says so. The host needs glibc and libstdc++, as Node does.
 */
import { createHash, randomBytes } from 'node:crypto';
import { accessSync, chmodSync, closeSync, constants, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, realpathSync, renameSync, rmdirSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { CniFileConflictError, CniInstallError } from './errors.js';

export const PLUGIN_NAME = 'weft-cni';
export const CONFLIST_NAME = '05-weft.conflist';
export const DEFAULT_AGENT_SOCKET = '/var/run/weft/agent.sock';
const MARKER = 'weft-managed';
const MANIFEST = 'weft-managed.json';
const PAYLOAD_RE = /^\.weft-cni-[0-9a-f]{12}(\.tmp-[0-9a-f]+)?$/;

export interface CniInstallOptions {
  binDir: string;
  confDir: string;
  /** The agent's socket as the host sees it. Default /var/run/weft/agent.sock. */
  socket?: string;
  /** The Node binary to copy. Default: the one running. */
  node?: string;
}

export interface CniInstallResult {
  plugin: string;
  payload: string;
  conflist: string;
  socket: string;
  /** Earlier payloads of ours that were replaced. */
  removed: string[];
}

export interface CniUninstallResult {
  removed: string[];
  /** Files at our names that Weft did not write, left alone. */
  skipped: Array<{ path: string; reason: string }>;
}

/** The network configuration the runtime reads; the plugin reads agentSocket from it. */
export function conflist(socket: string): Record<string, unknown> {
  // No portmap chaining: Weft implements no hostPort, and the portmap binary is not ours to assume.
  return {
    cniVersion: '1.0.0',
    name: 'weft',
    [MARKER]: 'written by weft cni install, removed by weft cni uninstall',
    plugins: [{ type: PLUGIN_NAME, agentSocket: socket }],
  };
}

function launcher(payload: string): string {
  // ${0%/*}: the launcher's own directory, with no external command (the runtime passes the full path).
  return [
    '#!/bin/sh',
    `# ${MARKER}: the Weft CNI plugin, written by weft cni install, removed by weft cni uninstall.`,
    '# The runtime runs it on the host; Node and the plugin are in the directory named below, beside it.',
    `exec "\${0%/*}/${payload}/node" "\${0%/*}/${payload}/node_modules/@weft/cni/dist/main.js" "$@"`,
    '',
  ].join('\n');
}

/**
 * The plugin's modules: main.js and everything it requires, found from the compiled requires and
 * laid out as node_modules/<package>/<path> so Node resolves them inside the payload. Only Weft's
 * own packages may be in it: a third-party module would need its whole package on the host.
 */
export function pluginModules(entry = join(__dirname, 'main.js')): Array<{ from: string; to: string }> {
  const out = new Map<string, string>();
  const queue = [realpathSync(entry)];
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    if (out.has(file)) continue;
    const root = _packageRoot(file);
    const name = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name?: string }).name ?? '';
    if (!name.startsWith('@weft/')) throw new CniInstallError(`Cannot install the CNI plugin: it would load ${file} of package ${JSON.stringify(name)}; the plugin carries Weft's own modules only`);
    out.set(file, join('node_modules', name, relative(root, file)));
    // Its package.json too, so a bare `require("@weft/x")` resolves through "main" on the host as well.
    out.set(join(root, 'package.json'), join('node_modules', name, 'package.json'));
    const req = createRequire(file);
    for (const m of readFileSync(file, 'utf8').matchAll(/\brequire\("([^"]+)"\)/g)) {
      if (!isBuiltin(m[1]!)) queue.push(realpathSync(req.resolve(m[1]!)));
    }
  }
  return [...out].map(([from, to]) => ({ from, to })).sort((a, b) => (a.to < b.to ? -1 : 1));
}

function _packageRoot(file: string): string {
  for (let dir = dirname(file); dir !== dirname(dir); dir = dirname(dir)) if (existsSync(join(dir, 'package.json'))) return dir;
  throw new CniInstallError(`Cannot install the CNI plugin: ${file} belongs to no package`);
}

export function installCni(options: CniInstallOptions): CniInstallResult {
  const { binDir, confDir } = options;
  const socket = options.socket ?? DEFAULT_AGENT_SOCKET;
  const node = options.node ?? process.execPath;
  if (!socket.startsWith('/')) throw new CniInstallError(`Cannot install the CNI plugin: the agent socket ${JSON.stringify(socket)} is not an absolute path`);
  _checkDir(binDir, 'bin');
  _checkDir(confDir, 'conf');
  const plugin = join(binDir, PLUGIN_NAME);
  const conf = join(confDir, CONFLIST_NAME);
  // Refuse before writing anything.
  for (const path of [plugin, conf]) if (existsSync(path) && !_isOurs(path)) throw new CniFileConflictError(path);

  const modules = pluginModules();
  const hash = createHash('sha256').update(`${process.version} ${process.arch} ${statSync(node).size}\n`);
  for (const m of modules) hash.update(`${m.to}\n`).update(readFileSync(m.from));
  const payloadName = `.weft-cni-${hash.digest('hex').slice(0, 12)}`;
  const payload = join(binDir, payloadName);
  if (existsSync(payload) && _manifest(payload) === undefined) throw new CniFileConflictError(payload);

  _attempt(`write ${payload}`, () => {
    if (_complete(payload)) return;
    if (existsSync(payload)) _removePayload(payload);
    // Built under a temporary name, manifest first (so a crash leaves something uninstall recognises), then renamed whole.
    const tmp = `${payload}.tmp-${randomBytes(4).toString('hex')}`;
    const files = ['node', ...modules.map((m) => m.to)];
    mkdirSync(tmp, { mode: 0o755 });
    try {
      _writeFile(join(tmp, MANIFEST), JSON.stringify({ [MARKER]: 'weft cni install', files }, null, 2) + '\n', 0o644);
      for (const [from, to, mode] of [[node, 'node', 0o755] as const, ...modules.map((m) => [m.from, m.to, 0o644] as const)]) {
        mkdirSync(dirname(join(tmp, to)), { recursive: true, mode: 0o755 });
        copyFileSync(from, join(tmp, to));
        chmodSync(join(tmp, to), mode);
      }
      renameSync(tmp, payload);
    } catch (err) {
      try {
        _removePayload(tmp);
      } catch {
        // The first failure is the one to report; a later install or uninstall removes the rest.
      }
      throw err;
    }
  });
  _attempt(`write ${plugin}`, () => _writeAtomic(plugin, launcher(payloadName), 0o755));
  const removed: string[] = [];
  for (const name of readdirSync(binDir)) {
    const old = join(binDir, name);
    if (name !== payloadName && PAYLOAD_RE.test(name) && _manifest(old) !== undefined) {
      _attempt(`remove ${old}`, () => _removePayload(old));
      removed.push(old);
    }
  }
  _attempt(`write ${conf}`, () => _writeAtomic(conf, JSON.stringify(conflist(socket), null, 2) + '\n', 0o644));
  return { plugin, payload, conflist: conf, socket, removed };
}

/** Removes what install wrote, and nothing else; idempotent. Missing directories hold nothing of ours. */
export function uninstallCni(options: Pick<CniInstallOptions, 'binDir' | 'confDir'>): CniUninstallResult {
  const result: CniUninstallResult = { removed: [], skipped: [] };
  const remove = (path: string, how: () => void): void => {
    _attempt(`remove ${path}`, how);
    result.removed.push(path);
  };
  const conf = join(options.confDir, CONFLIST_NAME);
  const plugin = join(options.binDir, PLUGIN_NAME);
  for (const path of [conf, plugin]) {
    if (!existsSync(path)) continue;
    if (_isOurs(path)) remove(path, () => unlinkSync(path));
    else result.skipped.push({ path, reason: 'not written by weft cni install' });
  }
  const names = existsSync(options.binDir) ? readdirSync(options.binDir) : [];
  for (const name of names.filter((n) => PAYLOAD_RE.test(n))) {
    const payload = join(options.binDir, name);
    if (_manifest(payload) === undefined) result.skipped.push({ path: payload, reason: 'no weft-managed manifest' });
    else {
      let gone = false;
      _attempt(`remove ${payload}`, () => (gone = _removePayload(payload)));
      if (gone) result.removed.push(payload);
      else result.skipped.push({ path: payload, reason: 'holds files weft did not write (ours were removed)' });
    }
  }
  return result;
}

function _checkDir(dir: string, what: string): void {
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (err) {
    throw new CniInstallError(`Cannot install the CNI plugin: the CNI ${what} directory ${dir} does not exist (${(err as NodeJS.ErrnoException).code})`, { cause: err });
  }
  if (!isDir) throw new CniInstallError(`Cannot install the CNI plugin: the CNI ${what} directory ${dir} is not a directory`);
  try {
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new CniInstallError(`Cannot install the CNI plugin: the CNI ${what} directory ${dir} is not writable (${(err as NodeJS.ErrnoException).code})`, { cause: err });
  }
}

/** Runs one filesystem step, turning its failure into a typed error that names the step. */
function _attempt(step: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniInstallError) throw err;
    throw new CniInstallError(`Cannot ${step}: ${(err as Error).message}`, { cause: err });
  }
}

/** Whether the launcher or conflist at `path` is ours: it carries the marker where we put it. */
function _isOurs(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    const text = readFileSync(path, 'utf8');
    if (path.endsWith('.conflist')) return typeof (JSON.parse(text) as Record<string, unknown>)[MARKER] === 'string';
    return text.split('\n')[1]?.startsWith(`# ${MARKER}:`) === true;
  } catch {
    return false;
  }
}

/** The files a payload directory of ours lists, or undefined when it is not ours. */
function _manifest(dir: string): string[] | undefined {
  try {
    const m = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as Record<string, unknown>;
    const files = m.files;
    if (typeof m[MARKER] !== 'string' || !Array.isArray(files) || !files.every((f) => typeof f === 'string' && !f.split(/[\\/]/).includes('..'))) return undefined;
    return files as string[];
  } catch {
    return undefined;
  }
}

function _complete(dir: string): boolean {
  return _manifest(dir)?.every((f) => existsSync(join(dir, f))) === true;
}

/** Removes the listed files, the manifest and the directories that are then empty; false if the directory stays. */
function _removePayload(dir: string): boolean {
  const files = _manifest(dir) ?? [];
  for (const f of [...files, MANIFEST]) rmSync(join(dir, f), { force: true });
  const dirs = new Set<string>();
  for (const f of files) for (let d = dirname(f); d !== '.'; d = dirname(d)) dirs.add(d);
  // Deepest first, so a parent is tried after its children.
  for (const d of [...dirs].sort((a, b) => b.split(sep).length - a.split(sep).length)) _rmdirIfEmpty(join(dir, d));
  return _rmdirIfEmpty(dir);
}

function _rmdirIfEmpty(dir: string): boolean {
  try {
    rmdirSync(dir);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return true;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') return false;
    throw err;
  }
}

function _writeFile(path: string, text: string, mode: number): void {
  const fd = openSync(path, 'wx', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(path, mode);
}

/** Writes beside the target under a name no runtime loads (.conflist.tmp-..., not *.conflist), then renames. */
function _writeAtomic(path: string, text: string, mode: number): void {
  const tmp = join(dirname(path), `.${path.slice(dirname(path).length + 1)}.tmp-${randomBytes(4).toString('hex')}`);
  try {
    _writeFile(tmp, text, mode);
    renameSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
}
