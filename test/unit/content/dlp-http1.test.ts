// HTTP/1 DLP enforcement without sockets: a card in a request body never lets the body complete
// at the server (whatever the chunking), the client gets 403 naming the sensor; a response
// carrying an SSN is cut; alert mode only records; rules' `dlp` matchers and `dlp: []`.
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DlpEngine, DEFAULT_DLP, type DlpSettings } from '../../../src/content/dlp/index.js';
import { ConnectionFilter } from '../../../src/enforcement/connection-filter.js';
import { filterFor, RecordingSink as Sink, split } from '../enforcement/filter-fixture.js';
import { compilePolicy, type CompiledPolicy } from '../../../src/policy/index.js';

function policyOf(rules: unknown[], mode: 'protect' | 'monitor' = 'protect', cluster: unknown[] = []): CompiledPolicy {
  const r = compilePolicy({ clusterRules: cluster, workloadRules: rules, defaultAction: 'allow', mode });
  if (!('policy' in r)) throw new Error(JSON.stringify(r.issues));
  return r.policy;
}

function filterWith(sink: Sink, policy: CompiledPolicy, settings: Partial<DlpSettings> = {}): ConnectionFilter {
  const dlp = new DlpEngine({ ...DEFAULT_DLP, sensors: ['pci-pan', 'us-ssn'], patterns: [], action: 'block', ...settings });
  return filterFor(sink, policy, 80, dlp);
}

const CARD = '4111 1111 1111 1111';
const post = (body: Buffer | string, extra = '') => Buffer.concat([Buffer.from(`POST /pay HTTP/1.1\r\nhost: shop\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n`), Buffer.from(body)]);
const chunked = (parts: string[]) => Buffer.from(`POST /pay HTTP/1.1\r\nhost: shop\r\ntransfer-encoding: chunked\r\n\r\n${parts.map((p) => `${p.length.toString(16)}\r\n${p}\r\n`).join('')}0\r\n\r\n`);

