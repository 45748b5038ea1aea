// Original file: proto/observer.proto

export const Verdict = {
  VERDICT_UNKNOWN: 'VERDICT_UNKNOWN',
  FORWARDED: 'FORWARDED',
  DROPPED: 'DROPPED',
  /**
   * Policy would have dropped it; audit mode let it through.
   */
  AUDIT: 'AUDIT',
} as const;

export type Verdict =
  | 'VERDICT_UNKNOWN'
  | 0
  | 'FORWARDED'
  | 1
  | 'DROPPED'
  | 2
  /**
   * Policy would have dropped it; audit mode let it through.
   */
  | 'AUDIT'
  | 3

export type Verdict__Output = typeof Verdict[keyof typeof Verdict]
