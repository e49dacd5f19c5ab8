/**
 * The provider role in the contract flow: answers RFPs on the bid protocol with a signed CCB
 * (capacity reserved until the bid expires) or a reasoned decline, and on an accepted bid
 * provisions the machine through its backend and returns the CCR with the receipt sealed to the
 * requester. Contract state is on disk before each irreversible step: a restart neither forgets a
 * grant nor provisions one twice. The bid protocol instance is shared with the requester side.
 */
import type { Connection, PeerId, Startable } from '@libp2p/interface'
import { x25519 } from '@noble/curves/ed25519.js'
import { BidProtocol, type AcceptOutcome, type BidAnswer, type ProvisionOutcome } from '../../protocols/bid.js'
import { decodeRecord, signRecord } from '../../market/record.js'
import { CcrfpType, type SignedCcrfp } from '../../market/ccrfp.js'
import { CcbType, type SignedCcb } from '../../market/ccb.js'
import { CcbaType, type SignedCcba } from '../../market/ccba.js'
import { CcbapType } from '../../market/ccbap.js'
import { assetId, periodCost, type PaymentTerms } from '../../market/payment.js'
import { ContractError } from '../../market/contract-error.js'
import { errorText } from '../../protocols/error-text.js'
import { PaymentError, type PaymentService } from './payments.js'
import type { WifIssuer } from './wif-issuer.js'
import { CcrType } from '../../market/ccr.js'
import { DeclineType, type DeclineCode } from '../../market/decline.js'
import { decideBid, reservationIdFor } from '../../market/bid-engine.js'
import { CapacityLedger, capacityTotals } from '../../market/capacity.js'
import { checkCcba, checkPaidAccept, isPaidBid } from '../../market/contract-checks.js'
import { strongRefTo } from '../../market/strong-ref.js'
import { datetimeFromUnixSecs } from '../../market/datetime.js'
import { didFromPublicKey, type Did } from '../../market/identity.js'
import { userDataMatches } from '../../market/ccrfp.js'
import { openBytes, sealBytes, sealReceipt, RECEIPT_INFO, USER_DATA_INFO } from '../../market/sealed-receipt.js'
import { toHex } from '../../market/bytes.js'
import type { CID } from '../../market/cbor.js'
import { CmeshError } from '../../market/errors.js'
import { generateGrantKeyPair } from '../../backends/ssh-keys.js'
import type { Fleet } from '../../backends/fleet.js'
import type { FleetService } from './fleet.js'
import type { Instance, ProvisionProgress } from '../../backends/backend.js'
import { every, nowSecs, type NodeComponents } from '../components.js'
import { contractKey, decodeContract, encodeContract, type StoredContract, type StoredPayment } from '../contract-state.js'
import type { AttestationService } from './attestation.js'
import type { OwnCard } from './own-card.js'

/** Bids in flight, each holding a reservation: bounded so a requester cannot make us hold unbounded state. */
export const MAX_OPEN_BIDS = 1000
const LEDGER_KEY = 'capacity'

/** What the requester sees in `cmesh rfp status` while a machine comes up. */
const PROGRESS_STAGES: Record<ProvisionProgress['type'], string> = {
  'provision:starting': 'provisioning',
  'provision:booting': 'booting',
  'provision:user-data': 'user-data',
  'provision:ready': 'booted'
}

interface OpenBid { rfp: SignedCcrfp, ccb: SignedCcb, sealKey: Uint8Array, requester: Did }
/** An accepted bid on its way to a machine: the stored contract, its bid and the accept as first sent. */
interface Grantable { base: StoredContract, bid: OpenBid, ccba: SignedCcba, started: number }
interface AwaitingPayment extends Grantable { userData: Uint8Array, url: string, deadlineUnixSecs: number }

export type ProviderErrorCode = 'USER_DATA_UNSEALABLE' | 'USER_DATA_MISMATCH' | 'RECEIPT_KEY_INVALID'
export class ProviderError extends CmeshError<ProviderErrorCode> {}

function didOfPeer (peer: PeerId): Did | undefined {
  const key = peer.publicKey?.raw
  return key === undefined ? undefined : didFromPublicKey(key)
}

