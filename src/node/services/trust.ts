/**
 * This node's trust statements: vouches and denouncements it signs (`cmesh trust …`), kept in the
 * store's `trust` keyspace and read by the requester's policy engine. One statement per subject:
 * a newer vouch or denouncement of the same DID replaces the older one.
 */
import type { Startable } from '@libp2p/interface'
import { decodeRecord, signRecord } from '../../market/record.js'
import { isDid, type Did } from '../../market/identity.js'
import { DenounceType, TRUST_RECORD_TYPES, VouchType, isVouch, type SignedTrust } from '../../market/trust.js'
import { RecordError } from '../../market/errors.js'
import { nowSecs, type NodeComponents } from '../components.js'
import { NodeError } from '../errors.js'

export type TrustKind = 'vouch' | 'denounce'

export class TrustService implements Startable {
  private readonly statements = new Map<Did, SignedTrust>()

  constructor (private readonly components: NodeComponents) {}

  async start (): Promise<void> {
    for (const [, bytes] of await this.components.store.entries('trust')) {
      try {
        const record = decodeRecord(bytes, TRUST_RECORD_TYPES) as SignedTrust
        this.statements.set(record.value.subject, record)
      } catch (err) {
        if (!(err instanceof RecordError)) throw err
        this.components.log.warn(`a stored trust statement failed verification: ${err.code}`)
      }
    }
  }

  stop (): void {}

  /** Every statement this node holds (its own), for the policy engine. */
  all (): SignedTrust[] {
    return [...this.statements.values()]
  }

  list (): Array<{ kind: TrustKind, subject: Did, uri: string, cid: string, createdAtUnixSecs: number, note?: string }> {
    return this.all().map((r) => ({ kind: isVouch(r) ? 'vouch' : 'denounce', subject: r.value.subject, uri: r.uri, cid: r.cid.toString(), createdAtUnixSecs: r.value.createdAtUnixSecs, ...(r.value.note !== undefined ? { note: r.value.note } : {}) }))
  }

  async sign (kind: TrustKind, subject: string, note?: string): Promise<SignedTrust> {
    const { identity } = this.components
    if (!isDid(subject)) throw new NodeError('INPUT_INVALID', `not an Ed25519 did:key: ${subject.slice(0, 80)}`)
    const held = this.statements.get(subject)
    // Newer than what it replaces, even within the same second.
    const at = Math.max(nowSecs(this.components), (held?.value.createdAtUnixSecs ?? -1) + 1)
    const fields = { truster: identity.did, subject, createdAtUnixSecs: at, ...(note !== undefined ? { note } : {}) }
    const record = kind === 'vouch' ? signRecord(VouchType, fields, identity) : signRecord(DenounceType, fields, identity)
    await this.components.store.put('trust', subject, record.bytes)
    this.statements.set(subject, record)
    this.components.events.publish('trust', { kind, subject, uri: record.uri })
    return record
  }
}
