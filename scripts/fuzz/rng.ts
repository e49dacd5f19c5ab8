/** A small seeded PRNG (sfc32): a fuzz run is replayed exactly from its seed and target name. */
import { createHash } from 'node:crypto'

export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor (seed: string) {
    const h = createHash('sha256').update(seed).digest()
    this.a = h.readUInt32LE(0)
    this.b = h.readUInt32LE(4)
    this.c = h.readUInt32LE(8)
    this.d = h.readUInt32LE(12)
    for (let i = 0; i < 12; i++) this.u32()
  }

  u32 (): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0
    this.d = (this.d + 1) >>> 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) >>> 0
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0
    this.c = (this.c + t) >>> 0
    return t
  }

  /** Uniform in [0, n). */
  int (n: number): number {
    return n <= 1 ? 0 : Math.floor((this.u32() / 2 ** 32) * n)
  }

  /** Uniform in [lo, hi]. */
  range (lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1)
  }

  chance (p: number): boolean {
    return this.u32() / 2 ** 32 < p
  }

  pick<T> (items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from nothing')
    return items[this.int(items.length)] as T
  }

  bytes (n: number): Uint8Array {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff
    return out
  }

  /** Small numbers far more often than large ones: 1, 2, 3… with a long tail up to `max`. */
  geometric (max: number): number {
    let n = 1
    while (n < max && this.chance(0.5)) n *= 2
    return Math.min(max, this.range(Math.max(1, n >> 1), n))
  }
}
