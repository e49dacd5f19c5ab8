/**
 * The cards topic `cmesh/<network>/cards/1`: provider cards and retirements, each published by its
 * provider. Accepted records enter the collection (and, through `onAdmitted`, the store); a stale
 * or expired one is ignored so old cards are never re-flooded.
 */
import type { GossipSub } from '@libp2p/gossipsub'
import { COLLECTION_RECORD_TYPES, type CollectionRecord, type ProviderCollection } from '../market/collection.js'
import { MAX_CARD_BYTES } from '../market/provider-card.js'
import { GossipTopic } from './gossip-topic.js'
import { topicName } from './names.js'
import type { RateLimit } from './rate-limit.js'
import type { GossipVerdict } from './verdict.js'

/** A card may be republished with an unchanged commit time for at most this long. */
export const MAX_CARD_AGE_SECS = 7 * 24 * 3600
export const CARD_CLOCK_SKEW_SECS = 30
/** Per provider: a burst of 10 republishes, then one every 10 s on average. */
export const CARD_RATE: RateLimit = { ratePerSec: 1 / 10, burst: 10, rejectAfter: 20 }

export interface CardGossipInit {
  network: string
  collection: ProviderCollection
  now: () => number
  onAdmitted?: (record: CollectionRecord) => void
  rate?: RateLimit
  log?: (line: string) => void
  onVerdict?: (verdict: GossipVerdict, reason: string) => void
}

export function cardGossip (pubsub: GossipSub, init: CardGossipInit): GossipTopic<typeof COLLECTION_RECORD_TYPES[number]> {
  return new GossipTopic(pubsub, {
    topic: topicName(init.network, 'cards'),
    types: COLLECTION_RECORD_TYPES,
    maxBytes: MAX_CARD_BYTES,
    window: { maxFutureSecs: CARD_CLOCK_SKEW_SECS, maxAgeSecs: MAX_CARD_AGE_SECS },
    rate: init.rate ?? CARD_RATE,
    now: init.now,
    ...(init.log !== undefined ? { log: init.log } : {}),
    ...(init.onVerdict !== undefined ? { onVerdict: init.onVerdict } : {}),
    admit: (record, nowSecs) => {
      const outcome = init.collection.apply(record, nowSecs)
      switch (outcome) {
        case 'added':
        case 'replaced':
        case 'retired':
          init.onAdmitted?.(record)
          return { verdict: 'accept', reason: outcome }
        case 'duplicate':
          // We already hold exactly this record (sync can win the race against gossip), but it is
          // current, so it is still news for our mesh peers; gossipsub's seen-cache stops loops.
          return { verdict: 'accept', reason: 'CURRENT' }
        case 'expired':
          // Kept in state (it supersedes older cards) but not worth forwarding.
          init.onAdmitted?.(record)
          return { verdict: 'ignore', reason: 'EXPIRED' }
        default:
          return { verdict: 'ignore', reason: outcome.toUpperCase() }
      }
    }
  })
}
