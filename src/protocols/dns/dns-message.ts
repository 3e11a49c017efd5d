// DNS message decoding (RFC 1035 §4.1, name compression §4.1.4) for UDP datagrams and TCP
// streams, and the REFUSED answer the firewall sends for a denied query (RFC 1035 §4.1.1).
import { MalformedStreamError } from '../errors.js';
import type { DnsMessage, DnsQuestion, DnsRecordSummary, Side } from '../types.js';

const HEADER_SIZE = 12;
const TYPE_CNAME = 5;
const TYPE_DNAME = 39;
/** RFC 1035 §2.3.4: a name is at most 255 octets on the wire. */
const MAX_NAME_OCTETS = 255;
/** More questions than this in one message is not a real client (and costs CPU). */
const MAX_QUESTIONS = 32;
/** Answer summaries kept per message; counts are still reported in full. */
const MAX_ANSWER_SUMMARIES = 64;

const TYPE_NAMES: Readonly<Record<number, string>> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 10: 'NULL', 12: 'PTR', 13: 'HINFO', 15: 'MX',
  16: 'TXT', 17: 'RP', 18: 'AFSDB', 24: 'SIG', 25: 'KEY', 28: 'AAAA', 29: 'LOC', 33: 'SRV',
  35: 'NAPTR', 36: 'KX', 37: 'CERT', 39: 'DNAME', 41: 'OPT', 42: 'APL', 43: 'DS', 44: 'SSHFP',
  45: 'IPSECKEY', 46: 'RRSIG', 47: 'NSEC', 48: 'DNSKEY', 49: 'DHCID', 50: 'NSEC3',
  51: 'NSEC3PARAM', 52: 'TLSA', 53: 'SMIMEA', 55: 'HIP', 59: 'CDS', 60: 'CDNSKEY',
  61: 'OPENPGPKEY', 62: 'CSYNC', 63: 'ZONEMD', 64: 'SVCB', 65: 'HTTPS', 99: 'SPF',
  108: 'EUI48', 109: 'EUI64', 249: 'TKEY', 250: 'TSIG', 251: 'IXFR', 252: 'AXFR',
  255: 'ANY', 256: 'URI', 257: 'CAA',
};

const RCODE_NAMES: readonly string[] = [
  'NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET',
  'NXRRSET', 'NOTAUTH', 'NOTZONE', 'DSOTYPENI',
];

/** 'A', 'AAAA', ... or RFC 3597's `TYPE<n>` for types without a mnemonic. */
export function dnsTypeName(type: number): string {
  return TYPE_NAMES[type] ?? `TYPE${type}`;
}

