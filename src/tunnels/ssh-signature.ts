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

/** The longest prefix of a signature that a piece can end with, cut from the rest. */
const PLAIN_PREFIX = SSH.length - 1;
const BASE64_PREFIX = 7;
/**
 * Past the first bytes, "SSH-2.0-" is found by "H-2.0-" and a look back: Buffer#indexOf runs at
 * the speed of its needle's first byte's rarity, and capital S is common in text (16 KiB of log
 * text: 30 µs for "SSH-", 0.14 µs for "H-2.0-"; random bytes 0.5 µs for either).
 */
const SSH2 = Buffer.from('SSH-2.0-', 'latin1');
const SSH2_ANCHOR = SSH2.subarray(2);

/**
 * SSH anywhere in one payload that arrives in pieces of any size (an HTTP body, decoded; the
 * DATA of one HTTP/2 stream), at a cost proportional to the bytes and with nothing copied in the
 * common case. In the first `base64Reach` bytes any identification string is looked for, plain
 * or base64; past them only "SSH-2.0-" as a whole line (what every SSH-2 client sends, and
 * servers but for old ones announcing "SSH-1.99-"), at ~10 GB/s on text and random bytes alike
 * (perf/README.md). What a piece ends with that could begin a signature (a banner line still
 * arriving, or its first bytes) is carried into the next piece, so a banner cut anywhere, also
 * byte by byte, is found once all of it is in.
 */
export class SshScan {
  /** Bytes of the payload before the current piece. */
  private seen = 0;
  /** Carried bytes (at most SSH_LOOKBACK), or null. */
  private carry: Buffer | null = null;

  constructor(private readonly base64Reach: number) {}

  reset(): void {
    this.seen = 0;
    this.carry = null;
  }

  feed(bytes: Buffer): SshSighting | null {
    if (bytes.length === 0) return null;
    const carried = this.carry;
    const buf = carried === null ? bytes : Buffer.concat([carried, bytes]);
    /** Payload offset of buf[0]. */
    const base = this.seen - (carried === null ? 0 : carried.length);
    this.seen += bytes.length;
    this.carry = null;
    let last = -1;
    const inReach = base < this.base64Reach;
    if (inReach) {
      // "SSH-" beginning in the first bytes (the search itself bounded to them).
      const head = buf.subarray(0, Math.min(buf.length, this.base64Reach - base + PLAIN_PREFIX));
      for (let at = head.indexOf(SSH); at >= 0; at = head.indexOf(SSH, at + 1)) {
        last = at;
        if (lineAt(buf, at, base)) return { offset: base + at, encoding: 'plain', excerpt: show(buf.subarray(at)) };
      }
      const reach = buf.subarray(0, Math.min(buf.length, this.base64Reach - base + BASE64_PREFIX));
      for (const signature of BASE64_SIGNATURES) {
        const found = reach.indexOf(signature);
        if (found >= 0) return { offset: base + found, encoding: 'base64', excerpt: show(buf.subarray(found, found + 48)) };
      }
    }
    for (let at = buf.indexOf(SSH2_ANCHOR, 2); at >= 0; at = buf.indexOf(SSH2_ANCHOR, at + 1)) {
      const from = at - 2;
      if (buf[from] !== 0x53 || buf[from + 1] !== 0x53) continue;
      last = Math.max(last, from);
      if (lineAt(buf, from, base)) return { offset: base + from, encoding: 'plain', excerpt: show(buf.subarray(from)) };
    }
    // Keep what may still become a signature: a line that began near the end, or a cut prefix.
    let keep = last >= 0 && last >= buf.length - SSH_LOOKBACK ? buf.length - last : 0;
    if (keep === 0) keep = cutPrefix(buf, SSH2, SSH2.length - 1);
    if (inReach) {
      keep = Math.max(keep, cutPrefix(buf, SSH, PLAIN_PREFIX));
      for (const signature of BASE64_SIGNATURES) keep = Math.max(keep, cutPrefix(buf, signature, BASE64_PREFIX));
    }
    if (keep > 0) this.carry = Buffer.from(buf.subarray(buf.length - keep));
    return null;
  }
}

/** Is there an identification line at `at` (payload offset `base + at`)? */
function lineAt(buf: Buffer, at: number, base: number): boolean {
  const line = buf.toString('latin1', at, Math.min(buf.length, at + SSH_LOOKBACK));
  return base + at === 0 ? AT_START.test(line) : MID_STREAM.test(line);
}

/** How many of the last bytes of `buf` (at most `max`) are the first bytes of `signature`. */
function cutPrefix(buf: Buffer, signature: Buffer, max: number): number {
  const n = buf.length;
  for (let k = Math.min(max, n); k > 0; k--) {
    let i = 0;
    while (i < k && buf[n - k + i] === signature[i]) i++;
    if (i === k) return k;
  }
  return 0;
}
