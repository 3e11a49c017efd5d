// The rules engine: schema validation, compilation and evaluation of the two rule tiers.
export type {
  CompiledPolicy, Decision, Direction, Endpoint, FlowFacts, L7Facts, Mode, RuleAction, RuleIssue, Tier, Workload,
} from './types.js';
export { checkRuleSource, formatIssue, parseRuleText, readRuleSource, type CheckOptions } from './source.js';
export { PROTOCOLS, validateRuleList, type NormalizedRule } from './schema.js';
