/**
 * Kubernetes label selectors over identity labels. Selector keys are plain
 * Kubernetes keys; they match the `k8s` source of a LabelSet.
 */
import type { LabelSet } from '@weft/identity';
import type { Selector, SelectorRequirement } from './types.js';

export const EMPTY_SELECTOR: Selector = Object.freeze({ matchLabels: {}, matchExpressions: [] }) as Selector;

export function isEmptySelector(s: Selector): boolean {
  return Object.keys(s.matchLabels).length === 0 && s.matchExpressions.length === 0;
}

function requirementHolds(req: SelectorRequirement, value: string | undefined): boolean {
  switch (req.operator) {
    case 'In':
      return value !== undefined && req.values.includes(value);
    case 'NotIn':
      return value === undefined || !req.values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
  }
}

/** Whether `labels` satisfies the selector, reading keys through `get`. */
export function matchesWith(s: Selector, get: (key: string) => string | undefined): boolean {
  for (const [k, v] of Object.entries(s.matchLabels)) if (get(k) !== v) return false;
  for (const req of s.matchExpressions) if (!requirementHolds(req, get(req.key))) return false;
  return true;
}

export function matches(s: Selector, labels: LabelSet): boolean {
  return matchesWith(s, (k) => labels.get(k));
}

/** The selector's keys, for "does it mention X" checks. */
export function selectorKeys(s: Selector): string[] {
  return [...Object.keys(s.matchLabels), ...s.matchExpressions.map((e) => e.key)];
}
