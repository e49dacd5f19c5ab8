/**
 * The requester role: publishes a CCRFP, dials the providers of its own collection (best verified
 * level, then lowest fee; the top `contracts.maxProviders`), bonds with each at the RFP's floor,
 * collects their CCBs and reasoned declines until the bid window closes (or all have answered),
 * lets the policy engine choose, accepts one bid with the user_data sealed to that provider alone,
 * tells the others they were not chosen, and keeps the CCR and sealed receipt it gets back.
 */
import { randomBytes } from 'node:crypto'
import type { Connection, Startable } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { decodeRecord, signRecord } from '../../market/record.js'
import { CcrfpType, bidDeadline, userDataRef, type Ccrfp, type SignedCcrfp } from '../../market/ccrfp.js'
import { CcbType, type SignedCcb } from '../../market/ccb.js'
import { CcbaType, type SignedCcba } from '../../market/ccba.js'
import { CcbapType, type SignedCcbap } from '../../market/ccbap.js'
import { isAssetId, parseAssetId, sameAddress, x402ResourceUrl } from '../../market/payment.js'
import { PaymentError, type PaymentService } from './payments.js'
import { CcrType } from '../../market/ccr.js'
import { DeclineType } from '../../market/decline.js'
import { checkCcb, checkCcr, checkDecline } from '../../market/contract-checks.js'
import { choose, type BidCandidate } from '../../market/contract-policy.js'
import { strongRefTo } from '../../market/strong-ref.js'
import { peerIdFromDid, type Did } from '../../market/identity.js'
import { ATTESTATION_LEVELS, meets, type AttestationLevel } from '../../market/ladder.js'
import { generateReceiptKeyPair, openReceipt, sealBytes, USER_DATA_INFO } from '../../market/sealed-receipt.js'
import { CmeshError } from '../../market/errors.js'
import { ContractError } from '../../market/contract-error.js'
import { errorText } from '../../protocols/error-text.js'
import { nowSecs, type NodeComponents } from '../components.js'
import { contractKey, decodeContract, encodeContract, type ContractState, type StoredContract } from '../contract-state.js'
import { rfpEvent, type GossipService } from './gossip.js'
import type { AttestationService } from './attestation.js'
import type { VerifiedLevels } from './verified-levels.js'
import type { ProviderService } from './provider.js'
import type { TrustService } from './trust.js'

/** Providers dialled at once while collecting bids. */
export const BID_DIAL_CONCURRENCY = 8
/** Flows kept in memory for status after they end (the store keeps them all). */
export const MAX_FLOWS_KEPT = 1000

export type RfpRequest = Omit<Ccrfp, 'requester' | 'createdAtUnixSecs' | 'user_data'> & { userData: Uint8Array, wifAudience?: string }

interface Answered { provider: Did, code: string, detail: string }
interface Flow {
  rfp: SignedCcrfp
  userData: Uint8Array
  wifAudience?: string
  state: ContractState
  bids: Map<Did, { ccb: SignedCcb, connection: Connection }>
  /** Per provider: how far collecting got with it (dialing, attesting). The chosen one's start the progress. */
  stages: Map<Did, string[]>
  declines: Answered[]
  refused: Answered[]
  chosen?: Did
  progress: string[]
  error?: { code: string, detail: string }
}

export class Requester implements Startable {
  private readonly flows = new Map<string, Flow>()

  constructor (private readonly components: NodeComponents, private readonly deps: { gossip: GossipService, attestation: AttestationService, verifiedLevels: VerifiedLevels, provider: ProviderService, trust: TrustService, payments: PaymentService }) {}

  start (): void {}
  stop (): void {}