export class ProviderService implements Startable {
  readonly bid: BidProtocol
  private ledger = new CapacityLedger({})
  private readonly open = new Map<string, OpenBid>()
  /** Accepted paid bids waiting for their payment (by the first accept's CID). */
  private readonly awaiting = new Map<string, AwaitingPayment>()
  private get paymentWindowSecs (): number {
    return this.components.config.payment?.windowSecs ?? 120
  }

  private get fleet (): Fleet {
    return this.init.fleet.fleet
  }
  private timer: NodeJS.Timeout | undefined
  private unsubscribe: (() => void) | undefined

  constructor (private readonly components: NodeComponents, private readonly init: { attestation: AttestationService, ownCard: OwnCard, fleet: FleetService, payments: PaymentService, wif: WifIssuer }) {
    const { config, log } = components
    const providing = config.roles.includes('provider')
    this.bid = new BidProtocol(components.libp2p, {
      network: config.network,
      // The gate: a bond at this node's own floor on this very connection.
      isBonded: (conn: Connection) => init.attestation.attest.isBonded(conn),
      now: components.now,
      log: log.forComponent('bid').debug,
      ...(providing
        ? {
            handlers: {
              onRfp: async (rfp, peer) => await this.answer(rfp, peer),
              onAccept: async (ccba, peer, progress, signal) => await this.fulfil(ccba, peer, progress, signal),
              onPaid: async (paid, peer, progress, signal) => await this.fulfilPaid(paid, peer, progress, signal),
              onRelease: async (ccb, peer) => { this.release(ccb, peer) }
            }
          }
        : {})
    })
  }

  async start (): Promise<void> {
    const { store, log, config } = this.components
    const card = this.init.ownCard.current
    if (card !== undefined) {
      this.ledger = CapacityLedger.fromCard(card.value)
      const saved = await store.get('state', LEDGER_KEY)
      if (saved !== undefined) {
        try {
          const restored = CapacityLedger.fromJSON(JSON.parse(new TextDecoder().decode(saved)))
          // Totals follow the card (the operator may have changed it); holds carry over.
          restored.setTotals(capacityTotals(card.value))
          this.ledger = restored
        } catch (err) {
          log.warn(`stored capacity ledger unreadable (${(err as Error).message}); starting from the card`)
        }
      }
    }
    await this.recover()
    // A contract that ended early (terminated, faulted) gives its capacity back now, not at its valid-to.
    this.unsubscribe = this.components.events.subscribe((event) => {
      const data = event.data as { role?: string, state?: string, id?: string }
      if (event.type === 'contract' && data.role === 'provider' && data.state === 'ended' && typeof data.id === 'string') {
        this.releaseGrant(data.id).catch((err) => { log.warn(`releasing the capacity of ${data.id as string}: ${errorText(err)}`) })
      }
    })
    await this.bid.start()
    if (config.roles.includes('provider')) this.timer = every(5, () => { this.expireBids(); this.lapsePayments() })
  }

  async stop (): Promise<void> {
    clearInterval(this.timer)
    this.unsubscribe?.()
    await this.bid.stop()
    // The fleet service (started before this one) ends the instances when it stops.
  }

  /** A restart: grants that were being provisioned are interrupted (never provisioned again); local instances ended with the process. */
  private async recover (): Promise<void> {
    const { store, metrics } = this.components
    const live = new Set<string>()
    for (const [key, bytes] of await store.entries('contracts')) {
      if (!key.startsWith('provider/')) continue
      const c = decodeContract(bytes)
      if (c.state === 'ready' && (c.validToUnixSecs ?? 0) > nowSecs(this.components)) live.add(c.id)
      // Whatever its state, this grant has been handled: the fleet never provisions it again.
      if (c.backend !== undefined) this.fleet.remember(c.id, c.backend)
      const local = c.backend !== undefined && this.fleet.get(c.backend)?.kind === 'local'
      if (c.state === 'awaiting-payment') {
        // Nothing was paid and nothing runs: the capacity goes back.
        this.ledger.release(reservationIdFor(decodeRecord(c.rfp, [CcrfpType])))
        await this.persistLedger()
        await this.save({ ...c, state: 'failed', error: { code: 'PAYMENT_MISSING', detail: 'the provider restarted before this accept was paid' } })
      }
      else if (c.state === 'paid') await this.save({ ...c, state: 'interrupted', error: { code: 'GRANT_INTERRUPTED', detail: 'the provider restarted after payment settled and before provisioning; it will not provision this grant (the payment stands: settle it with the provider)' } })
      else if (c.state === 'provisioning' || c.state === 'accepted') await this.save({ ...c, state: 'interrupted', error: { code: 'GRANT_INTERRUPTED', detail: 'the provider restarted while provisioning; it will not provision this grant again' } })
      else if (c.state === 'ready' && local) await this.save({ ...c, state: 'ended', error: { code: 'INSTANCE_ENDED', detail: 'the local dev backend\'s instances end with the node' } })
      else continue
      metrics.contracts.inc({ role: 'provider', state: 'interrupted' })
    }
    // Machines for grants with no live contract here (a crash mid-provisioning) are ended, not left running.
    await this.init.fleet.reapOrphans(live)
  }