describe('HTTP/1 DLP', () => {
  it('a card in the body: the server never gets the whole body, the client gets 403 naming the sensor (any chunking, plain/chunked/gzip)', () => {
    const padding = 'x'.repeat(3000);
    const bodies: Array<[string, Buffer]> = [
      ['length', post(`{"note":"${padding}","card":"${CARD}","tail":"${padding}"}`)],
      ['chunked', chunked([`{"note":"${padding}","ca`, `rd":"4111 1111 `, `1111 1111","tail":"${padding}"}`])],
      ['gzip', post(gzipSync(`{"note":"${padding}","card":"${CARD}","tail":"${padding}"}`), 'content-encoding: gzip\r\n')],
    ];
    fc.assert(
      fc.property(fc.constantFrom(...bodies), fc.array(fc.nat(), { maxLength: 20 }), ([, bytes], cuts) => {
        const sink = new Sink();
        const filter = filterWith(sink, policyOf([]));
        for (const chunk of split(bytes, cuts)) filter.clientData(chunk);
        const atServer = Buffer.concat(sink.server);
        expect(atServer.length).toBeLessThan(bytes.length);
        expect(atServer.toString('latin1')).not.toContain(CARD);
        expect(Buffer.concat(sink.client).toString()).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n[^]*x-sidewall-rule: dlp:pci-pan\r\n/);
        expect(sink.closed).toBe('reset-server:denied');
        expect(sink.dlp.map((a) => [a.hit.sensor, a.hit.where, a.blocked, a.decision.ruleId])).toEqual([['pci-pan', 'request-body', true, 'dlp:pci-pan']]);
        expect(JSON.stringify(sink.dlp)).not.toContain('1111 1111 1111');
        expect(sink.outcomes.map((o) => [o.decision.ruleId, o.l7.status])).toEqual([['dlp:pci-pan', 403]]);
      }),
      { numRuns: 300 },
    );
  });

  it('a card that ends exactly where a read ends is held until the next read decides it (the server never gets it)', () => {
    const bytes = post(`{"note":"${'x'.repeat(3000)}","card":"${CARD}","tail":"${'y'.repeat(3000)}"}`);
    const end = bytes.indexOf(CARD) + CARD.length;
    for (const cut of [end - 1, end, end + 1]) {
      const sink = new Sink();
      const filter = filterWith(sink, policyOf([]));
      filter.clientData(bytes.subarray(0, cut));
      filter.clientData(bytes.subarray(cut));
      expect(Buffer.concat(sink.server).toString('latin1'), String(cut - end)).not.toContain(CARD);
      expect(sink.closed).toBe('reset-server:denied');
    }
    // A 16-digit card whose next byte makes it 17 digits is no card: held, then released whole.
    const sink = new Sink();
    const filter = filterWith(sink, policyOf([]));
    const seventeen = post('n=41111111111111111&x=1'); // not a field named as an id: that would decide it at once
    const at = seventeen.indexOf('41111111111111111') + 16;
    filter.clientData(seventeen.subarray(0, at));
    expect(Buffer.concat(sink.server).length).toBeLessThan(at);
    filter.clientData(seventeen.subarray(at));
    expect(Buffer.concat(sink.server)).toEqual(seventeen);
    expect(sink.dlp).toEqual([]);
  });

  it('query string and headers are checked before anything reaches the server', () => {
    const sink = new Sink();
    const filter = filterWith(sink, policyOf([]));
    filter.clientData(Buffer.from('GET /lookup?ssn=536-22-1234 HTTP/1.1\r\nhost: shop\r\n\r\n'));
    expect(sink.server).toEqual([]);
    expect(Buffer.concat(sink.client).toString()).toContain('x-sidewall-rule: dlp:us-ssn');
    expect(sink.dlp[0]!.hit).toMatchObject({ sensor: 'us-ssn', where: 'query', sample: '***-**-1234' });
  });

  it('a response carrying an SSN is cut: none of that read reaches the client, both sides reset', () => {
    const sink = new Sink();
    const filter = filterWith(sink, policyOf([]));
    filter.clientData(Buffer.from('GET /profile HTTP/1.1\r\nhost: shop\r\n\r\n'));
    expect(Buffer.concat(sink.server).toString()).toContain('GET /profile');
    const body = `{"name":"Ann","pad":"${'y'.repeat(2000)}","ssn":"536-22-1234"}`;
    const response = Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    filter.serverData(response.subarray(0, 1500));
    filter.serverData(response.subarray(1500));
    const atClient = Buffer.concat(sink.client).toString();
    expect(atClient).not.toContain('536-22-1234');
    expect(atClient.length).toBeLessThan(response.length);
    expect(sink.closed).toBe('reset:dlp');
    expect(sink.dlp.map((a) => [a.hit.sensor, a.hit.where, a.blocked])).toEqual([['us-ssn', 'response-body', true]]);
  });

  it('trailer fields (RFC 9112 §7.1.2): a card in a request trailer never reaches the server, split anywhere; an SSN in a response trailer never reaches the client', () => {
    const request = Buffer.from(`POST /pay HTTP/1.1\r\nhost: shop\r\ntransfer-encoding: chunked\r\ntrailer: x-card\r\n\r\n5\r\nhello\r\n0\r\nx-card: ${CARD}\r\n\r\n`);
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 12 }), (cuts) => {
        const sink = new Sink();
        const filter = filterWith(sink, policyOf([]));
        for (const chunk of split(request, cuts)) filter.clientData(chunk);
        const atServer = Buffer.concat(sink.server).toString('latin1');
        expect(atServer).not.toContain(CARD);
        expect(atServer).not.toContain('x-card: 4'); // the unfinished line is held from its start: not even the first digit
        expect(Buffer.concat(sink.client).toString()).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n[^]*x-sidewall-rule: dlp:pci-pan\r\n/);
        expect(sink.dlp.map((a) => [a.hit.sensor, a.hit.where, a.hit.field, a.blocked])).toEqual([['pci-pan', 'header', 'x-card', true]]);
      }),
      { numRuns: 200 },
    );
    const sink = new Sink();
    const filter = filterWith(sink, policyOf([]));
    filter.clientData(Buffer.from('GET /profile HTTP/1.1\r\nhost: shop\r\n\r\n'));
    const response = Buffer.from('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nokay\r\n0\r\nx-ssn: 536-22-1234\r\n\r\n');
    const at = response.indexOf('x-ssn');
    filter.serverData(response.subarray(0, at + 12));
    filter.serverData(response.subarray(at + 12));
    const atClient = Buffer.concat(sink.client).toString();
    expect(atClient).toContain('okay');
    expect(atClient).not.toContain('536-22');
    expect(sink.closed).toBe('reset:dlp');
    expect(sink.dlp.map((a) => [a.hit.sensor, a.hit.where, a.hit.field])).toEqual([['us-ssn', 'header', 'x-ssn']]);
  });

  it('alert mode records and lets the exchange through; monitor mode records would-deny', () => {
    for (const [settings, mode, verdict] of [[{ action: 'alert' as const }, 'protect', 'allowed'], [{}, 'monitor', 'would-deny']] as const) {
      const sink = new Sink();
      const filter = filterWith(sink, policyOf([], mode), settings);
      const bytes = post(`card=${CARD}`);
      filter.clientData(bytes);
      expect(Buffer.concat(sink.server)).toEqual(bytes);
      expect(sink.dlp.map((a) => [a.hit.sensor, a.blocked, a.decision.verdict])).toEqual([['pci-pan', false, verdict]]);
    }
  });

  it('a rule `dlp: [...]` is a content matcher (it names the rule), and `dlp: []` turns scanning off', () => {
    const rules = [
      { id: 'trusted-billing', action: 'allow', http: { paths: ['/billing/**'] }, dlp: [] },
      { id: 'no-pan-egress', action: 'deny', direction: 'egress', dlp: ['pci-pan'] },
    ];
    const engineOff = { sensors: [] as string[], action: 'alert' as const };
    let sink = new Sink();
    let filter = filterWith(sink, policyOf(rules), engineOff);
    filter.clientData(post(`card=${CARD}`));
    expect(Buffer.concat(sink.client).toString()).toContain('x-sidewall-rule: no-pan-egress');
    expect(sink.dlp[0]!.decision.ruleId).toBe('no-pan-egress');
    sink = new Sink();
    filter = filterWith(sink, policyOf(rules));
    const billing = Buffer.from(`POST /billing/charge HTTP/1.1\r\nhost: shop\r\ncontent-length: 24\r\n\r\ncard=${CARD}`);
    filter.clientData(billing);
    expect(Buffer.concat(sink.server)).toEqual(billing);
    expect(sink.dlp).toEqual([]);
  });

  it('an undecodable body is refused where a hit would block (fail closed)', () => {
    const sink = new Sink();
    const filter = filterWith(sink, policyOf([]));
    filter.clientData(post('opaque', 'content-encoding: br\r\n'));
    expect(Buffer.concat(sink.client).toString()).toContain('x-sidewall-rule: dlp:undecodable');
  });
});

