import { request as httpsRequest, Agent } from 'node:https';
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRuleSource } from '../../src/policy/index.js';
import { WebhookServer, createAlertWriter, defaultInjectorSettings, type AdmissionReviewResponse } from '../../injector/index.js';
import { applyReviewPatch, assertValidPod } from './helpers.js';
import { podCreateReview, replicaSetPod } from './fixtures.js';
import { createTestPki, installPair, type TestPki } from './test-pki.js';

interface Reply { status: number; body: string; serial: string }

let pki: TestPki;
let server: WebhookServer;
let liveCert: string;
let liveKey: string;
const alertLines: string[] = [];

function call(path: string, options: { method?: string; body?: string | Buffer; contentType?: string; agent?: Agent } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1', port: server.port, path, method: options.method ?? 'POST', ca: pki.caCert, servername: 'localhost',
        agent: options.agent ?? false,
        headers: options.body === undefined ? {} : { 'content-type': options.contentType ?? 'application/json', 'content-length': Buffer.byteLength(options.body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        const socket = res.socket as import('node:tls').TLSSocket;
        const serial = socket.getPeerCertificate().serialNumber ?? '';
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), serial }));
      },
    );
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

beforeAll(async () => {
  pki = createTestPki();
  const first = pki.issue('first');
  liveCert = join(pki.dir, 'tls.crt');
  liveKey = join(pki.dir, 'tls.key');
  copyFileSync(first.certFile, liveCert);
  copyFileSync(first.keyFile, liveKey);
  server = await WebhookServer.start({
    tlsCertFile: liveCert, tlsKeyFile: liveKey, port: 0, host: '127.0.0.1',
    settings: defaultInjectorSettings(), checkRules: checkRuleSource,
    alerts: createAlertWriter(new Writable({ write(chunk: Buffer, _e, done) { alertLines.push(chunk.toString()); done(); } })),
    logger: pino({ level: 'silent' }), maxBodyBytes: 1024 * 1024, certificatePollMs: 100,
  });
});

afterAll(async () => {
  await server?.close();
  if (pki !== undefined) rmSync(pki.dir, { recursive: true, force: true });
});