  private async releaseGrant (id: string): Promise<void> {
    const held = await this.components.store.get('contracts', contractKey('provider', id))
    if (held === undefined) return
    if (this.ledger.release(reservationIdFor(decodeRecord(decodeContract(held).rfp, [CcrfpType])))) await this.persistLedger()
  }

  private async save (c: StoredContract): Promise<void> {
    await this.components.store.put('contracts', contractKey('provider', c.id), encodeContract({ ...c, updatedAtUnixSecs: nowSecs(this.components) }))
  }

  private async persistLedger (): Promise<void> {
    await this.components.store.put('state', LEDGER_KEY, new TextEncoder().encode(JSON.stringify(this.ledger.toJSON())))
  }

  /** RFP → a signed CCB (capacity reserved) or a signed decline with its reason. */
  private async answer (bytes: Uint8Array, peer: PeerId): Promise<BidAnswer> {
    const { identity, metrics, config } = this.components
    const now = nowSecs(this.components)
    const rfp = decodeRecord(bytes, [CcrfpType])
    const card = this.init.ownCard.current
    const decline = (code: DeclineCode, detail: string): BidAnswer => this.decline(rfp, code, detail)
    // The RFP comes from its requester, on the requester's own connection.
    if (didOfPeer(peer) !== rfp.value.requester) return decline('POLICY_REFUSED', 'the RFP must come from its requester')
    if (card === undefined) return decline('NO_CAPACITY', 'this node publishes no provider card')
    if (this.open.size >= MAX_OPEN_BIDS) return decline('NO_CAPACITY', 'too many open bids')
    // Asked again about the same RFP: the same bid (one hold, one seal key), not a second one.
    for (const open of this.open.values()) if (open.rfp.cid.equals(rfp.cid) && open.ccb.value.cmesh.expiresAtUnixSecs > now) return { ccb: open.ccb.bytes }
    this.ledger.expire(now)
    const decision = decideBid({
      card: card.value,
      rfp,
      capacity: this.ledger,
      ownLevel: this.init.attestation.offer,
      ownMeasurements: card.value.attestationDigest,
      now
    })
    if (decision.kind === 'decline') return this.decline(rfp, decision.code, decision.detail)
    const o = decision.offer
    const reserved = this.ledger.reserve(o.reservationId, o.backend, { cpus: o.cpus, memMiB: o.memMiB, diskGiB: o.diskGiB }, o.expiresAtUnixSecs, now)
    if (reserved !== 'reserved' && reserved !== 'duplicate') return decline('NO_CAPACITY', `capacity could not be reserved (${reserved})`)
    await this.persistLedger()
    const sealKey = x25519.utils.randomSecretKey()
    const payTerms = this.init.payments.terms
    const pay = { frequency: config.payment?.frequency ?? 'one-time', periodSecs: config.payment?.periodSecs ?? 3600, prepay: config.payment?.prepay ?? true }
    // Per period only when the contract spans more than one period and a period's price is not zero.
    const perPeriod = payTerms !== undefined && pay.frequency === 'per-period' && o.durationSecs > pay.periodSecs && periodCost(o.costWei, o.durationSecs, pay.periodSecs) > 0n
    // Workload identity only where the backend can put the credential on the machine.
    const wifTerms = this.fleet.get(o.backend)?.placesGrantFiles === true ? this.init.wif.bidTerms() : undefined
    const ccb = signRecord(CcbType, {
      embed: strongRefTo(rfp),
      bid: payTerms !== undefined
        ? { cost: perPeriod ? periodCost(o.costWei, o.durationSecs, pay.periodSecs) : o.costWei, currency: assetId(payTerms.network, payTerms.asset), frequency: perPeriod ? 'per-period' : 'one-time', prepay: pay.prepay, x402: { base_url: this.init.payments.baseUrl } }
        : { cost: o.costWei, currency: 'wei', frequency: 'one-time', prepay: false, x402: { base_url: '' } },
      ...(wifTerms !== undefined ? { wif: wifTerms } : {}),
      provider: identity.did,
      createdAtUnixSecs: now,
      cmesh: { expiresAtUnixSecs: o.expiresAtUnixSecs, backend: o.backend, region: o.region, level: card.value.attestationLevel, cpus: o.cpus, memMiB: o.memMiB, diskGiB: o.diskGiB, durationSecs: o.durationSecs, sealKey: x25519.getPublicKey(sealKey), heartbeatSecs: config.lifecycle.heartbeatSecs, ...(perPeriod ? { periodSecs: pay.periodSecs } : {}) }
    }, identity)
    this.open.set(ccb.cid.toString(), { rfp, ccb, sealKey, requester: rfp.value.requester })
    metrics.bidsSent.inc({ outcome: 'bid' })
    return { ccb: ccb.bytes }
  }

