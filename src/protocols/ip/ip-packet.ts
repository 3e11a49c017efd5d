// Decodes the network and transport headers of one IP packet, as NFQUEUE hands it over (the
// packet from its IP header on, possibly cut to the queue's copy range). Pure: bytes in, facts out;
// it knows nothing of rules, queues or sockets, and never throws.
//
// Specs: IPv4 RFC 791 (header, IHL, fragment offset); IPv6 RFC 8200 (fixed header, extension
// header chain: Hop-by-Hop 0, Routing 43, Fragment 44, Destination Options 60, and AH 51 from
// RFC 4302 whose length counts 4-octet units); UDP RFC 768; ICMP RFC 792; ICMPv6 RFC 4443.
//
// "Parse as the server does": the verdict is enforced by the kernel's conntrack, so the L4 protocol
// of an IPv6 packet is what the kernel's ipv6_skip_exthdr() finds — it skips exactly the five
// extension headers above and stops at No Next Header (59), which is then the protocol. Anything
// we cannot read to the end (a header cut by the copy range, a non-first fragment, a length that
// contradicts itself) is refused, and the caller denies it.

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;

const IPV6_HOP_BY_HOP = 0;
const IPV6_ROUTING = 43;
const IPV6_FRAGMENT = 44;
const IPV6_AH = 51;
const IPV6_DEST_OPTS = 60;
/** More extension headers than any legitimate packet carries; the kernel has no such cap, so we refuse beyond it. */
const MAX_EXTENSION_HEADERS = 16;

export interface IpPacket {
  ok: true;
  family: 4 | 6;
  src: string;
  dst: string;
  /** IANA protocol number of the transport (after IPv6 extension headers). */
  protocol: number;
  /** 'udp', 'icmp' (ICMP and ICMPv6), 'tcp', or 'ip-N' for any other protocol number N. */
  name: string;
  /** UDP ports; 0 for other protocols. */
  srcPort: number;
  dstPort: number;
  /** ICMP/ICMPv6 type and code; -1 for other protocols. */
  icmpType: number;
  icmpCode: number;
  /** The packet's length as its IP header states it (the copy may be shorter). */
  length: number;
  /** Where the transport header begins in the bytes decoded (after IPv4 options / IPv6 extension headers). */
  transportOffset: number;
}

export interface IpPacketError {
  ok: false;
  /** Stable code for metrics and records. */
  code: 'ERR_TRUNCATED' | 'ERR_MALFORMED' | 'ERR_FRAGMENT' | 'ERR_TOO_MANY_HEADERS';
  detail: string;
}

export type IpDecodeResult = IpPacket | IpPacketError;

function fail(code: IpPacketError['code'], detail: string): IpPacketError {
  return { ok: false, code, detail };
}

/** ICMP is protocol 1 in IPv4 and 58 in IPv6; the other number in the other family is just an IP protocol. */
export function protocolName(family: 4 | 6, protocol: number): string {
  if (protocol === IPPROTO_UDP) return 'udp';
  if (protocol === IPPROTO_TCP) return 'tcp';
  if (protocol === (family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6)) return 'icmp';
  return `ip-${protocol}`;
}

