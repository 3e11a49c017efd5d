// MySQL/MariaDB: the server speaks first (Protocol::Handshake v10).
import { match, MORE, UNKNOWN } from '../detect-util.js';
import type { Detection } from '../plugin.js';

export function detectMysqlGreeting(bytes: Buffer): Detection<'mysql'> {
  // MySQL/MariaDB Protocol::Handshake v10: 3-byte LE payload length, sequence id 0,
  // protocol version 10, NUL-terminated server version, 4-byte thread id, ...
  if (bytes.length < 5) {
    if (bytes.length >= 4 && bytes[3] !== 0) return UNKNOWN;
    return MORE;
  }
  const length = bytes.readUIntLE(0, 3);
  if (bytes[3] !== 0 || length < 10 || length > 1024) return UNKNOWN;
  if (bytes[4] === 0xff) {
    // ERR packet as greeting (e.g. "Host ... is not allowed to connect"): 0xff, code, message.
    return match('mysql', 'medium');
  }
  if (bytes[4] !== 0x0a) return UNKNOWN;
  const versionEnd = bytes.indexOf(0, 5);
  const scanned = versionEnd < 0 ? bytes.length : versionEnd;
  for (let i = 5; i < scanned; i++) {
    const b = bytes[i]!;
    if (b < 0x20 || b > 0x7e) return UNKNOWN;
  }
  if (versionEnd < 0) return scanned - 5 < 64 && bytes.length < 64 + 5 ? MORE : UNKNOWN;
  return versionEnd > 5 ? match('mysql', 'high') : UNKNOWN;
}

