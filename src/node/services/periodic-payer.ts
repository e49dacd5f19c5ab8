/**
 * The requester's side of payments after the first: for each of its running contracts on a paid
 * bid that is per-period or postpaid, pays every later payment by its schedule (payment.ts
 * paymentSchedule: a prepaid one a little before its period starts, a postpaid one when its
 * period ends) at the provider's x402 resource for it, exactly as for the first (the bid's amount,
 * token and network, the card's pay-to; the transfer checked on chain), and records each with a
 * CCBAP in the contract (`periodPayments`). A failed attempt is retried until the contract ends.
 */
import type { Startable } from '@libp2p/interface'
import { decodeRecord, signRecord } from '../../market/record.js'
import { CcbType, type SignedCcb } from '../../market/ccb.js'
import { CcbaType, type SignedCcba } from '../../market/ccba.js'
import { CcbapType } from '../../market/ccbap.js'
import { CcrType } from '../../market/ccr.js'
import { TerminationType } from '../../market/termination.js'
import { isPaidBid } from '../../market/contract-checks.js'
import { openReceipt } from '../../market/sealed-receipt.js'
import { strongRefTo } from '../../market/strong-ref.js'
import { paymentSchedule, parseAssetId, planOf, x402PaymentUrl, type ScheduledPayment } from '../../market/payment.js'
import { errorText } from '../../protocols/error-text.js'
import { every, nowSecs, type NodeComponents } from '../components.js'
import { decodeContract, type StoredContract } from '../contract-state.js'
import { PerKeySerial, readContract, updateContract } from '../contract-store.js'
import type { PaymentService } from './payments.js'

const TICK_SECS = 1
/** A prepaid payment is made this long before its period starts (at most a quarter of the period). */
const PREPAY_LEAD_SECS = 30
const RETRY_SECS = 5

interface Owed {
  contract: string
  ccb: SignedCcb
  ccba: SignedCcba
  /** The provider's id for the contract: the first accept's CID (its x402 resources hang off it). */
  firstCid: string
  due: ScheduledPayment
  payAt: number
  inFlight?: boolean
}

export class PeriodicPayer implements Startable {
  private readonly owed = new Map<string, Owed>()
  private readonly serial = new PerKeySerial()
  private timer: NodeJS.Timeout | undefined
  private unsubscribe: (() => void) | undefined

  constructor (private readonly components: NodeComponents, private readonly deps: { payments: PaymentService }) {}

  async start (): Promise<void> {
    const { store, events, log, config } = this.components
    if (config.payment === undefined || !config.roles.includes('requester')) return
    for (const [key, bytes] of await store.entries('contracts')) {
      if (!key.startsWith('requester/')) continue
      try {
        const c = decodeContract(bytes)
        if (c.state === 'ready' || c.state === 'unresponsive') await this.follow(c)
      } catch (err) {
        log.warn(`contract ${key}: cannot schedule its payments: ${errorText(err)}`)
      }
    }
    this.unsubscribe = events.subscribe((event) => {
      const data = event.data as { id?: unknown, role?: unknown, state?: unknown }
      if (event.type !== 'contract' || data.role !== 'requester' || typeof data.id !== 'string') return
      const id = data.id
      if (data.state === 'ended' || data.state === 'failed') { this.forgetUnearned(id, nowSecs(this.components)); return }
      if (data.state !== 'ready') return
      readContract(this.components, 'requester', id)
        .then(async (c) => { if (c?.state === 'ready') await this.follow(c) })
        .catch((err) => log.warn(`contract ${id}: cannot schedule its payments: ${errorText(err)}`))
    })
    this.timer = every(TICK_SECS, () => { this.tick() })
  }

  stop (): void {
    clearInterval(this.timer)
    this.unsubscribe?.()
    this.owed.clear()
  }

