// Rule sources: YAML 1.2 (https://yaml.org/spec/1.2.2/) or JSON text, which YAML 1.2 contains.
// Parsing never throws: syntax errors come back as RuleIssues with line and column.

import { parseDocument } from 'yaml';
import { isPlainObject, unknownKeyMessage, validateRuleList, type NormalizedRule } from './schema.js';
import type { RuleIssue, Tier } from './types.js';

/**
 * Keys a rules document may have when it is a mapping: `rules`, or a whole sidecar config (the
 * config's keys: src/config/load.ts TOP_KEYS; a test keeps the two equal).
 */
export const RULE_DOCUMENT_KEYS = [
  'rules', 'mode', 'defaultAction', 'onParseError', 'ports', 'tunnels', 'clusterRules', 'podInfo', 'identities', 'services', 'export', 'proxy', 'learn', 'identity', 'admin', 'http', 'capture', 'dlp',
];

export type ParsedText = { ok: true; value: unknown } | { ok: false; issues: RuleIssue[] };

/** Parses YAML or JSON text to plain data; duplicate keys and aliases bombs are errors. */
export function parseRuleText(text: string, source: string): ParsedText {
  try {
    const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true, strict: true });
    if (doc.errors.length > 0) {
      return {
        ok: false,
        issues: doc.errors.map((error) => ({
          source,
          index: null,
          field: '',
          message: `not valid YAML or JSON: ${(error.message.split('\n')[0] ?? '').replace(/:$/, '')}`,
        })),
      };
    }
    return { ok: true, value: doc.toJS({ maxAliasCount: 100 }) as unknown };
  } catch (error) {
    // toJS throws on alias expansion limits and similar; the text is still the user's problem.
    return { ok: false, issues: [{ source, index: null, field: '', message: `not valid YAML or JSON: ${error instanceof Error ? error.message : String(error)}` }] };
  }
}

export interface CheckOptions {
  /** 'workload' (default; the sidewall.io/rules annotation) or 'cluster' (allows action pass). */
  tier?: Tier;
}

/** Parses and validates a rules text; returns the normalised rules or every issue. */
export function readRuleSource(text: string, source: string, options: CheckOptions = {}): { rules: NormalizedRule[]; issues: RuleIssue[] } {
  const parsed = parseRuleText(text, source);
  if (!parsed.ok) return { rules: [], issues: parsed.issues };
  const issues: RuleIssue[] = [];
  if (isPlainObject(parsed.value)) {
    for (const key of Object.keys(parsed.value)) {
      if (!RULE_DOCUMENT_KEYS.includes(key)) issues.push({ source, index: null, field: key, message: unknownKeyMessage(key, RULE_DOCUMENT_KEYS) });
    }
  }
  return validateRuleList(parsed.value, source, options.tier ?? 'workload', issues);
}

/**
 * Validates rules given as YAML or JSON text (a list, `{rules: [...]}`, or a sidecar config).
 * Returns [] when valid. Never throws. `source` names the text in every issue.
 */
export function checkRuleSource(text: string, source: string, options: CheckOptions = {}): RuleIssue[] {
  try {
    return readRuleSource(text, source, options).issues;
  } catch (error) {
    return [{ source, index: null, field: '', message: `could not be checked: ${error instanceof Error ? error.message : String(error)}` }];
  }
}

/** 'FILE: rules[3].peer.cidr: message' (the format of `sidewall policy check`). */
export function formatIssue(issue: RuleIssue): string {
  let where = issue.index === null ? '' : `rules[${issue.index}]`;
  if (issue.field !== '') where += where === '' ? issue.field : `.${issue.field}`;
  return where === '' ? `${issue.source}: ${issue.message}` : `${issue.source}: ${where}: ${issue.message}`;
}
