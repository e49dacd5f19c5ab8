/**
 * The requester role: signs CCRFPs with the node's identity, keeps them in the RFP book and
 * gossips them. (The contract flow that follows an RFP grows here.)
 */
import { signRecord } from '../../market/record.js'
import { CcrfpType, type Ccrfp, type SignedCcrfp } from '../../market/ccrfp.js'
import type { GossipService } from './gossip.js'
import { rfpEvent } from './gossip.js'
import { nowSecs, type NodeComponents } from '../components.js'

export class Requester {
  constructor (private readonly components: NodeComponents, private readonly gossip: GossipService) {}

  start (): void {}
  stop (): void {}

  /** Signs an RFP (requester and time filled in), keeps it in the book and gossips it. */
  async publishRfp (fields: Omit<Ccrfp, 'requester' | 'createdAtUnixSecs'>): Promise<SignedCcrfp> {
    const { identity, rfps, events } = this.components
    const now = nowSecs(this.components)
    const rfp = signRecord(CcrfpType, { ...fields, requester: identity.did, createdAtUnixSecs: now }, identity)
    rfps.add(rfp, now)
    events.publish('rfp', rfpEvent(rfp))
    await this.gossip.rfps.publish(rfp.bytes)
    return rfp
  }
}
