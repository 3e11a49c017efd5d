// IP address and CIDR handling for `peer.cidr` matchers.
// Textual forms: IPv4 dotted quad (RFC 791, strict decimal without leading zeros, so '010.0.0.1'
// cannot be read as octal by one tool and decimal by another) and IPv6 (RFC 4291 section 2.2,
// including '::' compression and an embedded IPv4 tail). Addresses are held as 32-bit words so a
// match is a few integer operations: IPv4 in one word, IPv6 in four (most significant first).
// IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, RFC 4291 2.5.5.2) are what a dual-stack Node socket
// reports for IPv4 peers, so they are matched as the IPv4 address they carry.

/** 0 = not an address, 4 = IPv4, 6 = IPv6. */
export type IpFamily = 0 | 4 | 6;
export const INVALID = 0 as const;
export const IPV4 = 4 as const;
export const IPV6 = 6 as const;

/**
 * Parses `text` into `out` (out[0] for IPv4, out[0..3] for IPv6) and returns the family.
 * IPv4-mapped IPv6 addresses come back as IPv4. A zone index ('%eth0') is ignored when
 * `allowZone` is set (peer addresses of link-local sockets carry one); rules may not use it.
 */
export function parseIp(text: string, out: Uint32Array, allowZone = false): IpFamily {
  if (text.length === 0 || text.length > 64) return INVALID;
  if (text.indexOf(':') === -1) {
    const v4 = parseIpv4(text, 0, text.length);
    if (v4 < 0) return INVALID;
    out[0] = v4;
    return IPV4;
  }
  let end = text.length;
  const zone = text.indexOf('%');
  if (zone !== -1) {
    if (!allowZone || zone === 0) return INVALID;
    end = zone;
  }
  if (!parseIpv6(text, end, out)) return INVALID;
  if (out[0] === 0 && out[1] === 0 && out[2] === 0xffff) {
    out[0] = out[3]!;
    return IPV4;
  }
  return IPV6;
}

/** Parses text[start, end) as a strict dotted quad; returns the address as uint32 or -1. */
function parseIpv4(text: string, start: number, end: number): number {
  let value = 0;
  let octets = 0;
  let i = start;
  while (i <= end) {
    let octet = 0;
    let digits = 0;
    const octetStart = i;
    while (i < end) {
      const c = text.charCodeAt(i);
      if (c < 48 || c > 57) break;
      octet = octet * 10 + (c - 48);
      digits++;
      i++;
    }
    if (digits === 0 || digits > 3 || octet > 255) return -1;
    if (digits > 1 && text.charCodeAt(octetStart) === 48) return -1; // leading zero
    value = value * 256 + octet;
    octets++;
    if (i === end) break;
    if (text.charCodeAt(i) !== 46 || octets === 4) return -1;
    i++;
  }
  return octets === 4 ? value >>> 0 : -1;
}

function parseIpv6(text: string, end: number, out: Uint32Array): boolean {
  // Up to 8 groups of 16 bits; '::' (at most once) stands for the missing zero groups.
  const groups: number[] = [];
  let gapAt = -1;
  let i = 0;
  if (text.startsWith('::')) {
    gapAt = 0;
    i = 2;
    if (i === end) {
      out.fill(0);
      return true;
    }
  } else if (text.charCodeAt(0) === 58) {
    return false;
  }
  while (i < end) {
    let j = i;
    let group = 0;
    while (j < end && j - i < 5) {
      const c = text.charCodeAt(j);
      const nibble = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
      if (nibble < 0) break;
      group = group * 16 + nibble;
      j++;
    }
    if (j < end && text.charCodeAt(j) === 46) {
      // Embedded IPv4 tail: takes the last two groups.
      const v4 = parseIpv4(text, i, end);
      if (v4 < 0) return false;
      groups.push(v4 >>> 16, v4 & 0xffff);
      i = end;
      break;
    }
    if (j === i || j - i > 4) return false;
    groups.push(group);
    i = j;
    if (i === end) break;
    if (text.charCodeAt(i) !== 58) return false;
    i++;
    if (i < end && text.charCodeAt(i) === 58) {
      if (gapAt !== -1) return false;
      gapAt = groups.length;
      i++;
      if (i === end) break;
    } else if (i === end) {
      return false; // trailing single ':'
    }
  }
  if (groups.length > 8 || (gapAt === -1 && groups.length !== 8) || (gapAt !== -1 && groups.length > 7)) return false;
  const full = new Array<number>(8).fill(0);
  if (gapAt === -1) {
    for (let g = 0; g < 8; g++) full[g] = groups[g]!;
  } else {
    const tail = groups.length - gapAt;
    for (let g = 0; g < gapAt; g++) full[g] = groups[g]!;
    for (let g = 0; g < tail; g++) full[8 - tail + g] = groups[gapAt + g]!;
  }
  for (let w = 0; w < 4; w++) out[w] = ((full[2 * w]! << 16) | full[2 * w + 1]!) >>> 0;
  return true;
}

