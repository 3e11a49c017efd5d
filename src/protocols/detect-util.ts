// Small helpers shared by the protocols' detectors (src/protocols/<name>/detect.ts).
import type { DetectConfidence, Detection } from './plugin.js';

export const MORE = Object.freeze({ kind: 'more' as const });
export const UNKNOWN = Object.freeze({ kind: 'unknown' as const });

export function match<P extends string>(protocol: P, confidence: DetectConfidence): Detection<P> {
  return { kind: 'match', protocol, confidence };
}

/** Does `bytes` start with `sig`, or is it a proper prefix of it? 'full' | 'partial' | 'no'. */
export function prefixState(bytes: Buffer, sig: Buffer): 'full' | 'partial' | 'no' {
  const n = Math.min(bytes.length, sig.length);
  if (bytes.compare(sig, 0, n, 0, n) !== 0) return 'no';
  return bytes.length >= sig.length ? 'full' : 'partial';
}

export function isDigit(b: number | undefined): boolean {
  return b !== undefined && b >= 0x30 && b <= 0x39;
}
