// Which parts of a request path or a DNS name vary from request to request (ids, hashes, tokens)
// and are replaced by '*' in a learned rule, and which are fixed words kept as they are.
// Path segments are those of RFC 3986 3.3 after the rules engine's normalisation; DNS labels are
// those of RFC 1035 2.3.1 (RFC 4343: compared case-insensitively, so they arrive lower-cased).

export const WILDCARD = '*';

const DIGITS = /^\d+$/;
const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
const HEX = /^[0-9a-f]+$/i;
const DIGIT_RUN = /\d{4}/;
const BASE64_CHARS = /^[A-Za-z0-9+=_-]+$/;
const HAS_DIGIT = /\d/;
const HAS_UPPER = /[A-Z]/;
const HAS_LOWER = /[a-z]/;
/** Characters a path glob cannot hold literally (the glob syntax, and what the validator refuses). */
const PATH_UNSAFE = /[*?#\u0000-\u0020\u007f]/;
/** A DNS name glob label (src/policy/glob.ts): letters, digits, '_' and '-'. */
const NAME_LABEL = /^[a-z0-9_-]+$/;

/** Longer than this, a segment is data (a token, an encoded blob), not a route word. */
export const MAX_LITERAL_SEGMENT = 64;

function countDigits(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) n++;
  }
  return n;
}

/**
 * True when a segment is an identifier rather than a fixed word: a number, a UUID, a hex string
 * of 8+ characters with a digit (hashes, object ids), anything with a run of 4+ digits (dates,
 * prefixed ids such as INV-2024-0001), or a base64/base64url token of 16+ characters that mixes
 * digits with letters. Words, versions (v1, v2beta1), camelCase and kebab-case names stay.
 */
export function isVariableSegment(segment: string): boolean {
  if (segment.length === 0) return false;
  if (segment.length > MAX_LITERAL_SEGMENT) return true;
  if (DIGITS.test(segment)) return true;
  if (segment.length >= 32 && UUID.test(segment)) return true;
  if (segment.length >= 8 && HEX.test(segment) && HAS_DIGIT.test(segment)) return true;
  if (DIGIT_RUN.test(segment)) return true;
  if (segment.length >= 16 && BASE64_CHARS.test(segment) && HAS_DIGIT.test(segment)) {
    if ((HAS_UPPER.test(segment) && HAS_LOWER.test(segment)) || countDigits(segment) >= 3) return true;
  }
  return false;
}

/** A path segment as it appears in a learned path glob: itself, or '*'. */
export function templatePathSegment(segment: string): string {
  if (segment === WILDCARD) return WILDCARD;
  if (PATH_UNSAFE.test(segment) || isVariableSegment(segment)) return WILDCARD;
  return segment;
}

/** A DNS label (lower-case) as it appears in a learned name glob: itself, or '*'. */
export function templateNameLabel(label: string): string {
  if (label === WILDCARD) return WILDCARD;
  if (!NAME_LABEL.test(label) || isVariableSegment(label)) return WILDCARD;
  return label;
}

/** A label that cannot be written in a name glob at all (only '*' can stand for it). */
export function isUnwritableLabel(label: string): boolean {
  return !NAME_LABEL.test(label);
}
