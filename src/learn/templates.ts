// Template helpers for the protocols' learning (registry `learn`, protocols/plugin.ts): names
// (DNS names, SNI, hosts: labels TLD first, templated below the registrable part) and paths as
// trie parts and back into rule globs, and how specific a learned glob list is. A leaf: protocol
// folders import it without importing the model.
import type { LearnedDraft, LearnedTemplate, LearnPlugin } from '../protocols/plugin.js';
import { isUnwritableLabel, templateNameLabel, WILDCARD } from './segment-classifier.js';

export { WILDCARD, isUnwritableLabel, templateNameLabel };
export { templatePathSegment } from './segment-classifier.js';
export { MAX_PATH_DEPTH, pathSegments } from './path-template.js';

/** Second-level labels under which a ccTLD sells names (example.co.uk): the registrable name is one label deeper. */
const SECOND_LEVEL = new Set(['co', 'com', 'net', 'org', 'gov', 'edu', 'ac', 'or', 'ne', 'go']);

/** Depth (in labels, TLD first) of a name's registrable part; labels at or past it may be templated. */
export function registrableDepth(reversed: readonly string[]): number {
  if (reversed[0] === 'local' && reversed[1] === 'cluster' && reversed[2] === 'svc') return 4; // <service>.<namespace>.svc.cluster.local
  if (reversed.length > 2 && reversed[0]!.length === 2 && SECOND_LEVEL.has(reversed[1]!)) return 3;
  return 2;
}

/** A DNS name, SNI or host as trie parts (TLD first), variable labels templated; null when unusable. */
export function nameParts(name: string): string[] | null {
  const lower = name.toLowerCase().replace(/\.$/, '');
  if (lower === '') return null;
  const labels = lower.split('.');
  if (labels.some((l) => l === '')) return null;
  const reversed = labels.reverse();
  const depth = registrableDepth(reversed);
  return reversed.map((label, i) => (i >= depth ? templateNameLabel(label) : isUnwritableLabel(label) ? WILDCARD : label));
}

/** Trie parts back to a name glob: ['com', 'example', '*'] → '*.example.com'; deep → '**.example.com'. */
export function nameGlob(parts: readonly string[], deep: boolean): string {
  const name = [...parts].reverse().join('.');
  if (!deep) return name === '' ? '**' : name;
  return name === '' ? '**' : `**.${name}`;
}

/** Trie parts back to a path glob: ['api', '*'] → '/api/*'; deep → '/api/**'. */
export function pathGlob(parts: readonly string[], deep: boolean): string {
  const path = '/' + parts.join('/');
  if (!deep) return path;
  return parts.length === 0 ? '/**' : `${path}/**`;
}

/** Fewer wildcards and more literal characters make a glob more specific. */
export function globSpecificity(globs: readonly string[]): number {
  let score = 0;
  for (const glob of globs) {
    const wild = (glob.match(/\*/g) ?? []).length;
    score += glob.length - wild * 8;
  }
  return globs.length === 0 ? 0 : score / globs.length;
}

/** Count and first/last seen of some templates together. */
export function sumStats(list: readonly LearnedTemplate[]): { count: number; first: number; last: number } {
  let count = 0;
  let first = Number.POSITIVE_INFINITY;
  let last = 0;
  for (const e of list) {
    count += e.count;
    if (e.first < first) first = e.first;
    if (e.last > last) last = e.last;
  }
  return { count, first, last };
}

/**
 * The simplest learning: each request record is one template (`parts`, e.g. [verb, key prefix]),
 * and all of an entry's templates become one rule block (`block`: the parts, '*' where values
 * varied). The connections are learned from their requests.
 */
export function templateLearning(key: string, parts: (l7: Readonly<Record<string, unknown>>) => readonly string[] | null, block: (templates: ReadonlyArray<readonly string[]>) => Record<string, unknown>): LearnPlugin {
  return {
    observe: (record, _family, into) => {
      if (record.type !== 'request') return;
      const p = parts(record.l7);
      if (p === null || p.length === 0) into.drop();
      else into.template('templates', p);
    },
    rules: (entry) => {
      const templates = entry.templates('templates');
      if (templates.length === 0) return [];
      const value = block(templates.map((e) => (e.deep ? [...e.parts, WILDCARD] : e.parts)));
      const draft: LearnedDraft = { protocol: entry.family, block: { key, value }, specificity: 100, unit: 'requests', ...sumStats(templates) };
      return [draft];
    },
  };
}
