/**
 * The trust statements a node knows, its own and others': the newest statement per (truster,
 * subject) pair, a vouch replaced by a later denouncement and the other way round. Bounded: past
 * `capacity` statements a new truster's are refused ('full'); known pairs still update. Time is
 * passed in; nothing here reads a clock.
 */
import type { Did } from './identity.js'
import type { SignedTrust } from './trust.js'

export type TrustOutcome = 'added' | 'replaced' | 'duplicate' | 'stale' | 'full'
export const DEFAULT_TRUST_CAPACITY = 100_000

export class TrustBook {
  private readonly byPair = new Map<string, SignedTrust>()

  constructor (private readonly capacity = DEFAULT_TRUST_CAPACITY) {}

  get size (): number {
    return this.byPair.size
  }

  add (record: SignedTrust): TrustOutcome {
    const key = `${record.value.truster} ${record.value.subject}`
    const held = this.byPair.get(key)
    if (held !== undefined) {
      if (String(held.cid) === String(record.cid)) return 'duplicate'
      if (record.value.createdAtUnixSecs < held.value.createdAtUnixSecs) return 'stale'
      // Same second: the larger CID wins, so every node settles on the same statement.
      if (record.value.createdAtUnixSecs === held.value.createdAtUnixSecs && String(record.cid) < String(held.cid)) return 'stale'
      this.byPair.set(key, record)
      return 'replaced'
    }
    if (this.byPair.size >= this.capacity) return 'full'
    this.byPair.set(key, record)
    return 'added'
  }

  all (): SignedTrust[] {
    return [...this.byPair.values()]
  }

  by (truster: Did): SignedTrust[] {
    return this.all().filter((r) => r.value.truster === truster)
  }
}
