/**
 * The provider's own card: signed from the config draft with the node's current addresses and
 * evidence, stored and gossiped at start, refreshed well before it expires, and announced again
 * when the first peer grafts us on the cards topic (a card published to nobody is never replayed
 * by gossip). Evidence (a quote binding our DID and measurement digest, plus collateral) is renewed
 * daily, once however many publishes ask for it at the same moment.
 */
import type { Startable } from '@libp2p/interface'
import { signRecord } from '../../market/record.js'
import { ProviderCardType, type SignedProviderCard } from '../../market/provider-card.js'
import { toHex } from '../../market/bytes.js'
import type { CID } from '../../market/cbor.js'
import { cardEvidenceReportData } from '../../attestation/card-evidence.js'
import { cardFromDraft, type CardDraft } from '../card-draft.js'
import { DEFAULT_CARD_DRAFT } from '../config.js'
import { every, nowSecs, type NodeComponents } from '../components.js'
import type { AttestationService } from './attestation.js'
import type { GossipService } from './gossip.js'

/** Collateral (CRLs, TCB Info) has a validity window: the card's evidence is renewed daily at its next refresh. */
export const OWN_EVIDENCE_RENEW_SECS = 24 * 3600

export interface OwnEvidence { digest: Uint8Array, quote: CID, collateral: CID, atUnixSecs: number }

export interface OwnCardInit {
  attestation: AttestationService
  gossip: GossipService
  /** The backends and rates the card offers (the fleet's). */
  offer: () => Pick<CardDraft, 'backends' | 'rates' | 'payment'>
}

export class OwnCard implements Startable {
  private card: SignedProviderCard | undefined
  /** Whether the last publish reached anyone; if not, the first graft on the cards topic republishes. */
  private delivered = false
  private evidence: OwnEvidence | undefined
  private renewing: Promise<OwnEvidence | undefined> | undefined
  private timer: NodeJS.Timeout | undefined
  private readonly onGraft = (evt: CustomEvent<{ topic: string }>): void => {
    if (evt.detail.topic !== this.init.gossip.cards.topic || this.card === undefined || this.delivered) return
    this.delivered = true
    this.publish().catch((err) => this.components.log.warn(`card republish failed: ${(err as Error).message}`))
  }

  constructor (private readonly components: NodeComponents, private readonly init: OwnCardInit) {}

  get current (): SignedProviderCard | undefined {
    return this.card
  }

  async start (): Promise<void> {
    const { config, libp2p, log } = this.components
    if (!config.roles.includes('provider')) return
    libp2p.services.pubsub.addEventListener('gossipsub:graft', this.onGraft)
    await this.publish()
    // Refresh well before expiry so a card never lapses between refreshes.
    this.timer = every(Math.min(config.cardRefreshSecs, Math.floor(config.cardTtlSecs / 2)), () => {
      this.publish().catch((err) => log.error(`card refresh failed: ${(err as Error).message}`))
    })
  }

  stop (): void {
    clearInterval(this.timer)
    this.components.libp2p.services.pubsub.removeEventListener('gossipsub:graft', this.onGraft)
  }

  /** Signs this node's card (config draft, current addresses, fresh times), stores and gossips it. */
  async publish (): Promise<SignedProviderCard> {
    const { config, libp2p, identity, collection, store } = this.components
    const evidence = await this.ownEvidence()
    const draft = {
      ...(config.card ?? DEFAULT_CARD_DRAFT),
      ...this.init.offer(),
      ttlSecs: config.cardTtlSecs,
      listenAddrs: libp2p.getMultiaddrs().map(String).slice(0, 16),
      // With a quote provider the card claims what the attest protocol offers, unless the operator says otherwise.
      ...(evidence !== undefined
        ? { attestationLevel: config.card?.attestationLevel ?? this.init.attestation.offer, attestationDigest: toHex(evidence.digest), evidence: { quote: evidence.quote.toString(), collateral: evidence.collateral.toString() } }
        : {})
    }
    let now = nowSecs(this.components)
    // Our last card (from this run or, after a restart, from the store) must lose to the new one,
    // even if the clock has not moved on or stepped back.
    const held = collection.record(identity.did)
    const heldTime = held === undefined ? -1 : 'committedAtUnixSecs' in held.value ? held.value.committedAtUnixSecs : held.value.retiredAtUnixSecs
    if (now <= heldTime) now = heldTime + 1
    const card = signRecord(ProviderCardType, cardFromDraft({ ...draft, committedAtUnixSecs: now }, identity, now), identity)
    collection.apply(card, nowSecs(this.components))
    await store.putRecord(card)
    this.card = card
    const recipients = await this.init.gossip.cards.publish(card.bytes)
    this.delivered ||= recipients > 0
    this.components.log.debug(`published own card ${card.cid.toString()} to ${recipients} peers`)
    return card
  }

  /** Quote + collateral bound to this node's DID and measurement digest; one renewal at a time. */
  private async ownEvidence (): Promise<OwnEvidence | undefined> {
    const held = this.evidence
    if (held !== undefined && nowSecs(this.components) - held.atUnixSecs < OWN_EVIDENCE_RENEW_SECS) return held
    this.renewing ??= this.renewEvidence().finally(() => { this.renewing = undefined })
    return await this.renewing
  }

  private async renewEvidence (): Promise<OwnEvidence | undefined> {
    const { quoteProvider } = this.init.attestation.setup
    const digest = this.init.attestation.manifest
    if (quoteProvider === undefined || digest === undefined) return undefined
    const { evidence } = this.init.attestation
    const quote = await quoteProvider.quote(cardEvidenceReportData(this.components.identity.did, digest))
    const collateral = new TextEncoder().encode(JSON.stringify(await quoteProvider.collateral()))
    const previous = this.evidence
    this.evidence = { digest, quote: evidence.put(quote, { pin: true }), collateral: evidence.put(collateral, { pin: true }), atUnixSecs: nowSecs(this.components) }
    // The previous blobs stop being ours to serve once the card points at the new ones.
    if (previous !== undefined && !previous.quote.equals(this.evidence.quote)) evidence.unpin(previous.quote)
    if (previous !== undefined && !previous.collateral.equals(this.evidence.collateral)) evidence.unpin(previous.collateral)
    evidence.announce(this.evidence.quote, this.components.shutdown)
    evidence.announce(this.evidence.collateral, this.components.shutdown)
    return this.evidence
  }
}
