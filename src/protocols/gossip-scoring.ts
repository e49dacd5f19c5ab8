/**
 * Gossipsub peer-scoring parameters for our topics. A topic only affects scores when it has an
 * entry here (gossipsub scores nothing by default), so an invalid card or RFP costs the relaying
 * peer: P4 = -10 × invalid² per topic, decaying slowly (×0.99 per second). Positive terms (time in
 * mesh, first deliveries) offset it, so a fresh peer drops below the gossip threshold (-10) at its
 * second invalid message and a well-established one reaches the graylist (-80) after about five.
 * Mesh-delivery penalties stay off: our topics are quiet, and a quiet peer is not a bad one.
 */
import { createTopicScoreParams, type PeerScoreParams } from '@libp2p/gossipsub/score'

export const TOPIC_SCORE = createTopicScoreParams({
  topicWeight: 1,
  timeInMeshWeight: 0.01,
  timeInMeshQuantum: 1000,
  timeInMeshCap: 3600,
  firstMessageDeliveriesWeight: 1,
  firstMessageDeliveriesDecay: 0.5,
  firstMessageDeliveriesCap: 100,
  meshMessageDeliveriesWeight: 0,
  meshFailurePenaltyWeight: 0,
  invalidMessageDeliveriesWeight: -10,
  invalidMessageDeliveriesDecay: 0.99
})

export function scoreParams (topics: string[], ipColocationWhitelist: string[]): Partial<PeerScoreParams> {
  return {
    topics: Object.fromEntries(topics.map((t) => [t, TOPIC_SCORE])),
    // Many honest nodes share an IP behind NAT or on loopback; those addresses are exempt.
    IPColocationFactorWhitelist: new Set(ipColocationWhitelist)
  }
}
