// SSH identification string (RFC 4253 §4.2).
import { match, MORE, prefixState, UNKNOWN } from '../detect-util.js';
import type { Detection } from '../plugin.js';

const SSH_PREFIX = Buffer.from('SSH-', 'latin1');
const SSH_V2 = Buffer.from('SSH-2.0-', 'latin1');
const SSH_V199 = Buffer.from('SSH-1.99-', 'latin1');

/** The identification string (RFC 4253 §4.2), sent by both sides: client-first and greeting. */
export function detectSsh(bytes: Buffer): Detection<'ssh'> {
  const head = prefixState(bytes, SSH_PREFIX);
  if (head === 'no') return UNKNOWN;
  if (head === 'partial') return MORE;
  const v2 = prefixState(bytes, SSH_V2);
  const v199 = prefixState(bytes, SSH_V199);
  if (v2 === 'full' || v199 === 'full') return match('ssh', 'high');
  if (v2 === 'partial' || v199 === 'partial') return MORE;
  return match('ssh', 'low'); // "SSH-" with another version: old or odd, still SSH
}

