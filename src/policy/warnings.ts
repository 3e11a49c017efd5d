// Likely mistakes in a rules file that is valid (`sidewall policy check` prints them as WARNING
// and still exits 0): they are not errors because the rule means something, just probably not
// what its author meant.
//
// - What a rule block's protocol says is likely wrong in it (`ruleBlock.warnings`; e.g. the http
//   block's path globs like '/admin*' and methods that are not registered HTTP methods,
//   src/protocols/http1/rule-block.ts).
// - An empty rules file: every flow gets the defaultAction.
// - A rule no flow can reach because an earlier rule of the same list matches all it matches
//   (decided only where it is cheap to be sure: each matcher of the earlier rule is absent or
//   covers the later rule's).

import { ruleBlockOf } from '../protocols/registry.js';
import { DATAGRAM_PROTOCOLS } from './rule-schema.js';
import type { NormalizedPeer, NormalizedRule } from './schema.js';
import type { RuleIssue } from './types.js';

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function rangesCover(outer: ReadonlyArray<[number, number]>, inner: ReadonlyArray<[number, number]>): boolean {
  return inner.every(([from, to]) => outer.some(([a, b]) => a <= from && to <= b));
}

function peersCover(outer: readonly NormalizedPeer[], inner: readonly NormalizedPeer[]): boolean {
  return inner.every((p) => outer.some((q) => sameJson(p, q)));
}

const KNOWN_KEYS = new Set(['id', 'action', 'log', 'description', 'direction', 'peer', 'ports', 'protocol', 'blocks']);

/** True when every flow `later` matches is matched by `earlier` (cheap, sure cases only). */
export function covers(earlier: NormalizedRule, later: NormalizedRule): boolean {
  // Fields this check does not know (added by other features) could narrow either rule.
  if (Object.keys(earlier).some((k) => !KNOWN_KEYS.has(k)) || Object.keys(later).some((k) => !KNOWN_KEYS.has(k))) return false;
  if (earlier.direction !== undefined && (later.direction === undefined || !later.direction.every((d) => earlier.direction!.includes(d)))) return false;
  if (earlier.ports !== undefined && (later.ports === undefined || !rangesCover(earlier.ports, later.ports))) return false;
  if (earlier.peer !== undefined && (later.peer === undefined || !peersCover(earlier.peer, later.peer))) return false;
  const earlierL7 = earlier.blocks === undefined ? undefined : Object.keys(earlier.blocks)[0];
  if (earlier.protocol === undefined) {
    // Non-TCP flows: only rules naming their protocol, and deny/pass rules naming none, apply.
    if (later.protocol !== undefined && DATAGRAM_PROTOCOLS.includes(later.protocol) && earlier.action === 'allow') return false;
    return true;
  }
  if (earlier.protocol !== later.protocol) return false;
  // A flow whose protocol could not be told skips allow/pass rules with protocol matchers and
  // takes deny rules with them (decideUndetected): such a later deny still decides those.
  if (earlier.action !== 'deny' && later.action === 'deny') return false;
  if (earlierL7 === undefined) return true;
  const block = (rule: NormalizedRule): unknown => rule.blocks?.[earlierL7];
  return sameJson(block(earlier), block(later));
}

/**
 * Warnings for one list of valid, normalised rules (`raw`: the same rules as written, for the
 * indexes the user sees). RuleIssue shape; `formatWarning` prints them.
 */
export function ruleWarnings(rules: readonly NormalizedRule[], source: string, defaultAction: 'allow' | 'deny' = 'deny'): RuleIssue[] {
  const warnings: RuleIssue[] = [];
  if (rules.length === 0) {
    warnings.push({ source, index: null, field: '', message: `no rules: every flow gets the defaultAction (${defaultAction})` });
    return warnings;
  }
  rules.forEach((rule, index) => {
    const add = (field: string, message: string): void => {
      warnings.push({ source, index, id: rule.id, field, message });
    };
    for (const [key, block] of Object.entries(rule.blocks ?? {})) {
      for (const w of ruleBlockOf(key)?.warnings?.(block) ?? []) add(`${key}.${w.field}`, w.message);
    }
    for (let earlier = 0; earlier < index; earlier++) {
      const before = rules[earlier]!;
      if (!covers(before, rule)) continue;
      add('', before.action === rule.action
        ? `is never reached: rules[${earlier}] ('${before.id}') before it matches every flow it matches (with the same action, ${rule.action}); remove it or move it up`
        : `is never reached: rules[${earlier}] ('${before.id}') before it matches every flow it matches and decides ${before.action}; move this ${rule.action} rule above it or narrow rules[${earlier}]`);
      break;
    }
  });
  return warnings;
}

/** 'WARNING: FILE: rules[3].http.paths: message'. */
export function formatWarning(warning: RuleIssue): string {
  let where = warning.index === null ? '' : `rules[${warning.index}]`;
  if (warning.field !== '') where += where === '' ? warning.field : `.${warning.field}`;
  return `WARNING: ${warning.source}: ${where === '' ? '' : `${where}: `}${warning.message}`;
}