  private decline (rfp: SignedCcrfp, code: DeclineCode, detail: string): BidAnswer {
    const { identity, metrics } = this.components
    const record = signRecord(DeclineType, { rfp: strongRefTo(rfp), provider: identity.did, createdAtUnixSecs: nowSecs(this.components), code, detail: detail.slice(0, 256) }, identity)
    metrics.bidsSent.inc({ outcome: 'decline' })
    metrics.declines.inc({ side: 'sent', code })
    return { decline: record.bytes }
  }

  /** Not chosen: the reservation goes back. */
  private release (ccb: CID, peer: PeerId): void {
    const bid = this.open.get(ccb.toString())
    if (bid === undefined || bid.requester !== didOfPeer(peer)) return
    this.open.delete(ccb.toString())
    this.ledger.release(reservationIdFor(bid.rfp))
    void this.persistLedger().catch(() => {})
  }

  private expireBids (): void {
    const now = nowSecs(this.components)
    for (const [key, bid] of this.open) if (bid.ccb.value.cmesh.expiresAtUnixSecs <= now) this.open.delete(key)
    if (this.ledger.expire(now).length > 0) void this.persistLedger().catch(() => {})
  }

  /**
   * CCBA → (a paid bid: where to pay; see `fulfilPaid`) → provision → CCR + sealed receipt.
   * Idempotent per CCBA: a retry gets the stored answer.
   */
  private async fulfil (bytes: Uint8Array, peer: PeerId, progress: (stage: string) => void, signal: AbortSignal): Promise<AcceptOutcome> {
    const { store, metrics } = this.components
    const now = nowSecs(this.components)
    const ccba = decodeRecord(bytes, [CcbaType])
    const id = ccba.cid.toString()
    // Only the requester who signed it learns anything about this accept, stored answers included.
    if (didOfPeer(peer) !== ccba.value.requester) return { failed: { code: 'CONTRACT_WRONG_AUTHOR', detail: 'the accept must come from the requester who signed it' } }
    const stored = await store.get('contracts', contractKey('provider', id))
    if (stored !== undefined) {
      const c = decodeContract(stored)
      if (c.state === 'ready' && c.ccr !== undefined && c.receipt !== undefined) return { ccr: c.ccr, receipt: c.receipt }
      const pending = this.awaiting.get(id)
      if (c.state === 'awaiting-payment' && pending !== undefined) return { payment: { url: pending.url, deadlineUnixSecs: pending.deadlineUnixSecs } }
      return { failed: c.error ?? { code: 'GRANT_IN_PROGRESS', detail: `this grant is ${c.state}` } }
    }
    const bid = this.open.get(ccba.value.bid.cid.toString())
    if (bid === undefined) return { failed: { code: 'BID_UNKNOWN', detail: 'no open bid of this provider matches (expired, released, or from before a restart)' } }
    if (didOfPeer(peer) !== bid.requester) return { failed: { code: 'CONTRACT_WRONG_AUTHOR', detail: 'the accept must come from the RFP\'s requester' } }
    try {
      checkCcba(ccba, bid.ccb, bid.rfp, now)
      if (ccba.value.payment !== undefined) throw new ContractError('CONTRACT_PAYMENT_MISMATCH', 'an accept names its payment only once paid: send it without, pay, then send the paid accept')
    } catch (err) {
      return { failed: { code: err instanceof CmeshError ? err.code : 'CONTRACT_INVALID', detail: (err as Error).message } }
    }
    // Paid before provisioning: a prepaid bid's first payment. A postpaid bid's payments come later (periodic-charges).
    const paid = isPaidBid(bid.ccb) && bid.ccb.value.bid.prepay
    const window = paid ? this.paymentWindowSecs : 0
    const terms = bid.ccb.value.cmesh
    const base: StoredContract = { role: 'provider', id, state: paid ? 'awaiting-payment' : 'provisioning', rfp: bid.rfp.bytes, ccb: bid.ccb.bytes, ccba: ccba.bytes, counterparty: bid.requester, costWei: bid.ccb.value.bid.cost.toString(), backend: terms.backend, validToUnixSecs: now + window + terms.durationSecs, progress: [], updatedAtUnixSecs: now }
    // On disk before anything irreversible: a restart from here on never provisions this grant again.
    this.open.delete(ccba.value.bid.cid.toString())
    this.ledger.commit(reservationIdFor(bid.rfp), base.validToUnixSecs as number)
    await this.persistLedger()
    await this.save(base)
    metrics.contracts.inc({ role: 'provider', state: base.state })
    const contract: Grantable = { base, bid, ccba, started: performance.now() }
    // Checked before any payment is asked for: nobody pays for an accept that cannot be provisioned.
    let userData: Uint8Array
    try {
      userData = await this.openUserData(contract)
    } catch (err) {
      return await this.fail(contract, err)
    }
    if (!paid) return await this.provisionGrant(contract, ccba, userData, progress, signal)
    const deadline = now + window
    // Settled: `paid` is on disk before the payer hears so (and so before any paid accept is taken).
    const charge = this.init.payments.expect({ uri: ccba.uri, cid: id }, bid.ccb.value.bid.cost, deadline, async (payment) => {
      if (this.awaiting.has(id)) await this.save({ ...base, state: 'paid', payment })
    })
    charge.done.catch(async (err) => {
      if (!this.awaiting.delete(id)) return
      await this.fail(contract, err)
    }).catch((err) => { this.components.log.warn(`grant ${id}: ${errorText(err)}`) })
    this.awaiting.set(id, { ...contract, userData, url: charge.url, deadlineUnixSecs: deadline })
    progress('awaiting-payment')
    return { payment: { url: charge.url, deadlineUnixSecs: deadline } }
  }

