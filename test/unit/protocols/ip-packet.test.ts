// IP packet decoding for the non-TCP guard (RFC 791, 8200, 768, 792, 4443): packets built from
// their fields decode back to those fields, with any chain of IPv6 extension headers the kernel
// skips; cut, fragmented or self-contradicting packets are refused; random bytes never throw.
import { SocketAddress } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeIpPacket, ipv6Text } from '../../../src/protocols/ip/ip-packet.js';

interface Built {
  family: 4 | 6;
  src: Uint8Array;
  dst: Uint8Array;
  protocol: number;
  l4: Uint8Array;
  /** IPv6 only: [header type, body length in bytes incl. the 2 leading octets] */
  extensions: Array<{ type: 0 | 43 | 51 | 60 | 44; units: number }>;
}

function build(p: Built): Buffer {
  if (p.family === 4) {
    const header = Buffer.alloc(20);
    header[0] = 0x45;
    header.writeUInt16BE(20 + p.l4.length, 2);
    header[8] = 64;
    header[9] = p.protocol;
    Buffer.from(p.src).copy(header, 12);
    Buffer.from(p.dst).copy(header, 16);
    return Buffer.concat([header, p.l4]);
  }
  const chain: Buffer[] = [];
  const types = [...p.extensions.map((e) => e.type), p.protocol];
  p.extensions.forEach((e, i) => {
    let h: Buffer;
    if (e.type === 44) {
      h = Buffer.alloc(8); // first fragment: offset 0, M flag set
      h[3] = 1;
    } else if (e.type === 51) {
      h = Buffer.alloc((e.units + 2) * 4);
      h[1] = e.units;
    } else {
      h = Buffer.alloc((e.units + 1) * 8);
      h[1] = e.units;
    }
    h[0] = types[i + 1]!;
    chain.push(h);
  });
  const payload = Buffer.concat([...chain, p.l4]);
  const header = Buffer.alloc(40);
  header[0] = 0x60;
  header.writeUInt16BE(payload.length, 4);
  header[6] = types[0]!;
  header[7] = 64;
  Buffer.from(p.src).copy(header, 8);
  Buffer.from(p.dst).copy(header, 24);
  return Buffer.concat([header, payload]);
}

function text(family: 4 | 6, bytes: Uint8Array): string {
  return family === 4 ? [...bytes].join('.') : ipv6Text(bytes, 0);
}

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const extension = fc.record({ type: fc.constantFrom(0 as const, 43 as const, 51 as const, 60 as const, 44 as const), units: fc.integer({ min: 1, max: 4 }) });
const packet: fc.Arbitrary<Built> = fc.oneof(
  fc.record({ family: fc.constant(4 as const), src: bytes(4), dst: bytes(4), protocol: fc.integer({ min: 0, max: 255 }), l4: fc.uint8Array({ minLength: 8, maxLength: 40 }), extensions: fc.constant([] as Built['extensions']) }),
  fc.record({
    family: fc.constant(6 as const),
    src: bytes(16),
    dst: bytes(16),
    // Not an extension header itself, or the chain would go on.
    protocol: fc.integer({ min: 0, max: 255 }).filter((n) => ![0, 43, 44, 51, 60].includes(n)),
    l4: fc.uint8Array({ minLength: 8, maxLength: 40 }),
    // Hop-by-Hop may only come first (RFC 8200 4.1).
    extensions: fc.array(extension, { maxLength: 5 }).map((list) => list.filter((e, i) => e.type !== 0 || i === 0)),
  }),
);

