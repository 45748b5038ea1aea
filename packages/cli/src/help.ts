/**
 * `weft --help` and `weft CMD [SUB] --help`, written from the command table: the top-level usage
 * lists every command that is not hidden under its group; a command's usage shows its usage
 * lines, summary, arguments, options (with defaults) and its subcommands. `-o json` gives the
 * same as JSON, for completion scripts and docs.
 */
import { COMMANDS, GROUPS, type CommandSpec, type GroupId, type OptionSpec, type UsageForm } from './command-table.js';
import { entriesBelow, ROOT, type CommandNode } from './command-tree.js';

const WIDTH = 100;
/** Where summaries start in a listing, as in the usage that was written by hand before the table. */
const SUMMARY_COLUMN = 31;

export function helpText(node: CommandNode): string {
  if (node === ROOT) return topLevel();
  const out: string[] = [];
  const name = ['weft', ...node.words].join(' ');
  const e = node.entry;
  if (e) {
    const lines = e.usage.map((u) => formOf(u, e));
    lines.forEach((f, i) => {
      const lead = i === 0 ? 'Usage: ' : '       ';
      out.push(...wrapSynopsis(`${lead}${name} ${f.args}`, lead.length + name.length + 1));
      if (f.own) out.push(...wrapText(f.summary, 11));
    });
    out.push('', ...wrapText(sentence(e.summary), 0));
    const args = [...(e.args ?? []).map((a) => [a.name, a.help + (a.optional ? ' (optional)' : '')] as const), ...(e.afterSeparator ? [[`-- ${e.afterSeparator.name}`, e.afterSeparator.help] as const] : [])];
    if (args.length > 0) out.push('', 'Arguments:', ...args.flatMap(([n, h]) => listLine(`  ${n}`, h)));
    out.push('', 'Options:', ...Object.entries(e.options).flatMap(([n, o]) => listLine(`  ${optionName(n, o)}`, optionHelp(o))), ...listLine('  -h, --help', 'this help'));
  } else {
    out.push(`Usage: ${name} COMMAND [options]`);
  }
  const below = entriesBelow(node).filter((x) => x !== e);
  if (below.length > 0) {
    const shown = below.filter((x) => !x.hidden);
    const hidden = below.filter((x) => x.hidden);
    out.push('', 'Commands:', ...shown.flatMap((x) => listing(x, node.words.length)));
    if (hidden.length > 0) out.push('', 'Internal (not for people to run):', ...hidden.flatMap((x) => listing(x, node.words.length)));
    out.push('', `${name} COMMAND --help shows a command's options.`);
  }
  return out.join('\n') + '\n';
}

function topLevel(): string {
  const out = ['Usage: weft COMMAND [options]      (every command takes -o json)', '       weft COMMAND --help         its usage and options'];
  for (const [group, title] of Object.entries(GROUPS) as Array<[GroupId, string]>) {
    out.push('', `${title}:`);
    for (const e of Object.values(COMMANDS) as CommandSpec[]) if (!e.hidden) out.push(...listing(e, 0, group));
  }
  return out.join('\n') + '\n';
}

/** A usage line, with the summary it is listed with; `own` when it has a summary of its own. */
function formOf(u: string | UsageForm, e: CommandSpec): { args: string; summary: string; group: GroupId; own: boolean } {
  return typeof u === 'string' ? { args: u, summary: e.summary, group: e.group, own: false } : { ...u, own: true };
}

/**
 * An entry's lines in a listing, its words from `depth` on: each usage line (of `group`, when
 * given), the entry's summary after its last plain line, a form's own summary after it.
 */
function listing(e: CommandSpec, depth: number, group?: GroupId): string[] {
  // The top level says once that every command takes -o json.
  const forms = e.usage.map((u) => formOf(u, e)).filter((f) => group === undefined || f.group === group).map((f) => (group === undefined ? f : { ...f, args: f.args.replace(/ ?\[-o json\]/, '') }));
  const lastPlain = forms.map((f) => f.own).lastIndexOf(false);
  const words = e.words.slice(depth).join(' ');
  return forms.flatMap((f, i) => {
    const line = `  ${words} ${f.args}`;
    return f.own || i === lastPlain ? listLine(line, f.summary, 2 + words.length + 1) : wrapSynopsis(line, 2 + words.length + 1);
  });
}

