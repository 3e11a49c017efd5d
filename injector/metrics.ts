// The webhook's Prometheus metrics (GET /metrics on its HTTPS port): a counter for every outcome
// of both webhooks, for every check that refused, and for every alert record written. A registry
// of its own: the webhook process never runs the sidecar's metrics.
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';

export type RefusingCheck = 'step-around' | 'annotation-guard' | 'annotations';

export interface WebhookMetrics {
  readonly registry: Registry;
  /** webhook: mutate | validate; outcome: injected, skipped, ignored, refused (mutate), allowed, denied (validate). */
  readonly admissions: Counter<'webhook' | 'outcome'>;
  readonly refusals: Counter<'webhook' | 'check'>;
  readonly alerts: Counter<'kind'>;
}

export function createWebhookMetrics(options: { processMetrics?: boolean } = {}): WebhookMetrics {
  const registry = new Registry();
  if (options.processMetrics === true) collectDefaultMetrics({ register: registry, prefix: 'sidewall_webhook_' });
  return {
    registry,
    admissions: new Counter({ name: 'sidewall_webhook_admissions_total', help: 'Admission reviews answered, by webhook and outcome.', labelNames: ['webhook', 'outcome'], registers: [registry] }),
    refusals: new Counter({
      name: 'sidewall_webhook_refusals_total',
      help: 'Refusals by the check that refused: step-around (ways around the sidecar), annotation-guard (policy annotations set by someone not allowed), annotations (invalid rules or knobs).',
      labelNames: ['webhook', 'check'],
      registers: [registry],
    }),
    alerts: new Counter({ name: 'sidewall_webhook_alerts_total', help: 'Alert records written, by kind.', labelNames: ['kind'], registers: [registry] }),
  };
}
