// Users' own DLP patterns (config `dlp.patterns`), in RE2 syntax, run by re2js: RE2's automata
// (Thompson NFA / one-pass / DFA simulation) ported to JavaScript, so matching time is linear in
// the text whatever the pattern — a pattern can never stall the event loop (no backtracking,
// no backreferences, no lookaround: RE2 refuses them at compile time). The native `re2` package
// was the first choice; with no prebuilt binary reachable here it compiles RE2 and abseil from
// source at `npm install` (minutes on the CI machine and in the image build), so re2js was
// chosen; test/unit/dlp-sensors.test.ts checks the linear-time claim on a classic
// catastrophic-backtracking pattern.
import { LazyModule } from '../../lazy/lazy-module.js';
import type { Sensor, SensorMatch } from './sensors.js';

/** RE2's engine: loaded by the first custom pattern (none by default). */
export const re2js = new LazyModule<typeof import('re2js')>('re2js', 'DLP custom patterns (dlp.patterns)');

/** Longest match a custom pattern may have, unless it says otherwise (the scanner's overlap). */
export const CUSTOM_MAX_LENGTH = 256;

export interface CustomPattern {
  name: string;
  pattern: string;
  maxLength?: number;
}

/** Compiles a user's pattern; throws with RE2's own message when the syntax is refused. */
export function compileCustomSensor(spec: CustomPattern): Sensor {
  const re = re2js.get().RE2JS.compile(spec.pattern);
  const maxLength = spec.maxLength ?? CUSTOM_MAX_LENGTH;
  function* find(text: string, from: number): Generator<SensorMatch> {
    const m = re.matcher(text);
    let at = from;
    while (at <= text.length && m.find(at)) {
      const start = m.start();
      const end = m.end();
      if (end - start <= maxLength && end > start) {
        // Shows the first character and the length: enough to find it, never the value.
        yield { index: start, length: end - start, sample: `${text[start]}${'*'.repeat(Math.min(end - start - 1, 16))}` };
      }
      at = end > start ? end : start + 1;
    }
  }
  // What a pattern could still complete is not knowable from RE2 here: the trailing run of
  // non-blank characters is held (a custom secret is taken not to span a blank).
  const partial = (text: string, from: number): number => {
    const stop = Math.max(from, text.length - maxLength + 1);
    let i = text.length;
    while (i > stop && !isBlank(text.charCodeAt(i - 1))) i--;
    return i < text.length ? i : -1;
  };
  return { name: spec.name, maxLength, find, partial };
}

const isBlank = (c: number): boolean => c === 32 || c === 9 || c === 10 || c === 13;

/** The error RE2 gives for a pattern, or null when it compiles. */
export function customPatternError(pattern: string): string | null {
  try {
    re2js.get().RE2JS.compile(pattern);
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
