/**
 * Open RFPs a node has heard of, until their bid window closes. Bounded: when full, the RFP whose
 * window closes first is dropped (it is the least useful to bid on). Time is passed in.
 */
import { bidDeadline, type SignedCcrfp } from './ccrfp.js'

export type RfpOutcome = 'added' | 'duplicate' | 'closed' | 'full'

export class RfpBook {
  private readonly open = new Map<string, SignedCcrfp>()

  constructor (private readonly capacity = 10_000) {}

  get size (): number {
    return this.open.size
  }

  add (rfp: SignedCcrfp, now: number): RfpOutcome {
    const key = rfp.cid.toString()
    if (this.open.has(key)) return 'duplicate'
    if (bidDeadline(rfp.value) <= now) return 'closed'
    if (this.open.size >= this.capacity) this.close(now)
    if (this.open.size >= this.capacity) {
      let first: [string, SignedCcrfp] | undefined
      for (const entry of this.open) if (first === undefined || bidDeadline(entry[1].value) < bidDeadline(first[1].value)) first = entry
      if (first === undefined || bidDeadline(first[1].value) >= bidDeadline(rfp.value)) return 'full'
      this.open.delete(first[0])
    }
    this.open.set(key, rfp)
    return 'added'
  }

  /** Drops RFPs whose bid window has closed; returns how many. */
  close (now: number): number {
    let closed = 0
    for (const [key, rfp] of this.open) {
      if (bidDeadline(rfp.value) <= now) {
        this.open.delete(key)
        closed++
      }
    }
    return closed
  }

  list (now: number): SignedCcrfp[] {
    return [...this.open.values()].filter((r) => bidDeadline(r.value) > now)
  }
}
