// DNS: message decoding (names, compression pointers, loops), REFUSED answers, TCP framing.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildRefused, parseDnsMessage } from '../../../src/protocols/dns/dns-message.js';
import { DnsStreamParser } from '../../../src/protocols/dns/dns-stream-parser.js';
import { MalformedStreamError } from '../../../src/protocols/errors.js';
import type { DnsMessageEvent } from '../../../src/protocols/types.js';
import { loadFixtures, runStream } from './fixtures.js';

function query(name: string, type: number, id = 0x1234): Buffer {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const header = Buffer.from([id >> 8, id & 0xff, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([header, ...labels, Buffer.from([0, type >> 8, type & 0xff, 0, 1])]);
}

describe('parseDnsMessage', () => {
  it('decodes a query: id, flags, qname (lower-case), qtype name', () => {
    const m = parseDnsMessage(query('Payments.Shop.svc', 28, 0xbeef));
    expect(m).toMatchObject({ id: 0xbeef, isResponse: false, opcode: 0, qname: 'payments.shop.svc', qtype: 'AAAA', rcode: 0, rcodeName: 'NOERROR' });
    expect(m.flags.rd).toBe(true);
    expect(parseDnsMessage(query('x.test', 99999 & 0xffff)).qtype).toBe('TYPE34463');
  });

  it('follows a chain of compression pointers in a real dig exchange', () => {
    const f = loadFixtures().find((x) => x.file === 'dns-dig-a.json')!;
    const { events } = runStream(new DnsStreamParser(), f.segments);
    const response = (events as DnsMessageEvent[]).find((e) => e.side === 'server')!.message;
    expect(response.answers.map((a) => [a.name, a.typeName, a.size])).toEqual([
      ['payments.shop.svc.cluster.local', 'CNAME', 6],
      ['www.payments.shop.svc.cluster.local', 'A', 4],
    ]);
  });

  it('refuses pointer loops and forward pointers', () => {
    const header = Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    const selfLoop = Buffer.concat([header, Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
    expect(() => parseDnsMessage(selfLoop)).toThrow(MalformedStreamError);
    const twoStep = Buffer.concat([header, Buffer.from([1, 0x61, 0xc0, 12, 0, 1, 0, 1])]);
    expect(() => parseDnsMessage(twoStep)).toThrow(/does not point backwards/);
    const forward = Buffer.concat([header, Buffer.from([0xc0, 18, 0, 1, 0, 1, 1, 0x61, 0])]);
    expect(() => parseDnsMessage(forward)).toThrow(MalformedStreamError);
  });

  it('refuses names over 255 octets and truncated messages', () => {
    const long = Array.from({ length: 5 }, () => 'a'.repeat(60)).join('.');
    expect(() => parseDnsMessage(query(long, 1))).toThrow(/255/);
    expect(() => parseDnsMessage(query('a.test', 1).subarray(0, 15))).toThrow(MalformedStreamError);
  });

  it('never throws anything but MalformedStreamError on random datagrams', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => {
        try {
          parseDnsMessage(Buffer.from(bytes));
        } catch (err) {
          expect(err).toBeInstanceOf(MalformedStreamError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('buildRefused', () => {
  it('answers with the same id and question, QR set, RCODE 5 and no records', () => {
    const q = Buffer.concat([query('exfil.example.com', 16, 0x4242), Buffer.from([0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 0])]);
    q.writeUInt16BE(1, 10); // one OPT record in the additional section
    const answer = parseDnsMessage(buildRefused(q));
    expect(answer).toMatchObject({ id: 0x4242, isResponse: true, rcode: 5, rcodeName: 'REFUSED', qname: 'exfil.example.com', qtype: 'TXT', answerCount: 0, additionalCount: 0 });
    expect(answer.flags.rd).toBe(true);
    expect(answer.flags.aa).toBe(false);
  });
});

describe('DNS over TCP', () => {
  it('frames several length-prefixed messages in one segment and across chunks', () => {
    const msgs = [query('a.test', 1, 1), query('b.test', 28, 2)];
    const stream = Buffer.concat(msgs.flatMap((m) => [Buffer.from([m.length >> 8, m.length & 0xff]), m]));
    const parser = new DnsStreamParser();
    const events = [...parser.feed('client', stream.subarray(0, 5)).events, ...parser.feed('client', stream.subarray(5)).events] as DnsMessageEvent[];
    expect(events.map((e) => [e.message.id, e.message.qname, e.start, e.end])).toEqual([
      [1, 'a.test', 0, msgs[0]!.length + 2],
      [2, 'b.test', msgs[0]!.length + 2, stream.length],
    ]);
  });

  it('reports the stream offset of a malformed message', () => {
    const good = query('a.test', 1);
    const bad = Buffer.from([0, 3, 1, 2, 3]);
    const r = new DnsStreamParser().feed('client', Buffer.concat([Buffer.from([0, good.length]), good, bad]));
    expect(r.error).toMatchObject({ code: 'ERR_MALFORMED', offset: good.length + 2 });
    expect(r.events).toHaveLength(1);
  });
});
