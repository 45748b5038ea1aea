/**
 * A command's arguments, parsed by node:util parseArgs from the options its command-table entry
 * declares: what the help shows is what the parse accepts. Wrong use is a UsageError (exit 2) that
 * names the bad argument and points at the command's --help.
 *
 * A command adopts it with its entry: `const { values, positionals } = parseCommandArgs(COMMANDS['lab up'], argv)`;
 * `values` is typed from the entry (a string, a boolean, an array for `multiple`; `| undefined`
 * unless the option has a default). The positionals are checked against the entry's `args`.
 * `tokens` (parseArgs's, in order) serve a command whose options depend on their order.
 */
import { parseArgs } from 'node:util';
import type { CommandSpec, OptionSpec } from './command-table.js';
import { UsageError } from './output.js';

type ValueOf<O> = O extends { readonly type: 'boolean' }
  ? O extends { readonly multiple: true } ? boolean[] : boolean
  : O extends { readonly multiple: true } ? string[] : string;

/** The parsed values of an entry's options. */
export type OptionValues<Options> = {
  -readonly [K in keyof Options]: Options[K] extends { readonly default: string | boolean } ? ValueOf<Options[K]> : ValueOf<Options[K]> | undefined;
};

export type ArgToken =
  | { kind: 'option'; index: number; name: string; rawName: string; value: string | undefined; inlineValue: boolean | undefined }
  | { kind: 'positional'; index: number; value: string }
  | { kind: 'option-terminator'; index: number };

export interface ParsedCommandArgs<S extends CommandSpec> {
  values: OptionValues<S['options']>;
  positionals: string[];
  tokens: ArgToken[];
}

/** `weft lab up`: how errors and the help name a command. */
export function commandName(spec: Pick<CommandSpec, 'words'>): string {
  return ['weft', ...spec.words].join(' ');
}

export function parseCommandArgs<S extends CommandSpec>(spec: S, argv: readonly string[]): ParsedCommandArgs<S> {
  let parsed: { values: Record<string, unknown>; positionals: string[]; tokens?: ArgToken[] };
  try {
    parsed = parseArgs({ args: argv, options: parseArgsOptions(spec.options), allowPositionals: true, strict: true, tokens: true });
  } catch (err) {
    if (isParseArgsError(err)) throw usageErrorFor(spec, argv, err);
    throw err;
  }
  checkPositionals(spec, parsed.positionals);
  return { values: parsed.values as OptionValues<S['options']>, positionals: parsed.positionals, tokens: parsed.tokens ?? [] };
}

/** parseArgs's own options: the entry's without what only the help reads. */
function parseArgsOptions(options: CommandSpec['options']): Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean; default?: string | boolean }> {
  const out: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean; default?: string | boolean }> = {};
  for (const [name, o] of Object.entries(options)) {
    out[name] = { type: o.type, ...(o.short !== undefined ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}), ...(o.default !== undefined ? { default: o.default } : {}) };
  }
  return out;
}

const PARSE_ARGS_CODES = new Set(['ERR_PARSE_ARGS_UNKNOWN_OPTION', 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE', 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL']);

function isParseArgsError(err: unknown): err is Error & { code: string } {
  return err instanceof Error && PARSE_ARGS_CODES.has((err as { code?: string }).code ?? '');
}

/**
 * parseArgs's error as a usage error that names the argument: the tokens of a lenient parse show
 * which one it was.
 */
export function usageErrorFor(spec: CommandSpec, argv: readonly string[], err: Error): UsageError {
  const see = `(see ${commandName(spec)} --help)`;
  const { tokens = [] } = parseArgs({ args: argv, options: parseArgsOptions(spec.options), allowPositionals: true, strict: false, tokens: true });
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const o: OptionSpec | undefined = spec.options[t.name];
    const shown = t.rawName.startsWith('--') ? `--${t.name}` : t.rawName;
    if (!o) return new UsageError(`Unknown option ${shown} for ${commandName(spec)}${suggestion(t.name, Object.keys(spec.options))} ${see}`);
    if (o.type === 'string' && t.value === undefined) return new UsageError(`Option ${shown} needs a value${o.valueName ? ` (${o.valueName})` : ''} ${see}`);
    if (o.type === 'boolean' && t.inlineValue) return new UsageError(`Option ${shown} takes no value, not ${JSON.stringify(t.value)} ${see}`);
    if (o.type === 'string' && !t.inlineValue && t.value !== undefined && t.value.startsWith('-') && t.value.length > 1) {
      return new UsageError(`Option ${shown} would take ${JSON.stringify(t.value)} as its value, which looks like an option: write --${t.name}=${t.value} if it is the value ${see}`);
    }
  }
  return new UsageError(`${err.message} ${see}`);
}

function checkPositionals(spec: CommandSpec, positionals: string[]): void {
  const args = spec.args ?? [];
  const see = `(see ${commandName(spec)} --help)`;
  const variadic = args.at(-1)?.variadic === true;
  if (!variadic && positionals.length > args.length) {
    const extra = positionals[args.length]!;
    const takes = args.length === 0 ? 'takes no arguments' : `takes ${args.map((a) => a.name).join(' ')}`;
    throw new UsageError(`Unexpected argument ${JSON.stringify(extra)}: ${commandName(spec)} ${takes} ${see}`);
  }
  const missing = args.slice(positionals.length).filter((a) => !a.optional);
  if (missing.length > 0) throw new UsageError(`${commandName(spec)} needs ${missing.map((a) => a.name).join(' ')} ${see}`);
}

/** "; did you mean --nodes?" for a name within two edits of an option's. */
function suggestion(name: string, known: string[]): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of known) {
    const d = editDistance(name, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best === undefined ? '' : `; did you mean --${best}?`;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}