  /**
   * The paid accept: the CCBA updated to name the requester's CCBAP. The txid must be on chain
   * (an exact transfer to this node) and be the settlement this node's facilitator made for the
   * accept — never a record taken on its word — and then the grant is provisioned.
   */
  private async fulfilPaid (paid: { ccba: Uint8Array, ccbap: Uint8Array }, peer: PeerId, progress: (stage: string) => void, signal: AbortSignal): Promise<ProvisionOutcome> {
    const ccba = decodeRecord(paid.ccba, [CcbaType])
    const ccbap = decodeRecord(paid.ccbap, [CcbapType])
    if (didOfPeer(peer) !== ccba.value.requester) return { failed: { code: 'CONTRACT_WRONG_AUTHOR', detail: 'the paid accept must come from the requester who signed it' } }
    const id = ccbap.value.cmesh.ccba.cid.toString()
    const stored = await this.components.store.get('contracts', contractKey('provider', id))
    if (stored === undefined) return { failed: { code: 'BID_UNKNOWN', detail: 'this provider holds no accept that payment names' } }
    const c = decodeContract(stored)
    if (c.state === 'ready' && c.ccr !== undefined && c.receipt !== undefined) return { ccr: c.ccr, receipt: c.receipt }
    const pending = this.awaiting.get(id)
    if (pending === undefined || (c.state !== 'awaiting-payment' && c.state !== 'paid')) return { failed: c.error ?? { code: 'GRANT_IN_PROGRESS', detail: `this grant is ${c.state}` } }
    if (didOfPeer(peer) !== pending.bid.requester) return { failed: { code: 'CONTRACT_WRONG_AUTHOR', detail: 'the paid accept must come from the RFP\'s requester' } }
    try {
      checkPaidAccept(ccba, pending.ccba, ccbap, pending.bid.ccb)
      const terms = this.init.payments.terms as PaymentTerms
      await this.init.payments.findTransfer(ccbap.value.txid, { from: ccbap.value.cmesh.payer, to: terms.payTo, amount: pending.bid.ccb.value.bid.cost })
      const settled = this.init.payments.charges.settlement(id)
      if (settled === undefined) throw new PaymentError('PAYMENT_MISMATCH', 'no payment for this accept has settled here yet')
      if (settled.txid !== ccbap.value.txid) throw new PaymentError('PAYMENT_MISMATCH', `this accept was paid by ${settled.txid}, not ${ccbap.value.txid}`)
    } catch (err) {
      // The payment may still come (or be named right): the grant keeps waiting until its window closes.
      return { failed: { code: err instanceof CmeshError ? err.code : 'CONTRACT_INVALID', detail: errorText(err).slice(0, 512) } }
    }
    // Two paid accepts racing for one grant: only the first provisions.
    if (!this.awaiting.delete(id)) return { failed: { code: 'GRANT_IN_PROGRESS', detail: 'this grant is already being provisioned' } }
    const payment = this.init.payments.charges.settlement(id) as StoredPayment
    const contract: Grantable = { ...pending, base: { ...pending.base, state: 'provisioning', ccba: ccba.bytes, ccbap: ccbap.bytes, payment } }
    await this.save(contract.base)
    return await this.provisionGrant(contract, ccba, pending.userData, progress, signal)
  }

