// PostgreSQL protocol 3: StartupMessage / SSLRequest / GSSENCRequest / CancelRequest ("Message Formats").
import { match, MORE, UNKNOWN } from '../detect-util.js';
import type { Detection } from '../plugin.js';

const PG_SSL_REQUEST = 80877103;
const PG_GSSENC_REQUEST = 80877104;
const PG_CANCEL_REQUEST = 80877102;

export function detectPostgres(bytes: Buffer): Detection<'postgres'> {
  // Int32 length, Int32 code; lengths are small so the first two bytes are zero.
  for (let i = 0; i < Math.min(bytes.length, 2); i++) if (bytes[i] !== 0) return UNKNOWN;
  if (bytes.length < 8) return MORE;
  const length = bytes.readUInt32BE(0);
  const code = bytes.readUInt32BE(4);
  if ((code === PG_SSL_REQUEST || code === PG_GSSENC_REQUEST) && length === 8) return match('postgres', 'high');
  if (code === PG_CANCEL_REQUEST && length === 16) return match('postgres', 'high');
  // StartupMessage: protocol major 3, minor 0..2; at least "user\0x\0\0".
  if (code >>> 16 === 3 && (code & 0xffff) <= 2 && length >= 9 && length <= 10000) {
    return match('postgres', 'high');
  }
  return UNKNOWN;
}

