// The command table against what it describes: its usage lines name only options it has, its
// defaults are the libraries', observe's entry lists observe's filters, and the README's command
// table names every command people run and no command the table lacks.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_AGENT_SOCKET } from '@weft/cni/install';
import { COMMANDS, GROUPS, type CommandEntry, type OptionSpec } from './command-table.js';
import { ROOT, type CommandNode } from './command-tree.js';
import { FILTER_FLAGS } from './commands/observe-request.js';

const ENTRIES = Object.values(COMMANDS) as CommandEntry[];
const OPTION_FIELDS = new Set(['type', 'short', 'multiple', 'default', 'defaultText', 'valueName', 'help']);

const usageLines = (e: CommandEntry): string[] => e.usage.map((u) => (typeof u === 'string' ? u : u.args));
/** `--name` and `-x` in a usage line or a README span (not `--[from-` nor a lone `--`). */
const longFlags = (text: string): string[] => [...text.matchAll(/--([a-z][a-z0-9-]*)/g)].map((m) => m[1]!);
const shortFlags = (text: string): string[] => [...text.matchAll(/(?:^|[\s[|])-([a-zA-Z])(?=[\s\]|]|$)/g)].map((m) => m[1]!);

describe('the command table', () => {
  it('is well formed: ids are their words, options have a type and help, shorts are unique and not -h', () => {
    for (const e of ENTRIES) {
      assert.equal(e.words.join(' '), e.id);
      assert.ok(e.summary && e.usage.length > 0 && e.group in GROUPS, e.id);
      const shorts = Object.values(e.options).flatMap((o) => (o.short ? [o.short] : []));
      assert.equal(new Set(shorts).size, shorts.length, `${e.id}: a short option twice`);
      assert.ok(!shorts.includes('h'), `${e.id}: -h is the help`);
      for (const [name, o] of Object.entries(e.options) as Array<[string, OptionSpec]>) {
        for (const k of Object.keys(o)) assert.ok(OPTION_FIELDS.has(k), `${e.id} --${name}: unknown field ${k}`);
        assert.ok(o.help, `${e.id} --${name} has no help`);
        assert.ok(o.type === 'string' || o.valueName === undefined, `${e.id} --${name}: a flag takes no value`);
        if (o.default !== undefined) assert.equal(typeof o.default, o.type, `${e.id} --${name}: default of the wrong type`);
      }
      if (e.hidden) assert.ok(e.internal, `${e.id}: hidden from the help, so internal too`);
    }
  });

  it('names in each usage line only options of its entry', () => {
    for (const e of ENTRIES) {
      for (const line of usageLines(e)) {
        for (const f of longFlags(line)) assert.ok(f in e.options, `weft ${e.id} ${line}: --${f} is not an option of ${e.id}`);
        const shorts = Object.values(e.options).flatMap((o) => (o.short ? [o.short] : []));
        for (const s of shortFlags(line)) assert.ok(shorts.includes(s), `weft ${e.id} ${line}: -${s} is not an option of ${e.id}`);
      }
    }
  });

  it('defaults the agent socket to where the chart puts it (@weft/cni DEFAULT_AGENT_SOCKET)', () => {
    for (const e of [COMMANDS['agent health'], COMMANDS['agent uninstall'], COMMANDS['cni install']]) assert.equal(e.options.socket.default, DEFAULT_AGENT_SOCKET, e.id);
  });

  it('leaves the command modules to be loaded when their command runs: the dispatch, the table and the help import none', () => {
    for (const file of ['main.ts', 'command-table.ts', 'command-tree.ts', 'help.ts', 'parse-command-args.ts', 'output.ts']) {
      const text = readFileSync(join(__dirname, '..', 'src', file), 'utf8');
      assert.deepEqual([...text.matchAll(/^import [^;]*from '(\.\/commands\/[^']+)'/gm)].map((m) => m[1]), [], `${file} imports a command module at start`);
    }
  });

  it('lists every filter of weft observe (observe-request.ts parses them; this entry is their help)', () => {
    const options = COMMANDS.observe.options as Record<string, OptionSpec>;
    for (const f of FILTER_FLAGS) assert.ok(f in options, `--${f} is missing from the observe entry`);
    for (const f of ['since', 'until', 'not']) assert.ok(f in options, `--${f}`);
  });
});

/** The README's `## Commands` table: [first column, second column] per row. */
function readmeRows(): Array<[string, string]> {
  const readme = readFileSync(join(__dirname, '..', '..', '..', 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Commands\n');
  assert.ok(start >= 0, 'README.md has a ## Commands section');
  const section = readme.slice(start + 1, readme.indexOf('\n## ', start + 1));
  return section
    .split('\n')
    .filter((l) => l.startsWith('| ') && !/^\|\s*-/.test(l) && !l.startsWith('| command |'))
    .map((l) => {
      const cells = l.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
      return [cells[0] ?? '', cells[1] ?? ''];
    });
}

/** The backquoted spans of a cell, `\|` read as `|`. */
const spans = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!.replace(/\\\|/g, '|'));

/**
 * The commands a span names: its leading words followed down the tree, `a|b` for either (`connect|disconnect`).
 * `words` is how many words named commands.
 */
function resolveSpan(span: string): { weft: boolean; words: number; nodes: CommandNode[]; text: string } {
  const tokens = span.split(/\s+/);
  const weft = tokens[0] === 'weft';
  let nodes = [ROOT];
  let words = 0;
  for (const t of tokens.slice(weft ? 1 : 0)) {
    const next = nodes.flatMap((n) => t.split('|').map((w) => n.children.get(w)));
    if (next.length === 0 || next.some((n) => n === undefined)) break;
    nodes = next as CommandNode[];
    words++;
  }
  return { weft, words, nodes, text: span };
}

describe('the README command table', () => {
  const rows = readmeRows();
  const resolved = rows.flatMap(([a, b]) => [...spans(a), ...spans(b)]).map(resolveSpan);

  it('names no command the table lacks, and only options the command takes', () => {
    assert.ok(rows.length > 10, 'found the table');
    const problems: string[] = [];
    // `weft help ...`, `weft --help`, `weft COMMAND --help`: the help itself (main.ts), no entry of the table.
    const help = (r: { text: string }): boolean => /^weft (help|--help|-h|[A-Z]+)( |$)/.test(r.text);
    for (const r of resolved.filter((x) => x.weft && !help(x))) {
      if (r.words === 0 || r.nodes.some((n) => !n.entry)) {
        problems.push(`\`${r.text}\` is not a command (weft --help lists them)`);
        continue;
      }
      for (const n of r.nodes) for (const f of longFlags(r.text)) if (!(f in n.entry!.options)) problems.push(`\`${r.text}\`: weft ${n.entry!.id} has no --${f}`);
    }
    assert.deepEqual(problems, []);
  });

  it('mentions every command people run (all but the internal ones), as `weft WORDS` or `WORDS` of two or more words', () => {
    const mentioned = new Set(resolved.filter((r) => r.weft || r.words >= 2).flatMap((r) => (r.words > 0 ? r.nodes.flatMap((n) => (n.entry ? [n.entry.id] : [])) : [])));
    const missing = ENTRIES.filter((e) => !e.internal && !mentioned.has(e.id)).map((e) => e.id);
    assert.deepEqual(missing, [], 'commands missing from the README\'s ## Commands table');
  });
});