  /** Signs an RFP (requester and time filled in), keeps it in the book and gossips it. */
  async publishRfp (fields: Omit<Ccrfp, 'requester' | 'createdAtUnixSecs'>): Promise<SignedCcrfp> {
    const { identity, rfps, events } = this.components
    const now = nowSecs(this.components)
    // A fresh nonce: the same request twice in one second is two RFPs, not one record.
    const rfp = signRecord(CcrfpType, { ...fields, cmesh: { ...fields.cmesh, nonce: fields.cmesh.nonce ?? new Uint8Array(randomBytes(8)) }, requester: identity.did, createdAtUnixSecs: now }, identity)
    rfps.add(rfp, now)
    events.publish('rfp', rfpEvent(rfp))
    await this.deps.gossip.rfps.publish(rfp.bytes)
    return rfp
  }

  /** Publishes the RFP (only a digest of user_data goes public) and runs its contract flow in the background. */
  async create (request: RfpRequest): Promise<SignedCcrfp> {
    const { userData, wifAudience, ...fields } = request
    const rfp = await this.publishRfp({ ...fields, user_data: userDataRef(userData) })
    const flow: Flow = { rfp, userData, ...(wifAudience !== undefined ? { wifAudience } : {}), state: 'collecting', bids: new Map(), stages: new Map(), declines: [], refused: [], progress: [] }
    this.flows.set(rfp.cid.toString(), flow)
    for (const old of this.flows.keys()) if (this.flows.size > MAX_FLOWS_KEPT) this.flows.delete(old)
    await this.save(flow)
    this.run(flow)
      .catch(async (err) => { await this.finish(flow, 'failed', { code: err instanceof CmeshError ? err.code : 'CONTRACT_FAILED', detail: errorText(err) }) })
      // Recording the failure can itself fail (the node stopping, its store closed): say so, never crash.
      .catch((err) => this.components.log.warn(`RFP ${rfp.cid.toString()}: ${errorText(err)}`))
    return rfp
  }

  /** Where an RFP stands: live from memory, or as stored (after a restart, or long ago). */
  async status (id: string): Promise<Record<string, unknown> | undefined> {
    const flow = this.flows.get(id)
    if (flow === undefined) {
      const held = await this.components.store.get('contracts', contractKey('requester', id))
      if (held === undefined) return undefined
      const c = decodeContract(held)
      return { id, state: c.state, bids: [], declines: [], refused: [], ...(c.counterparty !== undefined ? { chosen: { provider: c.counterparty, costWei: c.costWei } } : {}), ...(c.payment !== undefined ? { payment: c.payment } : {}), progress: c.progress, ...(c.error !== undefined ? { error: c.error } : {}) }
    }
    const levels = this.deps.verifiedLevels.levels
    // Once the flow has its machine, the contract's life (heartbeats, unresponsive, ended) is on disk.
    const stored = flow.state === 'ready' ? await this.components.store.get('contracts', contractKey('requester', id)) : undefined
    const life = stored !== undefined ? decodeContract(stored) : undefined
    return {
      id,
      uri: flow.rfp.uri,
      state: life?.state ?? flow.state,
      ...(life?.payment !== undefined ? { payment: life.payment } : {}),
      bids: [...flow.bids.values()].map(({ ccb }) => ({ provider: ccb.value.provider, ccb: ccb.cid.toString(), costWei: ccb.value.bid.cost.toString(), currency: ccb.value.bid.currency, frequency: ccb.value.bid.frequency, ...(ccb.value.cmesh.periodSecs !== undefined ? { periodSecs: ccb.value.cmesh.periodSecs } : {}), verified: levels.get(ccb.value.provider)?.level ?? 'Software', simulated: levels.get(ccb.value.provider)?.simulated ?? false, backend: ccb.value.cmesh.backend, region: ccb.value.cmesh.region, expiresAtUnixSecs: ccb.value.cmesh.expiresAtUnixSecs })),
      declines: flow.declines,
      refused: flow.refused,
      ...(flow.chosen !== undefined ? { chosen: { provider: flow.chosen, costWei: flow.bids.get(flow.chosen)?.ccb.value.bid.cost.toString(), currency: flow.bids.get(flow.chosen)?.ccb.value.bid.currency } } : {}),
      progress: flow.progress,
      ...((life?.error ?? flow.error) !== undefined ? { error: life?.error ?? flow.error } : {})
    }
  }

