// Pods of one Deployment carry the same labels; at 10,000 pods the label objects are most of the
// identity map's memory. Interning shares one frozen object per distinct label set, counted so
// that a set no pod uses any more is released.
const EMPTY: Readonly<Record<string, string>> = Object.freeze({});

export class LabelInterner {
  private readonly sets = new Map<string, { labels: Readonly<Record<string, string>>; refs: number }>();

  /** The shared frozen copy of `labels`; every call must be paired with one `release`. */
  acquire(labels: Record<string, string> | undefined): Readonly<Record<string, string>> {
    if (labels === undefined) return EMPTY;
    const keys = Object.keys(labels);
    if (keys.length === 0) return EMPTY;
    keys.sort();
    let key = '';
    for (const k of keys) key += `${k}\u0000${labels[k]}\u0001`;
    const found = this.sets.get(key);
    if (found !== undefined) {
      found.refs++;
      return found.labels;
    }
    const copy: Record<string, string> = {};
    for (const k of keys) copy[k] = labels[k]!;
    const frozen = Object.freeze(copy);
    this.sets.set(key, { labels: frozen, refs: 1 });
    internKeys.set(frozen, key);
    return frozen;
  }

  release(labels: Readonly<Record<string, string>>): void {
    const key = internKeys.get(labels);
    if (key === undefined) return;
    const found = this.sets.get(key);
    if (found === undefined || found.labels !== labels) return;
    if (--found.refs === 0) this.sets.delete(key);
  }

  /** Distinct label sets held. */
  get size(): number {
    return this.sets.size;
  }
}

// Interned object → its key, so release() need not rebuild the key.
const internKeys = new WeakMap<object, string>();

export function sameLabels(a: Readonly<Record<string, string>> | undefined, b: Readonly<Record<string, string>> | undefined): boolean {
  if (a === b) return true;
  const ak = a === undefined ? [] : Object.keys(a);
  const bk = b === undefined ? [] : Object.keys(b);
  if (ak.length !== bk.length) return false;
  for (const k of ak) if (a![k] !== b![k]) return false;
  return true;
}
