/** Command output: a table for people, or JSON (`-o json`) for scripts. */
import { WeftError } from '@weft/common';

export type OutputFormat = 'table' | 'json';

export function parseFormat(value: string | undefined): OutputFormat {
  if (value === undefined || value === 'table' || value === 'wide') return 'table';
  if (value === 'json') return 'json';
  throw new UsageError(`Invalid output format ${JSON.stringify(value)}: use "table" or "json"`);
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function printTable(headers: string[], rows: Array<Array<string | number>>): void {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  for (const row of cells) process.stdout.write(row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ') + '\n');
}

/** Wrong command-line use; exits 2 with the message. */
export class UsageError extends Error {
  readonly code = 'WEFT_ERR_USAGE';
}

export function progress(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** Ends a failed command: the message (and its code) on stderr; exit 2 for wrong use, else 1. */
export function exitOnError(err: unknown): never {
  const e = err as Error & { code?: string };
  const usage = err instanceof UsageError || e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL';
  const code = err instanceof WeftError || err instanceof UsageError ? ` [${e.code}]` : '';
  process.stderr.write(`weft: ${e.message}${code}\n`);
  process.exit(usage ? 2 : 1);
}
