/**
 * The node's gossip topics: provider cards (into the collection, then the store) and RFPs (into
 * the RFP book, then the event bus), with every validation verdict counted.
 */
import type { Startable } from '@libp2p/interface'
import type { GossipTopic } from '../../protocols/gossip-topic.js'
import type { GossipVerdict } from '../../protocols/verdict.js'
import { cardGossip } from '../../protocols/card-gossip.js'
import { rfpGossip } from '../../protocols/rfp-gossip.js'
import type { SignedCcrfp } from '../../market/ccrfp.js'
import type { CollectionRecord } from '../../market/collection.js'
import type { NodeComponents } from '../components.js'

export interface GossipServiceInit {
  persist: (record: CollectionRecord) => void
}

export function rfpEvent (rfp: SignedCcrfp): Record<string, unknown> {
  return { uri: rfp.uri, cid: rfp.cid.toString(), requester: rfp.value.requester }
}

export class GossipService implements Startable {
  readonly cards: GossipTopic<any>
  readonly rfps: GossipTopic<any>

  constructor (components: NodeComponents, init: GossipServiceInit) {
    const { libp2p, config, collection, rfps, now, log, metrics, events } = components
    const gossipLog = log.forComponent('gossip').debug
    const counted = (topic: string) => (verdict: GossipVerdict, reason: string) => metrics.gossipVerdicts.inc({ topic, verdict, reason })
    this.cards = cardGossip(libp2p.services.pubsub, { network: config.network, collection, now, onAdmitted: init.persist, log: gossipLog, onVerdict: counted('cards') })
    this.rfps = rfpGossip(libp2p.services.pubsub, { network: config.network, book: rfps, now, log: gossipLog, onVerdict: counted('rfps'), onAdmitted: (rfp) => events.publish('rfp', rfpEvent(rfp)) })
  }

  start (): void {
    this.cards.start()
    this.rfps.start()
  }

  stop (): void {
    this.cards.stop()
    this.rfps.stop()
  }
}