describe('webhook HTTPS server', () => {
  it('injects a pod over real HTTPS, verified against the test CA', async () => {
    const review = podCreateReview(replicaSetPod(), { namespace: 'shop' });
    const reply = await call('/mutate', { body: JSON.stringify(review) });
    expect(reply.status).toBe(200);
    const answer = JSON.parse(reply.body) as AdmissionReviewResponse;
    expect(answer.apiVersion).toBe('admission.k8s.io/v1');
    expect(answer.kind).toBe('AdmissionReview');
    expect(answer.response.uid).toBe((review.request as { uid: string }).uid);
    const pod = applyReviewPatch((review.request as { object: unknown }).object, answer.response);
    assertValidPod(pod);
    expect(pod.spec!.initContainers!.map((c) => c.name)).toEqual(['sidewall-init', 'sidewall-proxy']);
  });

  it('refuses a pod that adds NET_ADMIN through /mutate, with the reason kubectl shows, and writes the alert line', async () => {
    const pod = replicaSetPod();
    (pod.spec as { containers: Array<{ securityContext?: unknown }> }).containers[0]!.securityContext = { capabilities: { add: ['NET_ADMIN'] } };
    const review = podCreateReview(pod, { namespace: 'shop', user: 'dev-alice', groups: ['developers'] });
    const before = alertLines.length;
    const reply = await call('/mutate', { body: JSON.stringify(review) });
    expect(reply.status).toBe(200);
    const answer = JSON.parse(reply.body) as AdmissionReviewResponse;
    expect(answer.response).toMatchObject({ uid: (review.request as { uid: string }).uid, allowed: false, status: { code: 403, reason: 'Forbidden' } });
    expect(answer.response.patch).toBeUndefined();
    expect(answer.response.status!.message).toContain('container cart: spec.containers[0].securityContext.capabilities.add[0]: NET_ADMIN');
    const written = alertLines.slice(before).join('').trim().split('\n').map((line) => JSON.parse(line) as { alert: { kind: string }; user: string });
    expect(written.map((record) => [record.alert.kind, record.user])).toEqual([['step-around', 'dev-alice']]);
  });

  it('counts every outcome, refusing check and alert on GET /metrics', async () => {
    const guarded = replicaSetPod({ 'sidewall.io/mode': 'monitor' });
    const review = podCreateReview(guarded, { namespace: 'shop', user: 'dev-alice', groups: ['developers'] });
    expect(JSON.parse((await call('/validate', { body: JSON.stringify(review) })).body).response.allowed).toBe(false);
    const reply = await call('/metrics', { method: 'GET' });
    expect(reply.status).toBe(200);
    const value = (line: string): number => Number(new RegExp(`^${line.replace(/[{}"]/g, (c) => '\\' + c)} (\\d+)$`, 'm').exec(reply.body)?.[1] ?? NaN);
    expect(value('sidewall_webhook_admissions_total{webhook="mutate",outcome="injected"}')).toBeGreaterThanOrEqual(1);
    expect(value('sidewall_webhook_admissions_total{webhook="mutate",outcome="refused"}')).toBe(1);
    expect(value('sidewall_webhook_refusals_total{webhook="mutate",check="step-around"}')).toBe(1);
    expect(value('sidewall_webhook_refusals_total{webhook="validate",check="annotation-guard"}')).toBe(1);
    // The uninjected pod sent straight to /validate is also a step-around refusal.
    expect(value('sidewall_webhook_alerts_total{kind="step-around"}')).toBe(2);
    expect(value('sidewall_webhook_refusals_total{webhook="validate",check="step-around"}')).toBe(1);
    expect(value('sidewall_webhook_alerts_total{kind="policy-annotation-change"}')).toBe(1);
    expect(value('sidewall_webhook_admissions_total{webhook="validate",outcome="denied"}')).toBeGreaterThanOrEqual(1);
  });

  it('answers /healthz', async () => {
    const reply = await call('/healthz', { method: 'GET' });
    expect(reply).toMatchObject({ status: 200, body: 'ok\n' });
  });

  it.each([
    ['not JSON', '{"apiVersion": "admission.k8s.io/v1", kind: AdmissionReview', 400, 'SIDEWALL_ADMISSION_NOT_JSON'],
    ['a JSON array', '[1,2,3]', 400, 'SIDEWALL_ADMISSION_NOT_JSON'],
    ['the wrong kind', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'Pod', request: {} }), 400, 'SIDEWALL_ADMISSION_KIND'],
    ['AdmissionReview v1beta1', JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'u' } }), 400, 'SIDEWALL_ADMISSION_VERSION'],
    ['no request', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), 400, 'SIDEWALL_ADMISSION_FIELD'],
  ])('refuses %s with a clear HTTP error', async (_label, body, status, code) => {
    const reply = await call('/mutate', { body });
    expect(reply.status).toBe(status);
    expect((JSON.parse(reply.body) as { error: { code: string } }).error.code).toBe(code);
  });

  it('names the supported version when sent v1beta1', async () => {
    const reply = await call('/validate', { body: JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'u' } }) });
    expect(reply.body).toContain('admissionReviewVersions: [\\"v1\\"]');
  });

  it('refuses a pod CREATE without an object', async () => {
    const review = podCreateReview(replicaSetPod(), { namespace: 'shop' });
    delete (review.request as { object?: unknown }).object;
    const reply = await call('/mutate', { body: JSON.stringify(review) });
    expect(reply.status).toBe(400);
    expect(reply.body).toContain('request.object is missing');
  });

  it('refuses a huge body with 413 and keeps serving', async () => {
    const huge = Buffer.alloc(2 * 1024 * 1024, 'a');
    const reply = await call('/mutate', { body: huge });
    expect(reply.status).toBe(413);
    expect((await call('/healthz', { method: 'GET' })).status).toBe(200);
  });

  it('refuses a non-JSON content type, GET on /mutate and unknown paths', async () => {
    expect((await call('/mutate', { body: 'x', contentType: 'text/plain' })).status).toBe(415);
    expect((await call('/mutate', { method: 'GET' })).status).toBe(405);
    expect((await call('/nope', { method: 'GET' })).status).toBe(404);
  });

  it('denies an invalid rules annotation through /validate with the errors in the message', async () => {
    const review = podCreateReview(replicaSetPod({ 'sidewall.io/rules': '- id: a\n  action: allow\n  ports: 70000\n' }), { namespace: 'shop' });
    const reply = await call('/validate', { body: JSON.stringify(review) });
    const answer = JSON.parse(reply.body) as AdmissionReviewResponse;
    expect(answer.response.allowed).toBe(false);
    expect(answer.response.status!.message).toMatch(/rules\[0\]\.ports/);
  });

  it('rotates its certificate during traffic without failing a request', async () => {
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 2, ca: pki.caCert });
    const body = JSON.stringify(podCreateReview(replicaSetPod(), { namespace: 'shop' }));
    const before = await call('/healthz', { method: 'GET' });
    const serials = new Set<string>();
    const failures: string[] = [];
    let sent = 0;
    let rotating = true;
    // Two clients: one opens a fresh TLS connection per request, one reuses a kept-alive one.
    const client = async (agent: Agent | undefined): Promise<void> => {
      while (rotating) {
        sent += 1;
        try {
          const reply = await call('/mutate', { body, agent });
          if (reply.status !== 200) failures.push(`HTTP ${reply.status}`);
          serials.add(reply.serial);
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    };
    const clients = [client(undefined), client(keepAlive)];
    const issued = [pki.issue('second'), pki.issue('third')];
    // After each reload, wait until a request has been served with the new certificate and a few
    // more have gone out (events, not a fixed pause: at load 12 a 150 ms pause saw only 8 requests).
    const servedWith = (serial: string): boolean =>
      [...serials].some((seen) => seen.toUpperCase() === serial.toUpperCase());
    for (const pair of issued) {
      installPair(pair, liveCert, liveKey);
      await new Promise((resolve) => server.once('certificate-reloaded', resolve));
      const deadline = Date.now() + 30_000;
      while (!servedWith(pair.serial) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const mark = sent;
      while (sent < mark + 6 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(servedWith(pair.serial), `no request served with certificate ${pair.serial} within 30 s`).toBe(true);
    }
    rotating = false;
    await Promise.all(clients);
    keepAlive.destroy();
    if (process.env.SIDEWALL_TEST_VERBOSE) console.log({ sent, serials: [...serials] });
    expect(failures).toEqual([]);
    expect(sent).toBeGreaterThan(10);
    const after = await call('/healthz', { method: 'GET' });
    expect(after.serial).not.toBe(before.serial);
    expect(after.serial.toUpperCase()).toBe(issued[1]!.serial.toUpperCase());
    expect(serials.size).toBeGreaterThanOrEqual(2);
  });

  it('keeps the previous certificate when the new key does not match', async () => {
    const current = (await call('/healthz', { method: 'GET' })).serial;
    const fresh = pki.issue('fourth');
    const other = pki.issue('fifth');
    copyFileSync(fresh.certFile, liveCert);
    copyFileSync(other.keyFile, liveKey);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const reply = await call('/healthz', { method: 'GET' });
    expect(reply.status).toBe(200);
    expect(reply.serial).toBe(current);
  });
});
