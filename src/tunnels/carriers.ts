// Tunnel carriers recognised by themselves, on a stream no parser recognised (an undeclared
// port, or the stream inside a CONNECT or an Upgrade): what rides inside does not matter.
//
// - OpenVPN over TCP (OpenVPN's ssl.h / "OpenVPN protocol" doc, RFC-style draft
//   draft-openvpn-protocol): every packet is a 16-bit length, then an opcode byte (opcode << 3 |
//   key id). A client opens with P_CONTROL_HARD_RESET_CLIENT_V1/V2/V3 (opcodes 1, 7, 10, key id
//   0) followed by its 8-byte session id — also under --tls-auth and --tls-crypt, which protect
//   what follows but leave the length and opcode in the clear. Seen from Debian's openvpn 2.6:
//   `00 0e 38 <session id> 00 00000000` plain, `00 36 38 <session id> <packet id> <tag> …` with
//   --tls-crypt, each sent twice before the server answers.
// - Fully encrypted proxies (shadowsocks AEAD and 2022, VMess, obfs4): no framing at all, the
//   client's first bytes are a random salt or key and ciphertext. Real protocols begin with
//   structure (magic numbers, lengths with high zero bytes, text); a first flight that is random
//   from its first byte is an obfuscated tunnel's signature (the GFW's published heuristic for
//   shadowsocks is the same idea). Lower confidence: a proprietary encrypted protocol would look
//   the same, so it is named in the evidence as "random from its first byte".
import type { PayloadWindow } from './payload-window.js';
import type { TunnelFinding } from './types.js';

/** OpenVPN HARD_RESET_CLIENT opcodes (V1 = 1, V2 = 7, V3 = 10) with key id 0. */
const OPENVPN_CLIENT_RESET = new Set([1 << 3, 7 << 3, 10 << 3]);
/** The smallest reset: opcode, session id, ack array length, packet id. */
const OPENVPN_MIN = 1 + 8 + 1 + 4;
const OPENVPN_MAX = 1600;

/** Bytes of a first flight before it is judged random: the shortest shadowsocks first flight is ~70. */
export const RANDOM_SAMPLE = 64;
/**
 * 64 random bytes take ~56.8 distinct values (σ ≈ 2.6); base64 text ~40, hex 16, any header
 * with lengths and flags far fewer.
 */
const RANDOM_MIN_DISTINCT = 48;
/** Random 64 bytes hold ~0.25 NUL bytes (3 or more: 0.2%); any protocol header holds several. */
const RANDOM_MAX_NULS = 2;

export type CarrierVerdict = TunnelFinding | 'more' | null;

/** Recognises a carrier from the client's first bytes; 'more' while too few are in. */
export function recogniseCarrier(window: PayloadWindow): CarrierVerdict {
  const b = window.bytes;
  if (b.length < 3) return 'more';
  const length = b.readUInt16BE(0);
  if (OPENVPN_CLIENT_RESET.has(b[2]!) && length >= OPENVPN_MIN && length <= OPENVPN_MAX) {
    if (b.length < 2 + 1 + 8) return 'more';
    const repeated = b.length >= length + 5 && b.readUInt16BE(length + 2) === length && b[length + 4] === b[2] && b.compare(b, 3, 11, length + 5, length + 13) === 0;
    return {
      kind: 'vpn',
      evidence: `OpenVPN over TCP: a ${length}-byte P_CONTROL_HARD_RESET_CLIENT_V${b[2] === 8 ? 1 : b[2] === 56 ? 2 : 3} (opcode byte 0x${b[2]!.toString(16)}) with session id ${b.toString('hex', 3, 11)}${repeated ? ', sent again with the same session id' : ''}`,
      confidence: repeated ? 0.95 : 0.85,
      detected: 'openvpn',
    };
  }
  if (b.length < RANDOM_SAMPLE) return 'more';
  let nuls = 0;
  const seen = new Uint8Array(256);
  let distinct = 0;
  for (let i = 0; i < RANDOM_SAMPLE; i++) {
    const x = b[i]!;
    if (x === 0) nuls++;
    if (seen[x] === 0) {
      seen[x] = 1;
      distinct++;
    }
  }
  if (nuls > RANDOM_MAX_NULS || distinct < RANDOM_MIN_DISTINCT) return null;
  return {
    kind: 'encrypted-stream',
    evidence: `the client's first ${window.length} bytes are random from the first byte (${distinct} distinct values and ${nuls} NUL in the first ${RANDOM_SAMPLE}, entropy ${window.entropy().toFixed(2)} bits/byte): no protocol framing, as fully encrypted proxies (shadowsocks, VMess, obfs4) send; begins ${window.hexHead()}`,
    confidence: 0.7,
    detected: 'encrypted-stream',
  };
}