describe('HTTP/1 DLP: the response tail hold', () => {
  const body = `{"name":"Ann","pad":"${'y'.repeat(500)}","card":"${CARD}","tail":"${'z'.repeat(200)}"}`;
  const response = Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
  const cardAt = response.indexOf(CARD);
  const chunkedResponse = Buffer.from(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`);

  function opened(settings: Partial<DlpSettings> = {}): { sink: Sink; filter: ConnectionFilter } {
    const sink = new Sink();
    const filter = filterWith(sink, policyOf([]), settings);
    filter.clientData(Buffer.from('GET /profile HTTP/1.1\r\nhost: shop\r\n\r\n'));
    return { sink, filter };
  }

  it('a card split across two server reads at every byte: the client never gets its first digit, the exchange is cut', () => {
    for (const bytes of [response, chunkedResponse]) {
      const at = bytes.indexOf(CARD);
      for (let cut = at + 1; cut < at + CARD.length; cut++) {
        const { sink, filter } = opened();
        filter.serverData(bytes.subarray(0, cut));
        const seen = Buffer.concat(sink.client);
        expect(seen.length, String(cut)).toBe(at);
        expect(filter.heldServerBytes).toBe(cut - at);
        expect(filter.tailHeld).toBe(true);
        filter.serverData(bytes.subarray(cut));
        expect(Buffer.concat(sink.client).length, String(cut)).toBe(at);
        expect(sink.closed).toBe('reset:dlp');
        expect(sink.dlp.map((a) => [a.hit.sensor, a.hit.where, a.blocked])).toEqual([['pci-pan', 'response-body', true]]);
      }
    }
  });

  it('any number of reads (fast-check): the client gets nothing from the card on', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 30 }), (cuts) => {
        const { sink, filter } = opened();
        for (const piece of split(response, cuts)) filter.serverData(piece);
        expect(Buffer.concat(sink.client).length).toBeLessThanOrEqual(cardAt);
        expect(sink.closed).toBe('reset:dlp');
      }),
      { numRuns: 300 },
    );
  });

  it('digits that turn out to be no card are released by the next read, whole and in order', () => {
    const clean = Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: 40\r\n\r\n{"n": 4111 1111 1111 2222, "x": "abcde"}`);
    const at = clean.indexOf('4111');
    const { sink, filter } = opened();
    filter.serverData(clean.subarray(0, at + 9));
    expect(Buffer.concat(sink.client).length).toBe(at);
    filter.serverData(clean.subarray(at + 9, at + 25));
    expect(Buffer.concat(sink.client).length).toBe(at + 25); // bad Luhn: decided, released
    filter.serverData(clean.subarray(at + 25));
    expect(Buffer.concat(sink.client)).toEqual(clean);
    expect(filter.heldServerBytes).toBe(0);
    expect(sink.closed).toBe(null);
  });

  it('the hold timer (the server paused): the first digits go on; a complete card at the pause is cut', () => {
    let { sink, filter } = opened();
    filter.serverData(response.subarray(0, cardAt + 9));
    expect(filter.tailHeld).toBe(true);
    filter.releaseTail();
    expect(Buffer.concat(sink.client)).toEqual(response.subarray(0, cardAt + 9));
    expect(filter.tailHeld).toBe(false);
    filter.serverData(response.subarray(cardAt + 9)); // the rest completes it: cut, the card never whole
    expect(sink.closed).toBe('reset:dlp');
    expect(Buffer.concat(sink.client).toString('latin1')).not.toContain(CARD);

    ({ sink, filter } = opened());
    filter.serverData(response.subarray(0, cardAt + CARD.length));
    filter.releaseTail();
    expect(sink.closed).toBe('reset:dlp');
    expect(Buffer.concat(sink.client).length).toBe(cardAt);
  });

  it('nothing is held where no hit can cut (action alert, monitor mode): every byte goes at once', () => {
    for (const [settings, mode] of [[{ action: 'alert' as const }, 'protect'], [{}, 'monitor']] as const) {
      const sink = new Sink();
      const filter = filterWith(sink, policyOf([], mode), settings);
      filter.clientData(Buffer.from('GET /profile HTTP/1.1\r\nhost: shop\r\n\r\n'));
      filter.serverData(response.subarray(0, cardAt + 9));
      expect(Buffer.concat(sink.client)).toEqual(response.subarray(0, cardAt + 9));
      expect(filter.tailHeld).toBe(false);
      filter.serverData(response.subarray(cardAt + 9));
      expect(Buffer.concat(sink.client)).toEqual(response);
      expect(sink.dlp.map((a) => [a.hit.sensor, a.blocked])).toEqual([['pci-pan', false]]);
    }
  });

  it('clean traffic split anywhere: every byte arrives, in order, nothing held at the end (pipelined, content-length and chunked)', () => {
    const digits = fc.string({ unit: fc.constantFrom(...'0123456789 -'), minLength: 1, maxLength: 30 });
    const word = fc.string({ unit: fc.constantFrom(...'abcdefghij"{}:,'), minLength: 0, maxLength: 20 });
    const text = fc.array(fc.oneof(digits, word), { minLength: 1, maxLength: 12 }).map((xs) => xs.join(''));
    let compared = 0;
    fc.assert(
      fc.property(text, text, fc.boolean(), fc.array(fc.nat(), { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 20 }), (a, b, chunkedFirst, reqCuts, resCuts) => {
        const sink = new Sink();
        const filter = filterWith(sink, policyOf([]), { sensors: ['pci-pan', 'us-ssn', 'iban'] });
        const requests = Buffer.concat([post(a), post(b)]);
        for (const piece of split(requests, reqCuts)) filter.clientData(piece);
        // Anything the sensors do find in random digits is a hit that cuts: then nothing is compared.
        if (sink.closed !== null) return;
        expect(Buffer.concat(sink.server)).toEqual(requests);
        const res = (body: string, chunkedBody: boolean) => Buffer.from(chunkedBody ? `HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n` : `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
        const responses = Buffer.concat([res(b, chunkedFirst), res(a, !chunkedFirst)]);
        for (const piece of split(responses, resCuts)) filter.serverData(piece);
        if (sink.closed !== null) return;
        expect(Buffer.concat(sink.client)).toEqual(responses);
        expect(filter.heldServerBytes).toBe(0);
        expect(filter.tailHeld).toBe(false);
        compared++;
      }),
      { numRuns: 400 },
    );
    expect(compared).toBeGreaterThan(300); // the property was checked, not skipped by random hits
  });

  it('request bodies: the first digits of a card never reach the server while the client goes on', () => {
    const bytes = post(`{"note":"${'x'.repeat(300)}","card":"${CARD}","tail":"${'y'.repeat(300)}"}`);
    const at = bytes.indexOf(CARD);
    for (let cut = at + 1; cut < at + CARD.length; cut++) {
      const sink = new Sink();
      const filter = filterWith(sink, policyOf([]));
      filter.clientData(bytes.subarray(0, cut));
      expect(Buffer.concat(sink.server).length, String(cut)).toBe(at);
      filter.clientData(bytes.subarray(cut));
      expect(Buffer.concat(sink.server).length).toBe(at);
      expect(sink.closed).toBe('reset-server:denied');
    }
  });
});