/** `left` and then `summary` from SUMMARY_COLUMN on, on the same line when `left` leaves room. */
function listLine(left: string, summary: string, indent = left.length - left.trimStart().length + 2): string[] {
  const lines = wrapSynopsis(left, indent);
  const last = lines.at(-1)!;
  const text = wrapText(summary, SUMMARY_COLUMN);
  if (lines.length === 1 && last.length < SUMMARY_COLUMN - 1) return [...lines.slice(0, -1), last.padEnd(SUMMARY_COLUMN) + text[0]!.trimStart(), ...text.slice(1)];
  return [...lines, ...text];
}

function optionName(name: string, o: OptionSpec): string {
  const long = `${o.short ? `-${o.short}, ` : ''}--${name}`;
  return o.type === 'string' ? `${long} ${o.valueName ?? 'VALUE'}` : long;
}

function optionHelp(o: OptionSpec): string {
  const parts = [o.help];
  if (o.multiple) parts.push('(repeatable)');
  if (o.default !== undefined && o.default !== false) parts.push(`(default: ${o.default})`);
  else if (o.defaultText !== undefined) parts.push(`(default: ${o.defaultText})`);
  return parts.join(' ');
}

function sentence(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1) + (/[.)]$/.test(s) ? '' : '.');
}

/** A synopsis wrapped at WIDTH between bracketed groups, never inside one. */
function wrapSynopsis(text: string, indent: number): string[] {
  const lead = text.length - text.trimStart().length;
  const tokens: string[] = [];
  let depth = 0;
  let current = ' '.repeat(lead);
  for (const ch of text.trimStart()) {
    if (ch === ' ' && depth === 0) {
      if (current !== '') tokens.push(current);
      current = '';
      continue;
    }
    if (ch === '[') depth++;
    if (ch === ']') depth = Math.max(0, depth - 1);
    current += ch;
  }
  tokens.push(current);
  return fill(tokens, indent);
}

/** Words wrapped at WIDTH, every line indented by `indent`. */
function wrapText(text: string, indent: number): string[] {
  return fill(text.split(' '), indent).map((l, i) => (i === 0 ? ' '.repeat(indent) + l.trimStart() : l));
}

function fill(tokens: string[], indent: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const t of tokens) {
    if (line.trim() !== '' && line.length + 1 + t.length > WIDTH) {
      lines.push(line);
      line = ' '.repeat(indent) + t;
    } else {
      line = line === '' ? t : `${line} ${t}`;
    }
  }
  lines.push(line);
  return lines;
}

/** The help as JSON: an entry with its options and subcommands, or every command for the top level. */
export function helpJson(node: CommandNode): unknown {
  const below = entriesBelow(node).filter((x) => x !== node.entry);
  if (node === ROOT) return { usage: 'weft COMMAND [options]', groups: GROUPS, commands: below.map(entryJson) };
  return { command: ['weft', ...node.words].join(' '), ...(node.entry ? entryJson(node.entry) : {}), subcommands: below.map((x) => x.id) };
}

function entryJson(e: CommandSpec): Record<string, unknown> {
  return {
    id: e.id,
    words: e.words,
    summary: e.summary,
    group: e.group,
    usage: e.usage.map((u) => formOf(u, e)).map((f) => ({ synopsis: `weft ${e.id} ${f.args}`, group: f.group, ...(f.own ? { summary: f.summary } : {}) })),
    ...(e.args ? { args: e.args } : {}),
    ...(e.afterSeparator ? { afterSeparator: e.afterSeparator } : {}),
    options: Object.entries(e.options).map(([name, o]) => ({ name, ...o })),
    ...(e.internal ? { internal: true } : {}),
    ...(e.hidden ? { hidden: true } : {}),
  };
}