describe('decodeIpPacket', () => {
  it('decodes what was built: family, addresses, protocol, UDP ports, ICMP type and code', () => {
    fc.assert(
      fc.property(packet, (p) => {
        const d = decodeIpPacket(build(p));
        expect(d.ok).toBe(true);
        if (!d.ok) return;
        expect(d.family).toBe(p.family);
        expect(d.src).toBe(text(p.family, p.src));
        expect(d.dst).toBe(text(p.family, p.dst));
        expect(d.protocol).toBe(p.protocol);
        const icmp = p.family === 4 ? 1 : 58;
        if (p.protocol === 17 || p.protocol === 6) {
          expect([d.srcPort, d.dstPort]).toEqual([(p.l4[0]! << 8) | p.l4[1]!, (p.l4[2]! << 8) | p.l4[3]!]);
        } else expect([d.srcPort, d.dstPort]).toEqual([0, 0]);
        if (p.protocol === icmp) expect([d.icmpType, d.icmpCode]).toEqual([p.l4[0], p.l4[1]]);
        else expect(d.icmpType).toBe(-1);
        expect(d.name).toBe(p.protocol === 17 ? 'udp' : p.protocol === 6 ? 'tcp' : p.protocol === icmp ? 'icmp' : `ip-${p.protocol}`);
      }),
      { numRuns: 2000 },
    );
  });

  it('names protocols: udp, icmp for ICMP and ICMPv6, tcp, ip-N otherwise', () => {
    const at = (family: 4 | 6, protocol: number) => decodeIpPacket(build({ family, src: new Uint8Array(family === 4 ? 4 : 16), dst: new Uint8Array(family === 4 ? 4 : 16), protocol, l4: new Uint8Array(8), extensions: [] }));
    expect([at(4, 17), at(4, 1), at(6, 58), at(6, 17), at(4, 6), at(4, 253), at(6, 59), at(6, 1), at(4, 58)].map((d) => (d.ok ? d.name : d.code))).toEqual(['udp', 'icmp', 'icmp', 'udp', 'tcp', 'ip-253', 'ip-59', 'ip-1', 'ip-58']);
  });

  it('formats IPv6 addresses exactly as Node does (the oracle: net.SocketAddress)', () => {
    // Zero-heavy addresses exercise the :: choice and the dotted IPv4 forms.
    const group = fc.oneof(fc.constant(0), fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff }));
    fc.assert(
      fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (groups) => {
        const b = Buffer.alloc(16);
        groups.forEach((g, i) => b.writeUInt16BE(g, 2 * i));
        const full = groups.map((g) => g.toString(16)).join(':');
        expect(ipv6Text(b, 0)).toBe(new SocketAddress({ address: full, family: 'ipv6' }).address);
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses every cut of a packet that ends inside a header it needs', () => {
    fc.assert(
      fc.property(packet, fc.nat(), (p, cutSeed) => {
        const whole = build(p);
        const full = decodeIpPacket(whole);
        if (!full.ok) return;
        const cut = whole.subarray(0, cutSeed % whole.length);
        const d = decodeIpPacket(cut);
        if (d.ok) {
          // Accepted only when everything it reports lay inside the copy.
          expect(d.protocol).toBe(full.protocol);
          expect([d.srcPort, d.dstPort, d.icmpType, d.icmpCode]).toEqual([full.srcPort, full.dstPort, full.icmpType, full.icmpCode]);
        } else expect(d.code).toBe('ERR_TRUNCATED');
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses non-first fragments, a misplaced Hop-by-Hop header, endless chains and bad IHL', () => {
    const v4 = build({ family: 4, src: new Uint8Array(4), dst: new Uint8Array(4), protocol: 17, l4: new Uint8Array(8), extensions: [] });
    const frag4 = Buffer.from(v4);
    frag4[7] = 1; // offset 8
    expect(decodeIpPacket(frag4)).toMatchObject({ ok: false, code: 'ERR_FRAGMENT' });
    const badIhl = Buffer.from(v4);
    badIhl[0] = 0x44;
    expect(decodeIpPacket(badIhl)).toMatchObject({ ok: false, code: 'ERR_MALFORMED' });

    const zero16 = new Uint8Array(16);
    const frag6 = build({ family: 6, src: zero16, dst: zero16, protocol: 17, l4: new Uint8Array(8), extensions: [{ type: 44, units: 1 }] });
    frag6.writeUInt16BE(8 << 3, 42); // offset 64
    expect(decodeIpPacket(frag6)).toMatchObject({ ok: false, code: 'ERR_FRAGMENT' });
    const late = build({ family: 6, src: zero16, dst: zero16, protocol: 17, l4: new Uint8Array(8), extensions: [{ type: 60, units: 1 }, { type: 0, units: 1 }] });
    expect(decodeIpPacket(late)).toMatchObject({ ok: false, code: 'ERR_MALFORMED' });
    const chain = build({ family: 6, src: zero16, dst: zero16, protocol: 17, l4: new Uint8Array(8), extensions: Array.from({ length: 20 }, () => ({ type: 60 as const, units: 0 })) });
    expect(decodeIpPacket(chain)).toMatchObject({ ok: false, code: 'ERR_TOO_MANY_HEADERS' });
    expect(decodeIpPacket(Buffer.from([0x50, 0, 0]))).toMatchObject({ ok: false, code: 'ERR_MALFORMED' });
  });

  it('never throws on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), fc.constantFrom(0x45, 0x4f, 0x60, 0x00), (b, first) => {
        if (b.length > 0) b[0] = first;
        const d = decodeIpPacket(b);
        expect(typeof d.ok).toBe('boolean');
      }),
      { numRuns: 5000 },
    );
  });
});
