// Printing learned rules: a YAML list (default; what `rules:` or the annotation holds), JSON, the
// `sidewall.io/rules` annotation ready to paste under metadata.annotations, or a JSON merge patch
// for `kubectl patch --type merge -p` (of a pod, or with `template` of a Deployment/StatefulSet/
// DaemonSet pod template).
import { stringify } from 'yaml';
import type { LearnedRule } from './rules.js';

export type RulesFormat = 'yaml' | 'json' | 'annotation' | 'patch';
export const RULES_FORMATS: readonly RulesFormat[] = ['yaml', 'json', 'annotation', 'patch'];

export const RULES_ANNOTATION = 'sidewall.io/rules';
export const MODE_ANNOTATION = 'sidewall.io/mode';

export interface FormatOptions {
  /** Also switch the pod to protect mode (annotation and patch). */
  lock?: boolean;
  /** The patch targets a workload's pod template (spec.template.metadata) instead of a pod. */
  template?: boolean;
  /** A comment line for the YAML output (provenance of the whole set). */
  header?: string;
}

/** The rules as YAML text (a list). */
export function rulesYaml(rules: readonly LearnedRule[]): string {
  return rules.length === 0 ? '[]\n' : stringify(rules, { lineWidth: 0 });
}

export function formatRules(rules: readonly LearnedRule[], format: RulesFormat, options: FormatOptions = {}): string {
  const yamlText = rulesYaml(rules);
  switch (format) {
    case 'yaml':
      return (options.header === undefined ? '' : options.header.split('\n').map((l) => `# ${l}\n`).join('')) + yamlText;
    case 'json':
      return JSON.stringify(rules, null, 2) + '\n';
    case 'annotation': {
      const body = yamlText.trimEnd().split('\n').map((l) => `  ${l}`).join('\n');
      return `${RULES_ANNOTATION}: |\n${body}\n${options.lock ? `${MODE_ANNOTATION}: protect\n` : ''}`;
    }
    case 'patch': {
      const annotations: Record<string, string> = { [RULES_ANNOTATION]: yamlText };
      if (options.lock) annotations[MODE_ANNOTATION] = 'protect';
      const metadata = { metadata: { annotations } };
      return JSON.stringify(options.template ? { spec: { template: metadata } } : metadata) + '\n';
    }
  }
}
