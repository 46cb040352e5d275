// A small bounded cache with least-recently-used eviction, and a Map key for byte strings.
// Used for memos on the TLS endpoint's hot path (src/ca/keys.ts public keys, src/ca/verify.ts
// verified CA signatures, src/endpoint/peer.ts parsed CA certificates), where entries are
// keyed by the exact bytes they were computed from: a hostile client can only fill a cache
// up to its bound, never make one answer for bytes it was not computed from.

type Bytes = Uint8Array;

export class LruCache<K, V> {
  // A Map iterates in insertion order: re-inserting on every hit keeps the least recently
  // used entry first.
  private readonly map = new Map<K, V>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`cache capacity must be a positive integer, not ${capacity}`);
  }

  get size(): number {
    return this.map.size;
  }

  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.capacity) {
      const oldest = this.map.keys().next();
      if (!oldest.done) this.map.delete(oldest.value);
    }
  }

  clear(): void {
    this.map.clear();
  }
}

/**
 * A string holding exactly the given bytes (one char per byte), usable as a Map key. Several
 * parts are each prefixed with their length, so different splits never give the same key.
 */
export function bytesKey(...parts: Bytes[]): string {
  if (parts.length === 1) return latin1(parts[0]!);
  let k = "";
  for (const p of parts) k += `${p.length}:${latin1(p)}`;
  return k;
}

const latin1 = (b: Bytes): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("latin1");
