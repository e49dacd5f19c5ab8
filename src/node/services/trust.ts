/**
 * Trust statements in a running node: the vouches and denouncements it signs (`cmesh trust …`,
 * kept in the store's `trust` keyspace and gossiped on `cmesh/<net>/trust/1`) and those it hears
 * from others, all in one trust book the requester's policy engine reads: depth and mutuals need
 * other nodes' vouches. Own statements are republished every `cardRefreshSecs`, so a node that
 * joins later learns them without any sync.
 */
import type { Startable } from '@libp2p/interface'
import { decodeRecord, signRecord } from '../../market/record.js'
import { isDid, type Did } from '../../market/identity.js'
import { DenounceType, TRUST_RECORD_TYPES, VouchType, isVouch, type SignedTrust } from '../../market/trust.js'
import { TrustBook } from '../../market/trust-book.js'
import { RecordError } from '../../market/errors.js'
import { trustGossip } from '../../protocols/trust-gossip.js'
import type { GossipTopic } from '../../protocols/gossip-topic.js'
import { every, nowSecs, type NodeComponents } from '../components.js'
import { NodeError } from '../errors.js'

export type TrustKind = 'vouch' | 'denounce'

export class TrustService implements Startable {
  readonly book = new TrustBook()
  readonly topic: GossipTopic<any>
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly components: NodeComponents) {
    const { libp2p, config, now, log, metrics, events } = components
    this.topic = trustGossip(libp2p.services.pubsub, {
      network: config.network,
      book: this.book,
      now,
      log: log.forComponent('gossip').debug,
      onVerdict: (verdict, reason) => metrics.gossipVerdicts.inc({ topic: 'trust', verdict, reason }),
      onAdmitted: (r) => events.publish('trust', { kind: isVouch(r) ? 'vouch' : 'denounce', truster: r.value.truster, subject: r.value.subject, uri: r.uri })
    })
  }

  async start (): Promise<void> {
    for (const [, bytes] of await this.components.store.entries('trust')) {
      try {
        this.book.add(decodeRecord(bytes, TRUST_RECORD_TYPES) as SignedTrust)
      } catch (err) {
        if (!(err instanceof RecordError)) throw err
        this.components.log.warn(`a stored trust statement failed verification: ${err.code}`)
      }
    }
    this.topic.start()
    this.timer = every(this.components.config.cardRefreshSecs, () => { this.republish() })
  }

  stop (): void {
    clearInterval(this.timer)
    this.topic.stop()
  }

  /** Every statement known, this node's and others', for the policy engine. */
  all (): SignedTrust[] {
    return this.book.all()
  }

  /** This node's own statements. */
  list (): Array<{ kind: TrustKind, subject: Did, uri: string, cid: string, createdAtUnixSecs: number, note?: string }> {
    return this.book.by(this.components.identity.did).map((r) => ({ kind: isVouch(r) ? 'vouch' : 'denounce', subject: r.value.subject, uri: r.uri, cid: r.cid.toString(), createdAtUnixSecs: r.value.createdAtUnixSecs, ...(r.value.note !== undefined ? { note: r.value.note } : {}) }))
  }

  async sign (kind: TrustKind, subject: string, note?: string): Promise<SignedTrust> {
    const { identity } = this.components
    if (!isDid(subject)) throw new NodeError('INPUT_INVALID', `not an Ed25519 did:key: ${subject.slice(0, 80)}`)
    if (subject === identity.did) throw new NodeError('INPUT_INVALID', 'a node does not vouch for or denounce itself')
    const held = this.book.by(identity.did).find((r) => r.value.subject === subject)
    // Newer than what it replaces, even within the same second.
    const at = Math.max(nowSecs(this.components), (held?.value.createdAtUnixSecs ?? -1) + 1)
    const fields = { truster: identity.did, subject, createdAtUnixSecs: at, ...(note !== undefined ? { note } : {}) }
    const record = kind === 'vouch' ? signRecord(VouchType, fields, identity) : signRecord(DenounceType, fields, identity)
    await this.components.store.put('trust', subject, record.bytes)
    this.book.add(record)
    this.components.events.publish('trust', { kind, truster: identity.did, subject, uri: record.uri })
    await this.topic.publish(record.bytes)
    return record
  }

  private republish (): void {
    for (const r of this.book.by(this.components.identity.did)) this.topic.publish(r.bytes).catch(() => {})
  }
}