  /** Payment windows that closed with nothing paid: the grant fails PAYMENT_MISSING and its capacity goes back. */
  private lapsePayments (): void {
    const now = nowSecs(this.components)
    for (const [id, pending] of this.awaiting) {
      if (pending.deadlineUnixSecs > now || this.init.payments.charges.settlement(id) !== undefined) continue
      this.init.payments.charges.lapse(id)
    }
  }

  private async openUserData (c: Grantable): Promise<Uint8Array> {
    let userData: Uint8Array
    try {
      userData = await openBytes(c.ccba.value.cmesh.userData, c.bid.sealKey, USER_DATA_INFO, c.bid.ccb.cid.bytes)
    } catch (err) {
      throw new ProviderError('USER_DATA_UNSEALABLE', errorText(err))
    }
    if (!userDataMatches(c.bid.rfp.value.user_data, userData)) throw new ProviderError('USER_DATA_MISMATCH', 'the sealed user_data does not hash to the RFP\'s reference')
    // The receipt must be sealable before a machine exists for it (a low-order key would strand one).
    try {
      await sealBytes(new Uint8Array(1), c.ccba.value.cmesh.receiptKey, RECEIPT_INFO, c.ccba.cid.bytes)
    } catch (err) {
      throw new ProviderError('RECEIPT_KEY_INVALID', errorText(err))
    }
    return userData
  }

  private async fail (c: Grantable, err: unknown): Promise<ProvisionOutcome> {
    const { metrics, log } = this.components
    const code = err instanceof CmeshError ? err.code : 'BACKEND_PROVISION_FAILED'
    const detail = errorText(err).slice(0, 512)
    this.ledger.release(reservationIdFor(c.bid.rfp))
    await this.persistLedger().catch(() => {})
    await this.save({ ...c.base, state: 'failed', error: { code, detail } })
    metrics.contracts.inc({ role: 'provider', state: 'failed' })
    metrics.provisionDuration.observe({ backend: c.bid.ccb.value.cmesh.backend, outcome: 'failed' }, (performance.now() - c.started) / 1000)
    log.info(`grant ${c.base.id} failed: ${code}: ${detail}`)
    return { failed: { code, detail } }
  }

