// JSON Schema building blocks of rule blocks, shared by the built-in blocks (policy/rule-schema.ts)
// and those protocol folders add (protocols/<name>/index.ts `ruleBlock`). A leaf: it imports no
// rules and no protocols, so a protocol folder can use it without an import cycle.
import type { JsonSchema } from './validator.js';

/** RFC 9110 token: HTTP methods and header names. */
export const TOKEN = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

/** A value or a non-empty list of them; if/then/else so errors come from one branch only. */
export function oneOrList(item: JsonSchema, emptyMessage?: string): JsonSchema {
  const list: JsonSchema = { type: 'array', minItems: 1, items: item };
  if (emptyMessage !== undefined) list['x-messages'] = { minItems: emptyMessage };
  return { if: { type: 'array' }, then: list, else: item };
}

/** A string schema with extra keywords. */
export const str = (extra: JsonSchema = {}): JsonSchema => ({ type: 'string', ...extra });

/** A block's schema: a mapping of the given fields (or empty: `http:` alone matches any request). */
export function blockSchema(name: string, properties: Record<string, JsonSchema>): JsonSchema {
  return {
    type: ['object', 'null'],
    additionalProperties: false,
    properties,
    'x-messages': { type: `must be a mapping with ${Object.keys(properties).join(', ')}, not {describe}` },
    description: `The ${name} block of a rule.`,
  };
}

function asList(value: unknown): string[] {
  return Array.isArray(value) ? (value as string[]) : [value as string];
}

/** Lists normalised and deduplicated; `fold` per key (e.g. upper-case methods). */
export function normalizeLists(block: Record<string, unknown>, fold: Record<string, (s: string) => string> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(block)) {
    if (value === undefined) continue;
    if (typeof value === 'string' || Array.isArray(value)) {
      const f = fold[key];
      out[key] = [...new Set(asList(value).map((s) => (f === undefined ? s : f(s))))];
    } else out[key] = value;
  }
  return out;
}
