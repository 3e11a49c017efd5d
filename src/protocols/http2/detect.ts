// HTTP/2 prior knowledge: the client connection preface (RFC 9113 §3.4).
import { match, MORE, prefixState, UNKNOWN } from '../detect-util.js';
import type { Detection } from '../plugin.js';

export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export function detectHttp2(bytes: Buffer): Detection<'http2'> {
  const state = prefixState(bytes, H2_PREFACE);
  if (state === 'full') return match('http2', 'high');
  return state === 'partial' ? MORE : UNKNOWN;
}