  /** Provision the machine and answer with the CCR (naming `ccba`, the accept as last sent) and the receipt sealed to the requester. */
  private async provisionGrant (c: Grantable, ccba: SignedCcba, userData: Uint8Array, progress: (stage: string) => void, signal: AbortSignal): Promise<ProvisionOutcome> {
    const { identity, metrics, log } = this.components
    const { bid, base } = c
    const id = base.id
    const terms = bid.ccb.value.cmesh
    // The contract runs its full duration from when its machine is provisioned.
    const validTo = nowSecs(this.components) + terms.durationSecs
    const running: StoredContract = { ...base, state: 'provisioning', validToUnixSecs: validTo }
    c.base = running
    await this.save(running)
    const grantKey = generateGrantKeyPair(`cmesh-grant-${id.slice(-12)}`)
    // The workload's identity: a credential for this contract's subject and the requester's audience.
    const files = this.init.wif.enabled && bid.ccb.value.wif !== undefined
      ? this.init.wif.grantFiles({ id, requester: bid.requester, role: bid.rfp.value.role, audience: ccba.value.cmesh.wifAudience ?? bid.requester, validToUnixSecs: validTo, ...(bid.ccb.value.wif.subject !== undefined ? { subjectTemplate: bid.ccb.value.wif.subject } : {}) })
      : []
    let instance: Instance
    try {
      instance = await this.fleet.provision({ id, cpus: terms.cpus, memMiB: terms.memMiB, diskGiB: terms.diskGiB, region: terms.region, tdx: bid.rfp.value.cmesh.tdx, userData, validToUnixSecs: validTo, authorizedKey: grantKey.authorizedKey, files }, terms.durationSecs, {
        backend: terms.backend,
        signal: AbortSignal.any([signal, this.components.shutdown]),
        onProgress: (event) => { progress(PROGRESS_STAGES[event.type]) }
      })
    } catch (err) {
      return await this.fail(c, err)
    }
    progress('sealing')
    let ccr
    let receipt
    try {
      // One clock reading: createdAt and createdAtUnixSecs must name the same second.
      const at = nowSecs(this.components)
      ccr = signRecord(CcrType, {
        rfp: strongRefTo(bid.rfp),
        bid: strongRefTo(bid.ccb),
        ccba: strongRefTo(ccba),
        createdAt: datetimeFromUnixSecs(at),
        ...(instance.ipv4 !== undefined || instance.ipv6 !== undefined ? { compute: { ...(instance.ipv4 !== undefined ? { ipv4: instance.ipv4 } : {}), ...(instance.ipv6 !== undefined ? { ipv6: instance.ipv6 } : {}) } } : {}),
        provider: identity.did,
        createdAtUnixSecs: at
      }, identity)
      receipt = await sealReceipt({ host: instance.host, port: instance.port, user: instance.user, privateKey: grantKey.privateKey, hostKeyFingerprint: instance.hostKeyFingerprint, hostKey: instance.hostKey, grantId: id, validToUnixSecs: validTo }, ccba.value.cmesh.receiptKey, ccr.cid.bytes)
    } catch (err) {
      // No receipt, no machine: nobody could ever log in to it.
      await this.fleet.terminate(id).catch(() => {})
      return await this.fail(c, err)
    }
    await this.save({ ...running, state: 'ready', ccr: ccr.bytes, receipt, startedAtUnixSecs: nowSecs(this.components) })
    metrics.contracts.inc({ role: 'provider', state: 'ready' })
    metrics.provisionDuration.observe({ backend: terms.backend, outcome: 'ready' }, (performance.now() - c.started) / 1000)
    log.info(`grant ${id} ready for ${bid.requester} on ${terms.backend} (${toHex(ccr.digest).slice(0, 16)}…)`)
    // The lifecycle service takes it from here (heartbeats, usage, termination).
    this.components.events.publish('contract', { id, role: 'provider', state: 'ready', requester: bid.requester })
    return { ccr: ccr.bytes, receipt }
  }
}
