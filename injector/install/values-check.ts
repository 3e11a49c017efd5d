// Chart values checked the way `helm install` checks them against values.schema.json, plus what
// JSON Schema cannot say: rule ids unique across both tiers, an L7 block that fits its protocol
// (the rule validator's cross-field checks). `sidewall manifests` and `sidewall check` refuse
// values with any problem, printing each as 'values: PATH: message'.

import { validateRuleList } from '../../src/policy/schema.js';
import type { RuleIssue } from '../../src/policy/types.js';
import { compileSchema, type CompiledSchema } from '../../src/schema/validator.js';
import { CHART_FORMATS, chartValuesSchema } from './values-schema.js';

let validator: CompiledSchema | undefined;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Every problem with the (merged) chart values, as 'PATH: message'; [] when they install. */
export function chartValuesProblems(values: unknown): string[] {
  validator ??= compileSchema(chartValuesSchema(), { formats: CHART_FORMATS });
  const problems = validator.issues(values).map((issue) => `${issue.field === '' ? '(values)' : issue.field}: ${issue.message}`);
  if (problems.length > 0 || !isRecord(values)) return problems;
  // The schema passed: the rules' cross-field checks, ids unique across both tiers.
  const issues: RuleIssue[] = [];
  const cluster = validateRuleList(values.clusterRules ?? [], 'clusterRules', 'cluster', issues);
  const sidecar = isRecord(values.sidecar) && isRecord(values.sidecar.config) ? values.sidecar.config : {};
  validateRuleList(sidecar.rules ?? [], 'sidecar.config.rules', 'workload', issues);
  const clusterIds = new Map(cluster.rules.map((rule, index) => [rule.id, index]));
  (Array.isArray(sidecar.rules) ? sidecar.rules : []).forEach((rule: unknown, index) => {
    const id = isRecord(rule) ? rule.id : undefined;
    const other = typeof id === 'string' ? clusterIds.get(id) : undefined;
    if (other !== undefined) issues.push({ source: 'sidecar.config.rules', index, field: 'id', message: `'${String(id)}' is also clusterRules[${other}]; ids must be unique across both tiers` });
  });
  return issues.map((issue) => `${issue.source}${issue.index === null ? '' : `[${issue.index}]`}${issue.field === '' ? '' : `.${issue.field}`}: ${issue.message}`);
}
