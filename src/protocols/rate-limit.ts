/**
 * Per-key token buckets with an escalation rule: a key over its rate is first IGNOREd (dropped,
 * no penalty), and once it has been over the limit `rejectAfter` times in a row without the
 * bucket recovering, REJECTed so gossipsub takes its mesh slots. Bounded in the number of keys.
 * Time (ms) is passed in, so the limiter is deterministic in tests.
 */
export interface RateLimit {
  /** Tokens added per second. */
  ratePerSec: number
  /** Bucket size: how many may arrive at once. */
  burst: number
  /** Consecutive over-limit hits before the verdict turns to reject. */
  rejectAfter: number
}

export type RateVerdict = 'ok' | 'ignore' | 'reject'

interface Bucket { tokens: number, at: number, strikes: number }

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>()

  constructor (private readonly limit: RateLimit, private readonly maxKeys = 10_000) {}

  take (key: string, nowMs: number): RateVerdict {
    let bucket = this.buckets.get(key)
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxKeys) {
        // Drop the oldest inserted key; Map iteration order is insertion order.
        const oldest = this.buckets.keys().next().value
        if (oldest !== undefined) this.buckets.delete(oldest)
      }
      bucket = { tokens: this.limit.burst, at: nowMs, strikes: 0 }
      this.buckets.set(key, bucket)
    }
    bucket.tokens = Math.min(this.limit.burst, bucket.tokens + ((nowMs - bucket.at) / 1000) * this.limit.ratePerSec)
    bucket.at = nowMs
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      bucket.strikes = 0
      return 'ok'
    }
    bucket.strikes++
    return bucket.strikes > this.limit.rejectAfter ? 'reject' : 'ignore'
  }
}
