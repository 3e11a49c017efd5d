// Redis RESP: a command is an array of bulk strings (RESP2/RESP3 request form).
import { isDigit, match, MORE, UNKNOWN } from '../detect-util.js';
import type { Detection } from '../plugin.js';

export function detectRedis(bytes: Buffer): Detection<'redis'> {
  // RESP: a command is an array of bulk strings: "*<n>\r\n$<len>\r\n<name>\r\n..."
  if (bytes.length === 0) return MORE;
  if (bytes[0] !== 0x2a) return UNKNOWN;
  let i = 1;
  if (i >= bytes.length) return MORE;
  if (!isDigit(bytes[i])) return UNKNOWN;
  while (i < bytes.length && isDigit(bytes[i]) && i < 8) i++;
  if (i >= bytes.length) return MORE;
  if (bytes[i] !== 0x0d) return UNKNOWN;
  if (++i >= bytes.length) return MORE;
  if (bytes[i] !== 0x0a) return UNKNOWN;
  if (++i >= bytes.length) return MORE;
  if (bytes[i] !== 0x24) return UNKNOWN;
  if (++i >= bytes.length) return MORE;
  return isDigit(bytes[i]) ? match('redis', 'high') : UNKNOWN;
}