/** A compiled CIDR: network words already masked, plus the mask words. */
export interface Cidr {
  readonly family: typeof IPV4 | typeof IPV6;
  readonly prefix: number;
  readonly network: Uint32Array;
  readonly mask: Uint32Array;
  /** Canonical text (used for hashing and messages). */
  readonly text: string;
}

export type CidrResult = { ok: true; cidr: Cidr } | { ok: false; message: string };

function prefixMask(prefix: number, words: number): Uint32Array {
  const mask = new Uint32Array(words);
  for (let w = 0; w < words; w++) {
    const bits = Math.max(0, Math.min(32, prefix - 32 * w));
    mask[w] = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  }
  return mask;
}

function formatWords(family: typeof IPV4 | typeof IPV6, words: Uint32Array): string {
  if (family === IPV4) {
    const v = words[0]!;
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const groups: string[] = [];
  for (let w = 0; w < 4; w++) groups.push((words[w]! >>> 16).toString(16), (words[w]! & 0xffff).toString(16));
  // RFC 5952: compress the longest run (at least two) of zero groups.
  let bestStart = -1;
  let bestLen = 1;
  for (let g = 0; g < 8; ) {
    if (groups[g] !== '0') {
      g++;
      continue;
    }
    let e = g;
    while (e < 8 && groups[e] === '0') e++;
    if (e - g > bestLen) {
      bestStart = g;
      bestLen = e - g;
    }
    g = e;
  }
  if (bestStart === -1) return groups.join(':');
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLen).join(':')}`;
}

/** Parses 'a.b.c.d/n', 'x::y/n' or a bare address (a /32 or /128). Host bits must be zero. */
export function parseCidr(text: string): CidrResult {
  const slash = text.indexOf('/');
  const addressText = slash === -1 ? text : text.slice(0, slash);
  const words = new Uint32Array(4);
  let family = parseIp(addressText, words);
  if (family === INVALID) {
    return { ok: false, message: `'${text}' is not a CIDR ('${addressText}' is not an IPv4 or IPv6 address)` };
  }
  const mapped = family === IPV4 && addressText.indexOf(':') !== -1;
  const maxPrefix = family === IPV4 && !mapped ? 32 : 128;
  let prefix = maxPrefix;
  if (slash !== -1) {
    const prefixText = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || Number(prefixText) > maxPrefix) {
      return { ok: false, message: `'${text}' is not a CIDR (prefix length must be 0–${maxPrefix})` };
    }
    prefix = Number(prefixText);
  }
  if (mapped) {
    // ::ffff:a.b.c.d/n is the IPv4 block a.b.c.d/(n-96); shorter prefixes reach outside it.
    if (prefix < 96) {
      return { ok: false, message: `'${text}' spans beyond the IPv4-mapped range ::ffff:0:0/96; write the IPv4 CIDR instead` };
    }
    prefix -= 96;
    family = IPV4;
  }
  const wordCount = family === IPV4 ? 1 : 4;
  const mask = prefixMask(prefix, wordCount);
  const network = words.slice(0, wordCount);
  for (let w = 0; w < wordCount; w++) {
    if ((network[w]! & ~mask[w]!) >>> 0 !== 0) {
      for (let m = 0; m < wordCount; m++) network[m] = (network[m]! & mask[m]!) >>> 0;
      const suggestion = `${formatWords(family, network)}/${prefix}`;
      return { ok: false, message: `'${text}' has host bits set after the /${prefix} prefix; did you mean '${suggestion}'?` };
    }
  }
  return { ok: true, cidr: { family, prefix, network, mask, text: `${formatWords(family, network)}/${prefix}` } };
}

/** True when the address parsed into `words` with `family` lies inside `cidr`. */
export function cidrContains(cidr: Cidr, family: IpFamily, words: Uint32Array): boolean {
  if (family !== cidr.family) return false;
  if (family === IPV4) return ((words[0]! & cidr.mask[0]!) >>> 0) === cidr.network[0];
  for (let w = 0; w < 4; w++) {
    if (((words[w]! & cidr.mask[w]!) >>> 0) !== cidr.network[w]) return false;
  }
  return true;
}