  /** The payments of one contract still to make (none for an unsettled or single prepaid bid). */
  private async follow (c: StoredContract): Promise<void> {
    if (c.ccb === undefined || c.ccba === undefined || c.ccr === undefined || c.receipt === undefined || c.receiptKey === undefined) return
    const ccb = decodeRecord(c.ccb, [CcbType])
    if (!isPaidBid(ccb)) return
    const plan = planOf(ccb.value)
    const ccba = decodeRecord(c.ccba, [CcbaType])
    const firstCid = c.ccbap !== undefined ? decodeRecord(c.ccbap, [CcbapType]).value.cmesh.ccba.cid.toString() : ccba.cid.toString()
    // Both sides count from the machine's start: the receipt's valid-to less the duration.
    const receipt = await openReceipt(c.receipt, c.receiptKey, decodeRecord(c.ccr, [CcrType]).cid.bytes)
    const start = receipt.validToUnixSecs - plan.durationSecs
    const paid = new Set((c.periodPayments ?? []).map((p) => p.index))
    const first = ccb.value.bid.prepay ? 1 : 0
    const period = plan.periodSecs ?? plan.durationSecs
    const lead = Math.min(PREPAY_LEAD_SECS, Math.floor(period / 4))
    for (const due of paymentSchedule(plan, start)) {
      if (due.index < first || paid.has(due.index)) continue
      const key = `${c.id}/${due.index}`
      if (this.owed.has(key)) continue
      this.owed.set(key, { contract: c.id, ccb, ccba, firstCid, due, payAt: ccb.value.bid.prepay ? due.dueUnixSecs - lead : due.dueUnixSecs })
    }
  }

  /** A contract that ended owes only what it ran for: payments due by `endedAt` (a postpaid period that ran). */
  private forgetUnearned (contract: string, endedAt: number): void {
    for (const [key, o] of this.owed) if (o.contract === contract && o.due.dueUnixSecs > endedAt) this.owed.delete(key)
  }

  private tick (): void {
    const now = nowSecs(this.components)
    for (const [key, o] of this.owed) {
      if (o.inFlight === true || o.payAt > now) continue
      o.inFlight = true
      this.pay(o)
        .then(() => { this.owed.delete(key) })
        .catch((err) => {
          o.payAt = nowSecs(this.components) + RETRY_SECS
          this.components.log.warn(`contract ${o.contract}: payment ${o.due.index} not made yet: ${errorText(err)}`)
        })
        .finally(() => { o.inFlight = false })
    }
  }

  private async pay (o: Owed): Promise<void> {
    const { identity, collection, shutdown, events } = this.components
    const held = await readContract(this.components, 'requester', o.contract)
    if (held === undefined || held.state === 'failed') { this.forgetUnearned(o.contract, -1); return }
    if (held.state === 'ended') {
      const endedAt = held.termination !== undefined ? decodeRecord(held.termination, [TerminationType]).value.atUnixSecs : nowSecs(this.components)
      if (o.due.dueUnixSecs > endedAt) { this.forgetUnearned(o.contract, endedAt); return }
    }
    if ((held.periodPayments ?? []).some((p) => p.index === o.due.index)) return
    const asset = parseAssetId(o.ccb.value.bid.currency)
    const card = collection.get(o.ccb.value.provider, nowSecs(this.components))?.value
    if (asset === undefined || card?.payment === undefined) throw new Error('the provider\'s card (and with it its pay-to address) is not held here')
    const url = x402PaymentUrl(o.ccb.value.bid.x402.base_url, o.ccba.uri, o.firstCid, o.due.index)
    const payment = await this.deps.payments.pay(url, { network: asset.network, asset: asset.asset, payTo: card.payment.payTo, amount: o.ccb.value.bid.cost }, shutdown)
    const ccbap = signRecord(CcbapType, {
      embed: strongRefTo(o.ccb),
      txid: payment.txid,
      requester: identity.did,
      createdAtUnixSecs: nowSecs(this.components),
      cmesh: { ccba: strongRefTo(o.ccba), network: payment.network, payer: payment.payer, amount: payment.amount }
    }, identity)
    await this.serial.run(o.contract, async () => await updateContract(this.components, 'requester', o.contract, (c) =>
      (c.periodPayments ?? []).some((p) => p.index === o.due.index) ? undefined : { ...c, periodPayments: [...(c.periodPayments ?? []), { index: o.due.index, ...payment, ccbap: ccbap.bytes }] }))
    events.publish('payment', { id: o.contract, role: 'requester', index: o.due.index, txid: payment.txid })
  }
}