export function dnsRcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE${rcode}`;
}

/** Where a failing message sits, so errors name the absolute stream offset. */
interface DecodeContext {
  side: Side;
  base: number;
}

function malformed(ctx: DecodeContext, at: number, detail: string): never {
  throw new MalformedStreamError({ protocol: 'dns', side: ctx.side, offset: ctx.base + at, detail });
}

/**
 * One label in presentation format (RFC 1035 §5.1, RFC 4343 §2.1): '.' and a backslash inside a
 * label are escaped with a backslash, bytes outside '!'..'~' as backslash + 3 decimal digits, so
 * the dotted name is
 * unambiguous: a label 'a.b' can never read as the two labels 'a' and 'b'. The rules treat a
 * name with an escape as no host name (policy/glob.ts, normalizeName).
 */
function labelText(buf: Buffer, from: number, to: number): string {
  let plain = true;
  for (let i = from; i < to; i++) {
    const b = buf[i]!;
    if (b <= 0x20 || b >= 0x7f || b === 0x2e || b === 0x5c) {
      plain = false;
      break;
    }
  }
  if (plain) return buf.toString('latin1', from, to);
  let out = '';
  for (let i = from; i < to; i++) {
    const b = buf[i]!;
    if (b === 0x2e || b === 0x5c) out += `\\${String.fromCharCode(b)}`;
    else if (b <= 0x20 || b >= 0x7f) out += `\\${String(b).padStart(3, '0')}`;
    else out += String.fromCharCode(b);
  }
  return out;
}

/**
 * Read a possibly compressed name at `pos`. Returns the name (lower-case, no trailing dot,
 * labels in presentation format: see labelText) and
 * stores the offset after it in `cursor.next`. Pointers must point strictly before the label
 * that holds them, so a loop is impossible; the 255-octet bound caps the work.
 */
function readName(buf: Buffer, pos: number, cursor: { next: number }, ctx: DecodeContext): string {
  let name = '';
  let octets = 0;
  let jumped = false;
  let lowestPointerTarget = pos;
  for (;;) {
    if (pos >= buf.length) malformed(ctx, pos, 'name runs past the end of the message');
    const len = buf[pos]!;
    if (len === 0) {
      if (!jumped) cursor.next = pos + 1;
      break;
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= buf.length) malformed(ctx, pos, 'compression pointer cut short');
      const target = ((len & 0x3f) << 8) | buf[pos + 1]!;
      if (target >= lowestPointerTarget) {
        malformed(ctx, pos, `compression pointer to ${target} does not point backwards (loop)`);
      }
      if (!jumped) cursor.next = pos + 2;
      jumped = true;
      lowestPointerTarget = target;
      pos = target;
      continue;
    }
    if (kind !== 0) malformed(ctx, pos, `label type 0x${kind.toString(16)} is not supported`);
    octets += len + 1;
    if (octets + 1 > MAX_NAME_OCTETS) malformed(ctx, pos, 'name longer than 255 octets');
    if (pos + 1 + len > buf.length) malformed(ctx, pos, 'label runs past the end of the message');
    const label = labelText(buf, pos + 1, pos + 1 + len);
    name = name.length === 0 ? label : `${name}.${label}`;
    pos += 1 + len;
  }
  return name.toLowerCase();
}

/**
 * Decode a DNS message (a UDP datagram, or a TCP message without its length prefix).
 * Throws MalformedStreamError (protocol 'dns') naming the offending byte; `side` and `base`
 * only label that error (the side that sent it and the message's offset in its stream).
 */
export function parseDnsMessage(buf: Buffer, side: Side = 'client', base = 0): DnsMessage {
  const ctx: DecodeContext = { side, base };
  if (buf.length < HEADER_SIZE) malformed(ctx, 0, `message of ${buf.length} bytes is shorter than the 12-byte header`);
  const id = buf.readUInt16BE(0);
  const flagBits = buf.readUInt16BE(2);
  const qdcount = buf.readUInt16BE(4);
  const ancount = buf.readUInt16BE(6);
  const nscount = buf.readUInt16BE(8);
  const arcount = buf.readUInt16BE(10);
  if (qdcount > MAX_QUESTIONS) malformed(ctx, 4, `QDCOUNT ${qdcount} exceeds ${MAX_QUESTIONS}`);
  const cursor = { next: HEADER_SIZE };
  const questions: DnsQuestion[] = [];
  let pos = HEADER_SIZE;
  for (let i = 0; i < qdcount; i++) {
    const name = readName(buf, pos, cursor, ctx);
    pos = cursor.next;
    if (pos + 4 > buf.length) malformed(ctx, pos, 'question type/class cut short');
    const type = buf.readUInt16BE(pos);
    questions.push({ name, type, typeName: dnsTypeName(type), class: buf.readUInt16BE(pos + 2) });
    pos += 4;
  }
  const answers: DnsRecordSummary[] = [];
  const aliases: string[] = [];
  const rdataCursor = { next: 0 };
  // Answer summaries only; authority/additional records are skipped by count, not decoded.
  const records = ancount + nscount + arcount;
  for (let i = 0; i < records; i++) {
    const name = readName(buf, pos, cursor, ctx);
    pos = cursor.next;
    if (pos + 10 > buf.length) malformed(ctx, pos, 'resource record header cut short');
    const type = buf.readUInt16BE(pos);
    const ttl = buf.readUInt32BE(pos + 4);
    const size = buf.readUInt16BE(pos + 8);
    pos += 10;
    if (pos + size > buf.length) malformed(ctx, pos, `RDLENGTH ${size} runs past the end of the message`);
    if (i < ancount && answers.length < MAX_ANSWER_SUMMARIES) {
      answers.push({ name, type, typeName: dnsTypeName(type), ttl, size });
    }
    // CNAME (RFC 1035 §3.3.1) and DNAME (RFC 6672 §2.1) RDATA is one (compressible) name.
    if (i < ancount && (type === TYPE_CNAME || type === TYPE_DNAME)) {
      const target = readName(buf.subarray(0, pos + size), pos, rdataCursor, ctx);
      if (rdataCursor.next !== pos + size) malformed(ctx, pos, `${dnsTypeName(type)} RDATA is not one name`);
      aliases.push(target);
    }
    pos += size;
  }
  const rcode = flagBits & 0xf;
  const first = questions[0];
  return {
    id,
    isResponse: (flagBits & 0x8000) !== 0,
    opcode: (flagBits >> 11) & 0xf,
    flags: {
      aa: (flagBits & 0x0400) !== 0,
      tc: (flagBits & 0x0200) !== 0,
      rd: (flagBits & 0x0100) !== 0,
      ra: (flagBits & 0x0080) !== 0,
      ad: (flagBits & 0x0020) !== 0,
      cd: (flagBits & 0x0010) !== 0,
    },
    rcode,
    rcodeName: dnsRcodeName(rcode),
    questions,
    qname: first?.name ?? '',
    qtype: first?.typeName ?? '',
    answerCount: ancount,
    authorityCount: nscount,
    additionalCount: arcount,
    answers,
    aliases,
    size: buf.length,
  };
}

/**
 * The answer to a denied query: same ID and question, QR=1, RA=0, RCODE=5 (REFUSED),
 * no answer/authority/additional records. Throws MalformedStreamError if `query` does not
 * decode far enough to find its question section.
 */
export function buildRefused(query: Buffer): Buffer {
  const ctx: DecodeContext = { side: 'client', base: 0 };
  if (query.length < HEADER_SIZE) malformed(ctx, 0, 'query shorter than the 12-byte header');
  const qdcount = query.readUInt16BE(4);
  if (qdcount > MAX_QUESTIONS) malformed(ctx, 4, `QDCOUNT ${qdcount} exceeds ${MAX_QUESTIONS}`);
  const cursor = { next: HEADER_SIZE };
  let pos = HEADER_SIZE;
  for (let i = 0; i < qdcount; i++) {
    readName(query, pos, cursor, ctx);
    pos = cursor.next + 4;
    if (pos > query.length) malformed(ctx, cursor.next, 'question type/class cut short');
  }
  const out = Buffer.allocUnsafe(pos);
  query.copy(out, 0, 0, pos);
  // Keep OPCODE and RD from the query (RFC 1035 §4.1.1); set QR, clear AA/TC/RA/Z/AD/CD.
  const flags = query.readUInt16BE(2);
  out.writeUInt16BE(0x8000 | (flags & 0x7900) | 5, 2);
  out.writeUInt16BE(0, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(0, 10);
  return out;
}
