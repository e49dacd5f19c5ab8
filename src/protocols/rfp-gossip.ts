/**
 * The RFPs topic `cmesh/<network>/rfps/1`: CCRFPs published by their requesters, kept in the
 * node's RFP book until their bid window closes.
 */
import type { GossipSub } from '@libp2p/gossipsub'
import { CcrfpType, MAX_BID_WINDOW_SECS, MAX_CCRFP_BYTES, type SignedCcrfp } from '../market/ccrfp.js'
import type { RfpBook } from '../market/rfp-book.js'
import { GossipTopic } from './gossip-topic.js'
import { topicName } from './names.js'
import type { RateLimit } from './rate-limit.js'
import type { GossipVerdict } from './verdict.js'

/** Per requester: a burst of 10 RFPs, then one every 6 s on average. */
export const RFP_RATE: RateLimit = { ratePerSec: 1 / 6, burst: 10, rejectAfter: 20 }

export interface RfpGossipInit {
  network: string
  book: RfpBook
  now: () => number
  onAdmitted?: (rfp: SignedCcrfp) => void
  rate?: RateLimit
  log?: (line: string) => void
  onVerdict?: (verdict: GossipVerdict, reason: string) => void
}

export function rfpGossip (pubsub: GossipSub, init: RfpGossipInit): GossipTopic<typeof CcrfpType> {
  return new GossipTopic(pubsub, {
    topic: topicName(init.network, 'rfps'),
    types: [CcrfpType],
    maxBytes: MAX_CCRFP_BYTES,
    window: { maxFutureSecs: 30, maxAgeSecs: MAX_BID_WINDOW_SECS },
    rate: init.rate ?? RFP_RATE,
    now: init.now,
    ...(init.log !== undefined ? { log: init.log } : {}),
    ...(init.onVerdict !== undefined ? { onVerdict: init.onVerdict } : {}),
    admit: (rfp, nowSecs) => {
      const outcome = init.book.add(rfp, nowSecs)
      if (outcome !== 'added') return { verdict: 'ignore', reason: outcome.toUpperCase() }
      init.onAdmitted?.(rfp)
      return { verdict: 'accept', reason: 'added' }
    }
  })
}
