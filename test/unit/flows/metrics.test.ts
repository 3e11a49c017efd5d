import { describe, expect, it } from 'vitest';
import { createFlowPipeline } from '../../../src/flows/index.js';
import { metrics, metricsText, registry } from '../../../src/metrics/index.js';
import { draftFor, testPod } from './fixtures.js';

async function value(name: string, labels: Record<string, string>): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`no metric ${name}`);
  const data = await metric.get();
  const sample = data.values.find((v) => Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l));
  return sample?.value ?? 0;
}

describe('metrics', () => {
  it('exposes every metric the issue asks for in the Prometheus text format', async () => {
    metrics.policyReloads.inc({ result: 'success' });
    metrics.parserErrors.inc({ protocol: 'http', code: 'SW_HTTP_BAD_HEADER' });
    metrics.activeConnections.inc({ direction: 'ingress' });
    const pipeline = createFlowPipeline({ pod: testPod, stdout: false, ringSize: 0 });
    for (let i = 0; i < 8; i++) pipeline.emit(draftFor(i));
    await pipeline.close();
    const text = await metricsText();
    for (const name of [
      'sidewall_connections_total',
      'sidewall_requests_total',
      'sidewall_denials_total',
      'sidewall_bytes_total',
      'sidewall_active_connections',
      'sidewall_tunnel_detections_total',
      'sidewall_policy_reloads_total',
      'sidewall_parser_errors_total',
      'sidewall_flow_records_total',
      'sidewall_flow_export_queue_depth',
      'sidewall_flow_export_sent_total',
      'sidewall_flow_export_dropped_total',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    expect(text).toMatch(/sidewall_parser_errors_total\{protocol="http",code="SW_HTTP_BAD_HEADER"\} 1/);
  });

  it('counts connections, requests, denials, tunnels and bytes from records, once each', async () => {
    const before = {
      requestsDenied: await value('sidewall_requests_total', { direction: 'ingress', protocol: 'http', verdict: 'denied' }),
      denyAdmin: await value('sidewall_denials_total', { rule: 'deny-admin', verdict: 'denied' }),
      ssh: await value('sidewall_tunnel_detections_total', { kind: 'ssh', blocked: 'true' }),
      connections: await value('sidewall_connections_total', { direction: 'egress', protocol: 'tcp', verdict: 'allowed' }),
      sent: await value('sidewall_bytes_total', { direction: 'egress', dir: 'sent' }),
    };
    const pipeline = createFlowPipeline({ pod: testPod, stdout: false, ringSize: 0 });
    pipeline.emit({ ...draftFor(1), direction: 'ingress' }); // denied http request, rule deny-admin
    pipeline.emit({ ...draftFor(2) }); // alert: ssh tunnel, blocked
    const connection = { ...draftFor(3), direction: 'egress' as const, verdict: 'allowed' as const, flowId: 'long' };
    pipeline.emit({ ...connection, interim: true, bytes: { sent: 1000, received: 0 } });
    pipeline.emit({ ...connection, interim: true, bytes: { sent: 1500, received: 0 } });
    pipeline.emit({ ...connection, bytes: { sent: 4000, received: 0 }, reason: 'fin' });
    await pipeline.close();

    expect(await value('sidewall_requests_total', { direction: 'ingress', protocol: 'http', verdict: 'denied' })).toBe(before.requestsDenied + 1);
    expect(await value('sidewall_denials_total', { rule: 'deny-admin', verdict: 'denied' })).toBe(before.denyAdmin + 1);
    expect(await value('sidewall_tunnel_detections_total', { kind: 'ssh', blocked: 'true' })).toBe(before.ssh + 1);
    // Two interim records and the final one: one connection, 4000 bytes (not 1000+1500+4000).
    expect(await value('sidewall_connections_total', { direction: 'egress', protocol: 'tcp', verdict: 'allowed' })).toBe(before.connections + 1);
    expect(await value('sidewall_bytes_total', { direction: 'egress', dir: 'sent' })).toBe(before.sent + 4000);
  });
});
