// What a WebSocket handshake negotiated (RFC 6455 §9.1 Sec-WebSocket-Extensions, RFC 7692
// permessage-deflate), read from the server's 101 response: the server's answer is what both
// ends then use. A response the client must fail (an extension it did not offer, a bad or
// repeated parameter: RFC 7692 §5.1, §7.1) is an error here; so is an extension we cannot read
// (its frames would carry bytes we cannot decode).
import type { HeaderList } from '../types.js';

/** permessage-deflate as one direction's sender uses it. */
export interface DeflateParams {
  /** The sender resets its compression context after each message (`*_no_context_takeover`). */
  noContextTakeover: boolean;
  /** LZ77 window of the sender (`*_max_window_bits`, 8-15; 15 when not given). */
  maxWindowBits: number;
}

export interface WebSocketExtensions {
  /** null: no permessage-deflate (RSV1 must not be set). */
  client: DeflateParams | null;
  server: DeflateParams | null;
}

export type ExtensionsResult = { ok: true; extensions: WebSocketExtensions } | { ok: false; error: string };

/** Splits on `sep` outside quoted-strings (RFC 9110 §5.6.4). */
function splitOutsideQuotes(value: string, sep: string): string[] {
  const out: string[] = [];
  let quoted = false;
  let from = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '\\' && quoted) i++;
    else if (c === '"') quoted = !quoted;
    else if (c === sep && !quoted) {
      out.push(value.slice(from, i));
      from = i + 1;
    }
  }
  out.push(value.slice(from));
  return out;
}

const WINDOW_BITS = /^(?:8|9|1[0-5])$/;

/** The extensions of a 101 response (its Sec-WebSocket-Extensions fields, all of them). */
export function negotiatedExtensions(headers: HeaderList): ExtensionsResult {
  const values: string[] = [];
  for (const [name, value] of headers) if (name === 'sec-websocket-extensions') values.push(value);
  const extensions = splitOutsideQuotes(values.join(','), ',').map((e) => e.trim()).filter((e) => e.length > 0);
  if (extensions.length === 0) return { ok: true, extensions: { client: null, server: null } };
  if (extensions.length > 1) return { ok: false, error: `extensions ${JSON.stringify(values.join(', '))}: only permessage-deflate can be read` };
  const [name, ...params] = splitOutsideQuotes(extensions[0]!, ';').map((p) => p.trim());
  if (name!.toLowerCase() !== 'permessage-deflate') return { ok: false, error: `extension ${JSON.stringify(name)} cannot be read` };
  const client: DeflateParams = { noContextTakeover: false, maxWindowBits: 15 };
  const server: DeflateParams = { noContextTakeover: false, maxWindowBits: 15 };
  const seen = new Set<string>();
  for (const param of params) {
    const eq = param.indexOf('=');
    const key = (eq < 0 ? param : param.slice(0, eq)).trim().toLowerCase();
    let value = eq < 0 ? null : param.slice(eq + 1).trim();
    if (value !== null && value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    if (seen.has(key)) return { ok: false, error: `permessage-deflate parameter ${key} repeated` };
    seen.add(key);
    if ((key === 'client_no_context_takeover' || key === 'server_no_context_takeover') && value === null) {
      (key === 'client_no_context_takeover' ? client : server).noContextTakeover = true;
    } else if ((key === 'client_max_window_bits' || key === 'server_max_window_bits') && value !== null && WINDOW_BITS.test(value)) {
      (key === 'client_max_window_bits' ? client : server).maxWindowBits = Number(value);
    } else return { ok: false, error: `permessage-deflate parameter ${JSON.stringify(param)} is not valid in a response` };
  }
  return { ok: true, extensions: { client, server } };
}
