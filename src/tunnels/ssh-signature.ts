// Finds an SSH identification string (RFC 4253 §4.2: "SSH-protoversion-softwareversion
// SP comments CR LF", at most 255 bytes) in payload bytes, plainly or base64-encoded.
//
// At the very start of a payload the prefix alone is decisive (a stream that opens with
// "SSH-x-y" is SSH; chisel's "SSH-chisel-v3-client" included). Further in, "SSH-2.0-..." could be
// text that mentions a banner (a scanner's JSON report), so it counts only as a whole line ending
// in CR LF, the way SSH sends it and text quoting it (JSON, HTML) does not.

const SSH = Buffer.from('SSH-', 'latin1');
/** Protocol version other than "-", then "-", then a printable software version. */
const AT_START = /^SSH-[\x21-\x2c\x2e-\x7e]{1,24}-[\x21-\x7e]/;
const MID_STREAM = /^SSH-(?:2\.0|1\.99|1\.5)-[\x21-\x7e]{1,200}(?: [\x20-\x7e]{0,200})?\r\n/;

/**
 * "SSH-2.0-" in base64 at each of the three alignments a 3-byte group can put it in (the
 * characters that depend only on signature bytes): carriers that base64 their payload into
 * JSON or form fields (reGeorg and the like).
 */
const BASE64_SIGNATURES = [
  Buffer.from('U1NILTIu', 'latin1'), // "SSH-2." at offset 0 mod 3
  Buffer.from('SC0yLjAt', 'latin1'), // "H-2.0-" (offset 1 mod 3)
  Buffer.from('U0gtMi4w', 'latin1'), // "SH-2.0" (offset 2 mod 3)
];

export interface SshSighting {
  offset: number;
  encoding: 'plain' | 'base64';
  /** The identification line as seen (escaped, at most 64 characters). */
  excerpt: string;
}

function show(bytes: Buffer): string {
  return JSON.stringify(bytes.subarray(0, 64).toString('latin1'));
}

/**
 * Looks for SSH from `from` on (callers pass where the previous look stopped, minus the longest
 * partial match, so a signature split across pieces is found once all of it has arrived).
 */
export function findSsh(bytes: Buffer, from: number): SshSighting | null {
  let at = bytes.indexOf(SSH, Math.max(0, from));
  while (at >= 0) {
    const line = bytes.toString('latin1', at, Math.min(bytes.length, at + 255 + 2));
    if (at === 0 ? AT_START.test(line) : MID_STREAM.test(line)) {
      return { offset: at, encoding: 'plain', excerpt: show(bytes.subarray(at)) };
    }
    at = bytes.indexOf(SSH, at + 1);
  }
  for (const signature of BASE64_SIGNATURES) {
    const found = bytes.indexOf(signature, Math.max(0, from));
    if (found >= 0) return { offset: found, encoding: 'base64', excerpt: show(bytes.subarray(found, found + 48)) };
  }
  return null;
}

/**
 * How far back the next search must start so that a signature cut by the end of the bytes seen
 * so far is found when the rest arrives: a banner line can be up to 255 bytes.
 */
export const SSH_LOOKBACK = 257;
