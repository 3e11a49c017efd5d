// Line-based server-first protocols: SMTP/FTP `220` (RFC 5321 §4.2, RFC 959 §5.4), POP3 `+OK`
// (RFC 1939), IMAP `* OK` (RFC 9051). Exception to the 24-byte bound: a `220` greeting is read to
// its line end (at most GREETING_MAX_BYTES) because only its text tells SMTP from FTP.
import { match, MORE, UNKNOWN } from '../detect-util.js';
import type { Detection } from '../plugin.js';

/** Server greetings of line-based protocols are read up to one line of at most this size. */
export const GREETING_MAX_BYTES = 512;

export function detectLineGreeting(bytes: Buffer): Detection<'smtp' | 'ftp' | 'pop3' | 'imap'> {
  const eol = bytes.indexOf(0x0a);
  const text = bytes.toString('latin1', 0, eol < 0 ? Math.min(bytes.length, GREETING_MAX_BYTES) : eol);
  if (/^\+OK(\s|$)/.test(text)) return match('pop3', 'high');
  if (/^\* (OK|PREAUTH|BYE)(\s|$)/i.test(text)) return match('imap', 'high');
  if (/^220[ -]/.test(text)) {
    if (eol < 0 && bytes.length < GREETING_MAX_BYTES) return MORE;
    // RFC 5321 §4.2 and RFC 959 §5.4 share the 220 greeting; the text names the service.
    if (/\bE?SMTP\b|\bMail\b|\bPostfix\b|\bExim\b/i.test(text)) return match('smtp', 'high');
    if (/\bFTP\b|FileZilla|vsFTPd|ProFTPD|Pure-FTPd/i.test(text)) return match('ftp', 'high');
    return match('smtp', 'low');
  }
  // Proper prefixes of the signatures above.
  if (text.length < 4 && eol < 0) {
    for (const sig of ['+OK', '* OK', '* PREAUTH', '* BYE', '220 ', '220-']) {
      if (sig.startsWith(text)) return MORE;
    }
  }
  return UNKNOWN;
}

