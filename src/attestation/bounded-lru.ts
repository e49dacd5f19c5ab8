/**
 * A Map bounded to `capacity` entries that evicts the least recently used one. Map iteration order
 * is insertion order, so a hit is moved to the end by re-inserting it and the first key is the oldest.
 */
export class BoundedLru<K, V> {
  private readonly map = new Map<K, V>()

  constructor (readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`)
  }

  get size (): number {
    return this.map.size
  }

  get (key: K): V | undefined {
    const value = this.map.get(key)
    if (value === undefined) return undefined
    this.map.delete(key)
    this.map.set(key, value)
    return value
  }

  set (key: K, value: V): void {
    this.map.delete(key)
    this.map.set(key, value)
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as K)
  }

  delete (key: K): void {
    this.map.delete(key)
  }

  clear (): void {
    this.map.clear()
  }
}
