// The Kubernetes downward API volume (https://kubernetes.io/docs/concepts/workloads/pods/downward-api/):
// `annotations` and `labels` files hold one `key="value"` line per entry, keys sorted, values
// quoted as Go's strconv.Quote does (Go spec "Interpreted string literals": \a \b \f \n \r \t \v
// \\ \" \' \xHH bytes, \ooo octal bytes, \uHHHH and \UHHHHHHHH code points). `name` and
// `namespace` files hold plain text. The kubelet swaps the whole folder through a `..data`
// symlink, so a reader sees either the old or the new set of files.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export class DownwardApiError extends Error {
  readonly code = 'SIDEWALL_DOWNWARD_API';
  constructor(readonly file: string, readonly line: number, detail: string) {
    super(`${file}:${line}: ${detail}`);
    this.name = 'DownwardApiError';
  }
}

const SIMPLE_ESCAPES: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92, '"': 34, "'": 39 };

/** Decodes the Go-quoted string starting at text[start] === '"'; returns value and end index. */
function unquoteGo(text: string, start: number, file: string, lineNumber: number): { value: string; end: number } {
  const bytes: number[] = [];
  const pushCodePoint = (cp: number): void => {
    for (const b of Buffer.from(String.fromCodePoint(cp), 'utf8')) bytes.push(b);
  };
  let i = start + 1;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '"') return { value: Buffer.from(bytes).toString('utf8'), end: i + 1 };
    if (ch !== '\\') {
      const cp = text.codePointAt(i)!;
      pushCodePoint(cp);
      i += cp > 0xffff ? 2 : 1;
      continue;
    }
    const next = text[i + 1];
    if (next === undefined) break;
    const simple = SIMPLE_ESCAPES[next];
    if (simple !== undefined) {
      bytes.push(simple);
      i += 2;
      continue;
    }
    const hexLength = next === 'x' ? 2 : next === 'u' ? 4 : next === 'U' ? 8 : 0;
    if (hexLength > 0) {
      const hex = text.slice(i + 2, i + 2 + hexLength);
      if (!new RegExp(`^[0-9a-fA-F]{${hexLength}}$`).test(hex)) throw new DownwardApiError(file, lineNumber, `bad \\${next} escape '${hex}'`);
      const value = parseInt(hex, 16);
      if (next === 'x') bytes.push(value);
      else if (value > 0x10ffff) throw new DownwardApiError(file, lineNumber, `code point \\${next}${hex} is out of range`);
      else pushCodePoint(value);
      i += 2 + hexLength;
      continue;
    }
    if (next >= '0' && next <= '7') {
      const octal = text.slice(i + 1, i + 4);
      if (!/^[0-7]{3}$/.test(octal) || parseInt(octal, 8) > 255) throw new DownwardApiError(file, lineNumber, `bad octal escape '\\${octal}'`);
      bytes.push(parseInt(octal, 8));
      i += 4;
      continue;
    }
    throw new DownwardApiError(file, lineNumber, `unknown escape '\\${next}'`);
  }
  throw new DownwardApiError(file, lineNumber, 'unterminated quoted value');
}

/** Parses the text of a downward API `annotations` or `labels` file. */
export function parseDownwardApiMap(text: string, file = 'annotations'): Record<string, string> {
  const result: Record<string, string> = {};
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.replace(/\r$/, '');
    if (line.trim() === '') continue;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new DownwardApiError(file, n + 1, `expected key="value", got '${line.slice(0, 60)}'`);
    const key = line.slice(0, eq);
    if (line[eq + 1] !== '"') throw new DownwardApiError(file, n + 1, `the value of '${key}' is not a quoted string`);
    const { value, end } = unquoteGo(line, eq + 1, file, n + 1);
    if (line.slice(end).trim() !== '') throw new DownwardApiError(file, n + 1, `unexpected text after the value of '${key}'`);
    result[key] = value;
  }
  return result;
}

export interface PodInfo {
  annotations: Record<string, string>;
  labels: Record<string, string>;
  name?: string;
  namespace?: string;
}

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Reads a downward API folder; missing files are empty. Throws DownwardApiError on bad files. */
export function readPodInfo(dir: string): PodInfo {
  const annotationsPath = join(dir, 'annotations');
  const labelsPath = join(dir, 'labels');
  const annotationsText = readOptional(annotationsPath);
  const labelsText = readOptional(labelsPath);
  const name = readOptional(join(dir, 'name'))?.trim();
  const namespace = readOptional(join(dir, 'namespace'))?.trim();
  const info: PodInfo = {
    annotations: annotationsText === undefined ? {} : parseDownwardApiMap(annotationsText, annotationsPath),
    labels: labelsText === undefined ? {} : parseDownwardApiMap(labelsText, labelsPath),
  };
  if (name) info.name = name;
  if (namespace) info.namespace = namespace;
  return info;
}
