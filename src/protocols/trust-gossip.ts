/**
 * The trust topic `cmesh/<network>/trust/1`: vouches and denouncements, each published by its
 * truster, so a requester's policy can follow vouches beyond its own (trust depth) and see who
 * vouches for whom (mutuals). Records enter the node's trust book; older statements are ignored.
 */
import type { GossipSub } from '@libp2p/gossipsub'
import { MAX_TRUST_BYTES, TRUST_RECORD_TYPES, type SignedTrust } from '../market/trust.js'
import type { TrustBook } from '../market/trust-book.js'
import { GossipTopic } from './gossip-topic.js'
import { topicName } from './names.js'
import type { RateLimit } from './rate-limit.js'
import type { GossipVerdict } from './verdict.js'

/** Per truster: a burst of 20 statements, then one every 10 s on average. */
export const TRUST_RATE: RateLimit = { ratePerSec: 1 / 10, burst: 20, rejectAfter: 40 }
/** Statements are republished by their trusters; older than a year they are not news. */
export const MAX_TRUST_AGE_SECS = 365 * 86400

export interface TrustGossipInit {
  network: string
  book: TrustBook
  now: () => number
  onAdmitted?: (record: SignedTrust) => void
  log?: (line: string) => void
  onVerdict?: (verdict: GossipVerdict, reason: string) => void
}

export function trustGossip (pubsub: GossipSub, init: TrustGossipInit): GossipTopic<typeof TRUST_RECORD_TYPES[number]> {
  return new GossipTopic(pubsub, {
    topic: topicName(init.network, 'trust'),
    types: TRUST_RECORD_TYPES,
    maxBytes: MAX_TRUST_BYTES,
    window: { maxFutureSecs: 30, maxAgeSecs: MAX_TRUST_AGE_SECS },
    rate: TRUST_RATE,
    now: init.now,
    ...(init.log !== undefined ? { log: init.log } : {}),
    ...(init.onVerdict !== undefined ? { onVerdict: init.onVerdict } : {}),
    admit: (record) => {
      const outcome = init.book.add(record as SignedTrust)
      if (outcome === 'added' || outcome === 'replaced') {
        init.onAdmitted?.(record as SignedTrust)
        return { verdict: 'accept', reason: outcome }
      }
      return { verdict: 'ignore', reason: outcome.toUpperCase() }
    }
  })
}