  /** Every contract in the store, either role, newest first. */
  async list (): Promise<Array<Record<string, unknown>>> {
    const out = (await this.components.store.entries('contracts')).map(([, bytes]) => decodeContract(bytes))
    return out.sort((a, b) => b.updatedAtUnixSecs - a.updatedAtUnixSecs).map((c) => ({ id: c.id, role: c.role, state: c.state, counterparty: c.counterparty, costWei: c.costWei, ...(c.ccb !== undefined ? { currency: decodeRecord(c.ccb, [CcbType]).value.bid.currency } : {}), backend: c.backend, validToUnixSecs: c.validToUnixSecs, updatedAtUnixSecs: c.updatedAtUnixSecs, ...(c.payment !== undefined ? { payment: c.payment } : {}), ...(c.error !== undefined ? { error: c.error } : {}) }))
  }

  /** What `cmesh receipt open` needs: the CCR, the sealed receipt and the key it is sealed to. */
  async receipt (id: string): Promise<{ ccr: Uint8Array, enc: Uint8Array, ct: Uint8Array, receiptKey: Uint8Array } | undefined> {
    const held = await this.components.store.get('contracts', contractKey('requester', id))
    if (held === undefined) return undefined
    const c = decodeContract(held)
    if (c.ccr === undefined || c.receipt === undefined || c.receiptKey === undefined) return undefined
    return { ccr: c.ccr, enc: c.receipt.enc, ct: c.receipt.ct, receiptKey: c.receiptKey }
  }

  private async save (flow: Flow, extra: Partial<StoredContract> = {}): Promise<void> {
    const chosen = flow.chosen !== undefined ? flow.bids.get(flow.chosen)?.ccb : undefined
    const key = contractKey('requester', flow.rfp.cid.toString())
    const held = await this.components.store.get('contracts', key)
    const previous = held !== undefined ? decodeContract(held) : undefined
    await this.components.store.put('contracts', key, encodeContract({
      ...previous,
      role: 'requester',
      id: flow.rfp.cid.toString(),
      state: flow.state,
      rfp: flow.rfp.bytes,
      progress: flow.progress,
      updatedAtUnixSecs: nowSecs(this.components),
      ...(chosen !== undefined ? { ccb: chosen.bytes, counterparty: chosen.value.provider, costWei: chosen.value.bid.cost.toString(), backend: chosen.value.cmesh.backend } : {}),
      ...(flow.error !== undefined ? { error: flow.error } : {}),
      ...extra
    }))
  }

  private async finish (flow: Flow, state: ContractState, error?: { code: string, detail: string }): Promise<void> {
    flow.state = state
    if (error !== undefined) flow.error = error
    this.components.metrics.contracts.inc({ role: 'requester', state })
    // On disk before anyone hears of it: a listener that writes the contract (the watch) reads this state.
    await this.save(flow)
    this.components.events.publish('contract', { id: flow.rfp.cid.toString(), role: 'requester', state, ...(error !== undefined ? { error } : {}) })
  }

  /** The providers an RFP goes to: those meeting its floor first, then best verified level, then lowest fee; never this node. */
  private candidates (rfp: SignedCcrfp): Did[] {
    const { collection, identity, config } = this.components
    const levelOf = (did: Did): AttestationLevel => this.deps.verifiedLevels.levels.get(did)?.level ?? 'Software'
    const key = (did: Did): number[] => [Number(meets(levelOf(did), rfp.value.cmesh.floor)), ATTESTATION_LEVELS.indexOf(levelOf(did))]
    return collection.cards(nowSecs(this.components))
      .map((c) => c.value)
      .filter((c) => c.providerId !== identity.did)
      .sort((a, b) => {
        const [ka, kb] = [key(a.providerId), key(b.providerId)]
        return (kb[0] as number) - (ka[0] as number) || (kb[1] as number) - (ka[1] as number) || (a.feePerPartialWei < b.feePerPartialWei ? -1 : a.feePerPartialWei > b.feePerPartialWei ? 1 : 0)
      })
      .slice(0, config.contracts.maxProviders)
      .map((c) => c.providerId)
  }

