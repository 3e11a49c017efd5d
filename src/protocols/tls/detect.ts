// TLS: a ClientHello record (RFC 8446 §5.1, §4.1.2).
import { match, MORE, UNKNOWN } from '../detect-util.js';
import type { Detection } from '../plugin.js';

export function detectTls(bytes: Buffer): Detection<'tls'> {
  // TLSPlaintext: type 22 (handshake), legacy_record_version 3.x, length, then Handshake type 1.
  if (bytes.length === 0) return MORE;
  if (bytes[0] !== 0x16) return UNKNOWN;
  if (bytes.length < 2) return MORE;
  if (bytes[1] !== 0x03) return UNKNOWN;
  if (bytes.length < 3) return MORE;
  if (bytes[2]! > 0x04) return UNKNOWN;
  if (bytes.length < 5) return MORE;
  const length = bytes.readUInt16BE(3);
  if (length < 4 || length > 16384 + 2048) return UNKNOWN;
  if (bytes.length < 6) return MORE;
  return bytes[5] === 0x01 ? match('tls', 'high') : UNKNOWN;
}

