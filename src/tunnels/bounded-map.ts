// A Map with a size cap that forgets the least recently used entry: the detectors' state across
// connections (per peer, per parent domain, per port) must stay bounded whatever the traffic.
export class BoundedMap<K, V> {
  private readonly map = new Map<K, V>();
  /**
   * The key set last: reading it again leaves the order as it is, so it is not moved (a delete
   * and set of the only key of a Map reallocates its table each time: the HTTP carrier tracker
   * reads its pair's entry on every request).
   */
  private newest: K | undefined = undefined;
  private hasNewest = false;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.map.size;
  }

  /** Reads and marks as recently used. */
  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined && !(this.hasNewest && this.newest === key)) {
      this.map.delete(key);
      this.map.set(key, value);
      this.newest = key;
      this.hasNewest = true;
    }
    return value;
  }

  delete(key: K): void {
    this.map.delete(key);
    if (this.hasNewest && this.newest === key) {
      this.newest = undefined;
      this.hasNewest = false;
    }
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    this.newest = key;
    this.hasNewest = true;
    if (this.map.size > this.capacity) {
      const oldest = this.map.keys().next();
      if (oldest.done !== true) this.map.delete(oldest.value);
    }
  }
}