  private async run (flow: Flow): Promise<void> {
    const { shutdown, metrics } = this.components
    const rfp = flow.rfp
    const windowEnds = AbortSignal.any([shutdown, AbortSignal.timeout(Math.max(0, bidDeadline(rfp.value) * 1000 - this.components.now()))])
    const providers = this.candidates(rfp)
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < providers.length && !windowEnds.aborted) {
        const provider = providers[next++] as Did
        try {
          await this.collect(flow, provider, windowEnds)
        } catch (err) {
          const code = err instanceof CmeshError ? err.code : 'BID_UNREACHABLE'
          flow.declines.push({ provider, code, detail: errorText(err).slice(0, 256) })
          metrics.bidsReceived.inc({ outcome: code })
        }
      }
    }
    // Collecting ends when every provider has answered or the window closes, whichever is first.
    await Promise.race([Promise.all(Array.from({ length: Math.min(BID_DIAL_CONCURRENCY, providers.length) }, worker)), new Promise((resolve) => windowEnds.addEventListener('abort', resolve, { once: true }))])
    if (shutdown.aborted) return
    flow.state = 'choosing'
    // A bid settled in a token this node cannot pay is refused, with its reason, before the policy sees it.
    const unpayable: Answered[] = []
    for (const [provider, { ccb }] of flow.bids) {
      const why = this.unpayable(ccb)
      if (why !== undefined) unpayable.push({ provider, code: 'PAYMENT_UNSUPPORTED', detail: why })
    }
    const candidates: BidCandidate[] = [...flow.bids.values()].filter(({ ccb }) => this.unpayable(ccb) === undefined).map(({ ccb }) => {
      const v = this.deps.verifiedLevels.levels.get(ccb.value.provider)
      const card = this.components.collection.get(ccb.value.provider, nowSecs(this.components))
      return { ccb, verifiedLevel: v?.level ?? 'Software', simulated: v?.simulated ?? false, ...(card !== undefined ? { measurements: card.value.attestationDigest } : {}) }
    })
    const { mode, depth } = this.components.config.contracts
    const choice = choose({
      me: this.components.identity.did,
      bids: candidates,
      trust: this.deps.trust.all(),
      policy: { mode, depth, floor: rfp.value.cmesh.floor, allowSimulated: !this.components.config.attest.production },
      now: nowSecs(this.components),
      rfp
    })
    flow.refused = [...unpayable, ...choice.refused.map((r) => ({ provider: r.provider, code: r.code, detail: r.detail }))]
    // "Not chosen" goes to the others once the accept is under way, not in front of it.
    const releaseOthers = (): void => {
      for (const [provider, { ccb, connection }] of flow.bids) {
        if (provider === choice.chosen?.ccb.value.provider) continue
        this.deps.provider.bid.release(connection, ccb.cid, { signal: shutdown }).catch(() => {})
      }
    }
    if (choice.chosen === undefined) {
      releaseOthers()
      return await this.finish(flow, 'no-bids', { code: 'NO_ACCEPTABLE_BID', detail: `${flow.bids.size} bids, ${flow.declines.length} declines, ${flow.refused.length} refused by policy` })
    }
    flow.chosen = choice.chosen.ccb.value.provider
    flow.progress = [...(flow.stages.get(flow.chosen) ?? [])]
    try {
      await this.accept(flow, flow.bids.get(flow.chosen) as { ccb: SignedCcb, connection: Connection })
    } finally {
      releaseOthers()
    }
  }

  /** Why this node cannot pay a bid (no payment config, another token or chain), or undefined. */
  private unpayable (ccb: SignedCcb): string | undefined {
    const currency = ccb.value.bid.currency
    if (!isAssetId(currency)) return undefined
    const p = this.components.config.payment
    if (p === undefined) return `the bid settles in ${currency}; this node has no payment config`
    const asset = parseAssetId(currency)
    if (asset === undefined || asset.network !== `eip155:${p.chainId}` || !sameAddress(asset.asset, p.asset)) return `the bid settles in ${currency}; this node pays in eip155:${p.chainId}/erc20:${p.asset.toLowerCase()}`
    if (p.maxPerPayment !== undefined && ccb.value.bid.cost > BigInt(p.maxPerPayment)) return `the bid costs ${ccb.value.bid.cost.toString()}, over payment.maxPerPayment ${p.maxPerPayment}`
    return undefined
  }

  /** One provider: dial, bond at the RFP's floor, ask, verify the answer. */
  private async collect (flow: Flow, provider: Did, signal: AbortSignal): Promise<void> {
    const { libp2p, metrics } = this.components
    const rfp = flow.rfp
    const stages: string[] = ['dialing']
    flow.stages.set(provider, stages)
    const connection = await libp2p.dial(peerIdFromString(peerIdFromDid(provider)), { signal })
    stages.push('attesting')
    const attest = this.deps.attestation.attest
    if (!attest.isBonded(connection, rfp.value.cmesh.floor)) await attest.attest(connection, { signal, require: rfp.value.cmesh.floor })
    const answer = await this.deps.provider.bid.requestBid(connection, rfp.bytes, { signal })
    const now = nowSecs(this.components)
    if ('ccb' in answer) {
      const ccb = decodeRecord(answer.ccb, [CcbType])
      checkCcb(ccb, rfp, now)
      if (ccb.value.provider !== provider) throw new ContractError('CONTRACT_WRONG_AUTHOR', 'the bid is signed by someone other than the provider dialled')
      flow.bids.set(provider, { ccb, connection })
      metrics.bidsReceived.inc({ outcome: 'bid' })
    } else {
      const decline = decodeRecord(answer.decline, [DeclineType])
      checkDecline(decline, rfp)
      if (decline.value.provider !== provider) throw new ContractError('CONTRACT_WRONG_AUTHOR', 'the decline is signed by someone other than the provider dialled')
      flow.declines.push({ provider, code: decline.value.code, detail: decline.value.detail })
      metrics.bidsReceived.inc({ outcome: 'decline' })
      metrics.declines.inc({ side: 'received', code: decline.value.code })
    }
  }

  /**
   * Pays the x402 resource of `ccba` — only that URL, only the exact amount, token and pay-to the
   * bid and the provider's card name — then signs the CCBAP and the accept updated to name it.
   */
  private async pay (flow: Flow, ccb: SignedCcb, ccba: SignedCcba, url: string): Promise<{ ccba: SignedCcba, ccbap: SignedCcbap }> {
    const { identity, shutdown } = this.components
    const asset = parseAssetId(ccb.value.bid.currency)
    const card = this.components.collection.get(ccb.value.provider, nowSecs(this.components))?.value
    if (asset === undefined) throw new PaymentError('PAYMENT_MISMATCH', 'the provider asked for payment on an unsettled (wei) bid')
    if (card?.payment === undefined || card.payment.network !== asset.network || !sameAddress(card.payment.asset, asset.asset)) {
      throw new PaymentError('PAYMENT_MISMATCH', 'the provider\'s card does not name the payment terms its bid settles in')
    }
    const expectedUrl = x402ResourceUrl(ccb.value.bid.x402.base_url, ccba.uri, ccba.cid.toString())
    if (url !== expectedUrl) throw new PaymentError('PAYMENT_MISMATCH', `the provider asked for payment at ${url}, not at its bid's ${expectedUrl}`)
    flow.state = 'awaiting-payment'
    flow.progress.push('paying')
    await this.save(flow)
    const payment = await this.deps.payments.pay(url, { network: asset.network, asset: asset.asset, payTo: card.payment.payTo, amount: ccb.value.bid.cost }, shutdown)
    const ccbap = signRecord(CcbapType, {
      embed: strongRefTo(ccb),
      txid: payment.txid,
      requester: identity.did,
      createdAtUnixSecs: nowSecs(this.components),
      cmesh: { ccba: strongRefTo(ccba), network: payment.network, payer: payment.payer, amount: payment.amount }
    }, identity)
    // The same record (same at:// address), now naming its payment: an atproto-style update.
    const paid = signRecord(CcbaType, { ...ccba.value, payment: strongRefTo(ccbap) }, identity)
    flow.state = 'paid'
    flow.progress.push('paid')
    this.components.events.publish('contract', { id: flow.rfp.cid.toString(), role: 'requester', state: 'paid', txid: payment.txid })
    await this.save(flow, { ccba: paid.bytes, ccbap: ccbap.bytes, payment })
    return { ccba: paid, ccbap }
  }

  /** CCBA (user_data sealed to the chosen provider's bid key) → CCR + sealed receipt, checked and opened once here. */
  private async accept (flow: Flow, chosen: { ccb: SignedCcb, connection: Connection }): Promise<void> {
    const { identity, shutdown } = this.components
    const { ccb, connection } = chosen
    const receiptKey = await generateReceiptKeyPair()
    const ccba = signRecord(CcbaType, {
      embed: strongRefTo(flow.rfp),
      bid: strongRefTo(ccb),
      requester: identity.did,
      createdAtUnixSecs: nowSecs(this.components),
      cmesh: { receiptKey: receiptKey.publicKey, userData: await sealBytes(flow.userData, ccb.value.cmesh.sealKey, USER_DATA_INFO, ccb.cid.bytes), ...(flow.wifAudience !== undefined ? { wifAudience: flow.wifAudience } : {}) }
    }, identity)
    flow.state = 'accepted'
    await this.save(flow, { ccba: ccba.bytes, receiptKey: receiptKey.privateKey })
    this.components.events.publish('contract', { id: flow.rfp.cid.toString(), role: 'requester', state: 'accepted', provider: ccb.value.provider })
    flow.state = 'provisioning'
    const onProgress = (stage: string): void => {
      flow.progress.push(stage)
      this.components.events.publish('contract', { id: flow.rfp.cid.toString(), role: 'requester', state: flow.state, stage })
    }
    const answer = await this.deps.provider.bid.accept(connection, ccba.bytes, { signal: shutdown, onProgress })
    let done: { ccr: Uint8Array, receipt: { enc: Uint8Array, ct: Uint8Array } }
    let accepted = ccba
    if ('payment' in answer) {
      // A paid bid: pay its x402 resource for this accept, record it (CCBAP), send the accept naming it.
      const paid = await this.pay(flow, ccb, ccba, answer.payment.url)
      accepted = paid.ccba
      flow.state = 'provisioning'
      done = await this.deps.provider.bid.paid(connection, { ccba: paid.ccba.bytes, ccbap: paid.ccbap.bytes }, { signal: shutdown, onProgress })
    } else {
      done = answer
    }
    const ccr = decodeRecord(done.ccr, [CcrType])
    checkCcr(ccr, accepted, ccb, flow.rfp)
    // Opened once here, so a receipt this node cannot open is a failed contract now, not a surprise later.
    await openReceipt(done.receipt, receiptKey.privateKey, ccr.cid.bytes)
    flow.userData = new Uint8Array(0)
    flow.progress.push('ready')
    await this.save(flow, { ccr: done.ccr, receipt: done.receipt })
    await this.finish(flow, 'ready')
  }
}