function ipv4Text(b: Uint8Array, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/**
 * RFC 5952 text (lower case, first longest run of two or more zero groups as ::), byte for byte
 * what Node prints for a socket address (libuv's inet_ntop): an IPv4-mapped or IPv4-compatible
 * address ends in dotted form.
 */
export function ipv6Text(b: Uint8Array, at: number): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((b[at + 2 * i]! << 8) | b[at + 2 * i + 1]!);
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestLength < 2) bestStart = -1; // a single zero group is written out
  if (bestStart === 0 && (bestLength === 6 || (bestLength === 5 && groups[5] === 0xffff))) {
    return `::${bestLength === 5 ? 'ffff:' : ''}${ipv4Text(b, at + 12)}`;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

function transport(b: Uint8Array, at: number, family: 4 | 6, src: string, dst: string, protocol: number, length: number): IpDecodeResult {
  const packet: IpPacket = { ok: true, family, src, dst, protocol, name: protocolName(family, protocol), srcPort: 0, dstPort: 0, icmpType: -1, icmpCode: -1, length, transportOffset: at };
  if (protocol === IPPROTO_UDP || protocol === IPPROTO_TCP) {
    // RFC 768: source port, destination port, length, checksum (8 octets); TCP starts the same way.
    if (at + 4 > b.length) return fail('ERR_TRUNCATED', `${packet.name} ports beyond the ${b.length} bytes copied`);
    packet.srcPort = (b[at]! << 8) | b[at + 1]!;
    packet.dstPort = (b[at + 2]! << 8) | b[at + 3]!;
  } else if ((family === 4 && protocol === IPPROTO_ICMP) || (family === 6 && protocol === IPPROTO_ICMPV6)) {
    // RFC 792 / RFC 4443: type, code, checksum.
    if (at + 2 > b.length) return fail('ERR_TRUNCATED', `ICMP type and code beyond the ${b.length} bytes copied`);
    packet.icmpType = b[at]!;
    packet.icmpCode = b[at + 1]!;
  }
  return packet;
}

function decodeIpv4(b: Uint8Array): IpDecodeResult {
  if (b.length < 20) return fail('ERR_TRUNCATED', `IPv4 header needs 20 bytes, got ${b.length}`);
  const ihl = (b[0]! & 0x0f) * 4;
  if (ihl < 20) return fail('ERR_MALFORMED', `IPv4 IHL ${ihl / 4} is below 5`);
  if (ihl > b.length) return fail('ERR_TRUNCATED', `IPv4 header of ${ihl} bytes beyond the ${b.length} copied`);
  const total = (b[2]! << 8) | b[3]!;
  if (total < ihl) return fail('ERR_MALFORMED', `IPv4 total length ${total} is shorter than its header (${ihl})`);
  const fragmentOffset = ((b[6]! & 0x1f) << 8) | b[7]!;
  // A non-first fragment carries no transport header: its ports are unknowable (the kernel
  // reassembles before conntrack, so a fragment reaching us is already suspicious).
  if (fragmentOffset !== 0) return fail('ERR_FRAGMENT', `IPv4 fragment at offset ${fragmentOffset * 8}`);
  const protocol = b[9]!;
  return transport(b, ihl, 4, ipv4Text(b, 12), ipv4Text(b, 16), protocol, total);
}

function decodeIpv6(b: Uint8Array): IpDecodeResult {
  if (b.length < 40) return fail('ERR_TRUNCATED', `IPv6 header needs 40 bytes, got ${b.length}`);
  const payloadLength = (b[4]! << 8) | b[5]!;
  let next = b[6]!;
  let at = 40;
  for (let count = 0; ; count++) {
    if (next !== IPV6_HOP_BY_HOP && next !== IPV6_ROUTING && next !== IPV6_FRAGMENT && next !== IPV6_AH && next !== IPV6_DEST_OPTS) break;
    // RFC 8200 4.1: Hop-by-Hop may only come first.
    if (next === IPV6_HOP_BY_HOP && count > 0) return fail('ERR_MALFORMED', 'IPv6 Hop-by-Hop header after another extension header');
    if (count >= MAX_EXTENSION_HEADERS) return fail('ERR_TOO_MANY_HEADERS', `more than ${MAX_EXTENSION_HEADERS} IPv6 extension headers`);
    if (at + 8 > b.length) return fail('ERR_TRUNCATED', `IPv6 extension header ${next} beyond the ${b.length} bytes copied`);
    const following = b[at]!;
    let size: number;
    if (next === IPV6_FRAGMENT) {
      // RFC 8200 4.5: 8 octets; the offset is the upper 13 bits of bytes 2-3.
      const offset = ((b[at + 2]! << 8) | b[at + 3]!) >> 3;
      if (offset !== 0) return fail('ERR_FRAGMENT', `IPv6 fragment at offset ${offset * 8}`);
      size = 8;
    } else if (next === IPV6_AH) {
      size = (b[at + 1]! + 2) * 4; // RFC 4302 2.2
    } else {
      size = (b[at + 1]! + 1) * 8; // RFC 8200 4.3-4.6
    }
    at += size;
    next = following;
  }
  if (at > 40 + payloadLength && payloadLength !== 0) return fail('ERR_MALFORMED', `IPv6 extension headers (${at - 40} bytes) longer than the payload (${payloadLength})`);
  return transport(b, at, 6, ipv6Text(b, 8), ipv6Text(b, 24), next, 40 + payloadLength);
}

/** Decodes one packet starting at its IP header. */
export function decodeIpPacket(b: Uint8Array): IpDecodeResult {
  if (b.length < 1) return fail('ERR_TRUNCATED', 'empty packet');
  const version = b[0]! >> 4;
  if (version === 4) return decodeIpv4(b);
  if (version === 6) return decodeIpv6(b);
  return fail('ERR_MALFORMED', `IP version ${version}`);
}
