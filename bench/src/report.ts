/** Shared benchmark plumbing: progress on stderr, one JSON result line on stdout. */

export interface Target {
  name: string;
  value: number;
  goal: string;
  met: boolean;
}

export function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export function finish(bench: string, results: Record<string, unknown>, targets: Target[]): void {
  process.stdout.write(JSON.stringify({ bench, results, targets }) + '\n');
}
