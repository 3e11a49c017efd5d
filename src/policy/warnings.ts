// Likely mistakes in a rules file that is valid (`sidewall policy check` prints them as WARNING
// and still exits 0): they are not errors because the rule means something, just probably not
// what its author meant.
//
// - A path glob like '/admin*': '*' stays within one segment (glob.ts), so it matches '/admin'
//   and '/admin-panel' but not '/admin/users'. Istio and many routers read a trailing '*' as a
//   prefix; a deny rule written that way leaves the subtree open.
// - A method that is not a registered HTTP method ('GTE'): no client sends it, so the rule never
//   matches (IANA HTTP Method Registry, RFC 9110 §9 and the WebDAV/extension methods).
// - An empty rules file: every flow gets the defaultAction.
// - A rule no flow can reach because an earlier rule of the same list matches all it matches
//   (decided only where it is cheap to be sure: each matcher of the earlier rule is absent or
//   covers the later rule's).

import { DATAGRAM_PROTOCOLS, RULE_BLOCKS } from './rule-schema.js';
import type { NormalizedPeer, NormalizedRule } from './schema.js';
import type { RuleIssue } from './types.js';

/** IANA HTTP Method Registry (https://www.iana.org/assignments/http-methods), plus PURGE and M-SEARCH seen in the wild. */
export const KNOWN_HTTP_METHODS: ReadonlySet<string> = new Set([
  'ACL', 'BASELINE-CONTROL', 'BIND', 'CHECKIN', 'CHECKOUT', 'CONNECT', 'COPY', 'DELETE', 'GET', 'HEAD', 'LABEL', 'LINK', 'LOCK',
  'MERGE', 'MKACTIVITY', 'MKCALENDAR', 'MKCOL', 'MKREDIRECTREF', 'MKWORKSPACE', 'MOVE', 'OPTIONS', 'ORDERPATCH', 'PATCH', 'POST',
  'PRI', 'PROPFIND', 'PROPPATCH', 'PUT', 'QUERY', 'REBIND', 'REPORT', 'SEARCH', 'TRACE', 'UNBIND', 'UNCHECKOUT', 'UNLINK', 'UNLOCK',
  'UPDATE', 'UPDATEREDIRECTREF', 'VERSION-CONTROL', 'PURGE', 'M-SEARCH', 'NOTIFY', 'SUBSCRIBE', 'UNSUBSCRIBE',
]);
const COMMON_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];

function closeTo(word: string, candidates: readonly string[]): string | undefined {
  // Same letters in another order (GTE → GET), or one letter off (PSOT, PUTT).
  const sorted = [...word].sort().join('');
  for (const c of candidates) if ([...c].sort().join('') === sorted) return c;
  for (const c of candidates) {
    if (Math.abs(c.length - word.length) > 1) continue;
    let i = 0;
    while (i < c.length && c[i] === word[i]) i++;
    const rest = (a: string, b: string): boolean => a.slice(i + 1) === b.slice(i + 1) || a.slice(i + 1) === b.slice(i) || a.slice(i) === b.slice(i + 1);
    if (rest(c, word)) return c;
  }
  return undefined;
}

/** '/admin*' → '/admin/**': a glob ending in a '*' that is not a whole segment. */
function segmentStarTrap(glob: string): string | null {
  if (!glob.endsWith('*') || glob.endsWith('**') || glob.endsWith('/*')) return null;
  const stem = glob.slice(0, -1);
  if (stem.includes('*')) return null;
  return `${stem}/**`;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function rangesCover(outer: ReadonlyArray<[number, number]>, inner: ReadonlyArray<[number, number]>): boolean {
  return inner.every(([from, to]) => outer.some(([a, b]) => a <= from && to <= b));
}

function peersCover(outer: readonly NormalizedPeer[], inner: readonly NormalizedPeer[]): boolean {
  return inner.every((p) => outer.some((q) => sameJson(p, q)));
}

const L7_KEYS = Object.keys(RULE_BLOCKS);
const KNOWN_KEYS = new Set(['id', 'action', 'log', 'description', 'direction', 'peer', 'ports', 'protocol', ...L7_KEYS]);

/** True when every flow `later` matches is matched by `earlier` (cheap, sure cases only). */
export function covers(earlier: NormalizedRule, later: NormalizedRule): boolean {
  // Fields this check does not know (added by other features) could narrow either rule.
  if (Object.keys(earlier).some((k) => !KNOWN_KEYS.has(k)) || Object.keys(later).some((k) => !KNOWN_KEYS.has(k))) return false;
  if (earlier.direction !== undefined && (later.direction === undefined || !later.direction.every((d) => earlier.direction!.includes(d)))) return false;
  if (earlier.ports !== undefined && (later.ports === undefined || !rangesCover(earlier.ports, later.ports))) return false;
  if (earlier.peer !== undefined && (later.peer === undefined || !peersCover(earlier.peer, later.peer))) return false;
  const earlierL7 = L7_KEYS.find((k) => (earlier as unknown as Record<string, unknown>)[k] !== undefined);
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
  const block = (rule: NormalizedRule): unknown => (rule as unknown as Record<string, unknown>)[earlierL7];
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
    const paths = rule.http?.paths ?? [];
    for (const path of paths) {
      const subtree = segmentStarTrap(path);
      if (subtree === null || paths.includes(subtree)) continue;
      add('http.paths', `'${path}' matches '${path.slice(0, -1)}' and '${path.slice(0, -1)}-x' but not '${path.slice(0, -1)}/x': '*' stays within one path segment; for the subtree write '${subtree}' (as well)`);
    }
    for (const method of rule.http?.methods ?? []) {
      if (KNOWN_HTTP_METHODS.has(method) || method === '*') continue;
      const guess = closeTo(method, COMMON_METHODS);
      add('http.methods', `'${method}' is not a registered HTTP method, so no request will match it${guess === undefined ? '' : ` (did you mean '${guess}'?)`}`);
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
