// DNS over TCP (RFC 7766 §8, RFC 1035 §4.1.1): a length-prefixed query.
import { match, MORE, UNKNOWN } from '../detect-util.js';
import type { Detection } from '../plugin.js';
import { parseDnsMessage } from './dns-message.js';

export function detectDns(bytes: Buffer): Detection<'dns'> {
  // RFC 7766 §8: 2-byte length, then a DNS message. A query: QR=0, OPCODE 0 (QUERY) or
  // 4/5 (NOTIFY/UPDATE), QDCOUNT=1, ANCOUNT=0; decided on the length + 12-byte header.
  if (bytes.length < 2) return MORE;
  const length = bytes.readUInt16BE(0);
  if (length < 17) return UNKNOWN; // header + root name + type + class
  if (bytes.length < 14) return MORE;
  const flags = bytes.readUInt16BE(4);
  const qr = flags >> 15;
  const opcode = (flags >> 11) & 0xf;
  if (qr !== 0 || (opcode !== 0 && opcode !== 4 && opcode !== 5)) return UNKNOWN;
  if (bytes.readUInt16BE(6) !== 1 || bytes.readUInt16BE(8) !== 0) return UNKNOWN;
  if ((flags & 0xf) !== 0) return UNKNOWN; // RCODE is 0 in queries
  if (bytes.length >= length + 2) {
    // The whole message is here: it must decode.
    try {
      parseDnsMessage(bytes.subarray(2, 2 + length));
      return match('dns', 'high');
    } catch {
      return UNKNOWN;
    }
  }
  return match('dns', 'medium');
}

