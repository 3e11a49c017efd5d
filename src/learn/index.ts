// Learning mode (issue 9): a bounded model of observed traffic, rules generated from it, and the
// drift lock that turns denials of unlearned behaviour into alerts with the rule to accept.
export { LearnModel, DEFAULT_LEARN_LIMITS, peerOf, type LearnLimits, type LearnedPeer, type ModelState, type ObservedRecord } from './model.js';
export { generateRules, suggestRule, type LearnedRule } from './rules.js';
export { formatRules, rulesYaml, RULES_FORMATS, type FormatOptions, type RulesFormat } from './format.js';
export { Learner, newBehaviourAlert, type LearnerOptions, type LearnerStatus, type LearnModelReport } from './learner.js';
export { templatePath, pathSegments } from './path-template.js';
export { isVariableSegment } from './segment-classifier.js';
export { readModelSources, fetchModel, type ModelSource } from './sources.js';
export { LearnStateError, FlowLineError, LearnFetchError } from './errors.js';
