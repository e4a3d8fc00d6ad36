/**
 * A bounded map for telemetry aggregation: rows of a window (and Prometheus series) must stay under
 * a cap whatever keys the traffic brings, with every request still counted once.
 */

/** 0: the entry's own key; 1: its fold key; 2: its last-resort key. */
export type Tier = 0 | 1 | 2;

/**
 * A map that never holds more than `max` entries. A key it lacks is added while it holds fewer than
 * `max - last - ceil(max / 10)` entries; past that, the request goes to its fold key's entry, added
 * while it holds fewer than `max - last`; past that, to its last-resort key's entry, of which there
 * are at most `last`. Entries of the first two kinds are therefore at most `max - last`.
 */
export class CappedMap<I, V> {
  readonly #entries = new Map<string, V>();
  readonly #ownRoom: number;
  readonly #foldRoom: number;
  readonly #foldedKey: (input: I, tier: 1 | 2) => string;
  readonly #make: (input: I, tier: Tier, key: string) => V;
  /** Requests that went to a fold or last-resort entry since the last `clear()`. */
  folded = 0;

  constructor(
    max: number,
    last: number,
    foldedKey: (input: I, tier: 1 | 2) => string,
    make: (input: I, tier: Tier, key: string) => V,
  ) {
    this.#ownRoom = max - last - Math.ceil(max / 10);
    this.#foldRoom = max - last;
    this.#foldedKey = foldedKey;
    this.#make = make;
  }

  /** The entry of `input`, whose own key is `key`: found, added, or folded (see the class comment). */
  get(input: I, key: string): V {
    return this.#entries.get(key) ?? this.#place(input, key);
  }

  #place(input: I, key: string): V {
    if (this.#entries.size < this.#ownRoom) return this.#add(input, 0, key);
    this.folded++;
    const foldKey = this.#foldedKey(input, 1);
    const folded = this.#entries.get(foldKey);
    if (folded) return folded;
    if (this.#entries.size < this.#foldRoom) return this.#add(input, 1, foldKey);
    const lastKey = this.#foldedKey(input, 2);
    return this.#entries.get(lastKey) ?? this.#add(input, 2, lastKey);
  }

  #add(input: I, tier: Tier, key: string): V {
    const entry = this.#make(input, tier, key);
    this.#entries.set(key, entry);
    return entry;
  }

  values(): IterableIterator<V> {
    return this.#entries.values();
  }

  clear(): void {
    this.#entries.clear();
    this.folded = 0;
  }
}
