// The rules engine: schema validation, compilation and evaluation of the two rule tiers.
// Semantics of matchers and globs are documented in compile.ts, glob.ts and schema.ts.
export type {
  CompiledPolicy, DatagramFacts, Decision, Direction, Endpoint, FlowFacts, L7Facts, Mode, RuleAction, RuleIssue, ServiceDestination, ServiceEndpoint, ServiceRef, Tier, Workload,
} from './types.js';
export { checkRuleSource, formatIssue, parseRuleText, readRuleSource, type CheckOptions } from './source.js';
export { DATAGRAM_PROTOCOLS, NON_TCP_DEFAULT_ID, PROTOCOLS, RULE_PROTOCOLS, validateRuleList, type NormalizedRule } from './schema.js';
export { compilePolicy, policyHash, type CompileInput } from './compile.js';
export { normalizeHost, normalizePath } from './glob.js';
