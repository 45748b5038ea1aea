/**
 * The one exponential backoff used everywhere in Weft: full jitter around an
 * exponentially growing base, capped at `maxMs`, so that a fleet of agents
 * reconnecting to one etcd spreads out instead of arriving in waves.
 */
export interface BackoffOptions {
  /** First delay, in milliseconds. Default 50. */
  initialMs?: number;
  /** Upper bound of any delay, in milliseconds. Default 5000. */
  maxMs?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /** Fraction of each delay that is randomised, 0..1. Default 0.5. */
  jitter?: number;
  /** Random source in [0,1), replaceable for tests. */
  random?: () => number;
}

export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly jitter: number;
  private readonly random: () => number;
  private attempt = 0;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 50;
    this.maxMs = options.maxMs ?? 5000;
    this.factor = options.factor ?? 2;
    this.jitter = Math.min(1, Math.max(0, options.jitter ?? 0.5));
    this.random = options.random ?? Math.random;
  }

  /** The delay before the next attempt; each call grows the base. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * this.factor ** this.attempt);
    this.attempt++;
    const spread = base * this.jitter;
    return Math.round(base - spread + this.random() * spread);
  }

  /** Number of delays handed out since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** Call after a success so the next failure starts small again. */
  reset(): void {
    this.attempt = 0;
  }
}
