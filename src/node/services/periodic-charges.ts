/**
 * The provider's side of payments after the first: for a running contract on a paid bid that is
 * per-period or postpaid, every payment still to come gets its x402 charge (the accept's resource
 * with `/<index>`), open from the start so the requester may pay early, and due by its schedule
 * (payment.ts paymentSchedule) plus the payment window as grace. A payment not settled by then
 * ends the contract with `PAYMENT_MISSING`. Settlements are kept with the contract
 * (`periodPayments`); a restart re-opens the charges not yet paid.
 */
import type { Startable } from '@libp2p/interface'
import { decodeRecord } from '../../market/record.js'
import { CcbType } from '../../market/ccb.js'
import { CcbaType } from '../../market/ccba.js'
import { isPaidBid } from '../../market/contract-checks.js'
import { paymentCount, paymentSchedule, planOf } from '../../market/payment.js'
import { errorText } from '../../protocols/error-text.js'
import { every, nowSecs, type NodeComponents } from '../components.js'
import { decodeContract, type StoredContract } from '../contract-state.js'
import { PerKeySerial, readContract, updateContract } from '../contract-store.js'
import type { PaymentService } from './payments.js'
import type { ContractLifecycle } from './contract-lifecycle.js'

const TICK_SECS = 2

export class PeriodicCharges implements Startable {
  /** Open charges per contract: key → when that payment falls due. */
  private readonly open = new Map<string, Map<string, number>>()
  private readonly serial = new PerKeySerial()
  private timer: NodeJS.Timeout | undefined
  private unsubscribe: (() => void) | undefined

  constructor (private readonly components: NodeComponents, private readonly deps: { payments: PaymentService, lifecycle: ContractLifecycle }) {}

  async start (): Promise<void> {
    const { store, events, log, config } = this.components
    if (config.payment === undefined || !config.roles.includes('provider')) return
    for (const [key, bytes] of await store.entries('contracts')) {
      if (!key.startsWith('provider/')) continue
      try {
        const c = decodeContract(bytes)
        if (c.state === 'ready') this.follow(c)
      } catch (err) {
        log.warn(`contract ${key}: cannot open its later payments: ${errorText(err)}`)
      }
    }
    this.unsubscribe = events.subscribe((event) => {
      const data = event.data as { id?: unknown, role?: unknown, state?: unknown }
      if (event.type !== 'contract' || data.role !== 'provider' || typeof data.id !== 'string') return
      const id = data.id
      if (data.state === 'ended') { this.closeUnearned(id, nowSecs(this.components)); return }
      if (data.state !== 'ready' || this.open.has(id)) return
      readContract(this.components, 'provider', id)
        .then((c) => { if (c?.state === 'ready') this.follow(c) })
        .catch((err) => log.warn(`contract ${id}: cannot open its later payments: ${errorText(err)}`))
    })
    this.timer = every(TICK_SECS, () => { this.lapseOverdue() })
  }

  stop (): void {
    clearInterval(this.timer)
    this.unsubscribe?.()
    for (const id of [...this.open.keys()]) this.closeUnearned(id, Infinity)
  }

  /** Opens the charges still to be paid for a ready contract. */
  private follow (c: StoredContract): void {
    if (c.ccb === undefined || c.ccba === undefined || c.validToUnixSecs === undefined) return
    const ccb = decodeRecord(c.ccb, [CcbType])
    if (!isPaidBid(ccb)) return
    const plan = planOf(ccb.value)
    const first = ccb.value.bid.prepay ? 1 : 0
    if (paymentCount(plan) <= first) return
    // The provider's contract id is the first accept's CID; its at:// address is the same after the paid update.
    const uri = decodeRecord(c.ccba, [CcbaType]).uri
    const paid = new Set((c.periodPayments ?? []).map((p) => p.index))
    const start = c.validToUnixSecs - plan.durationSecs
    const grace = this.components.config.payment?.windowSecs ?? 120
    const keys = new Map<string, number>()
    this.open.set(c.id, keys)
    for (const due of paymentSchedule(plan, start)) {
      if (due.index < first || paid.has(due.index)) continue
      const charge = this.deps.payments.expect({ uri, cid: c.id }, plan.cost, due.dueUnixSecs + grace, async (payment) => {
        await this.serial.run(c.id, async () => await updateContract(this.components, 'provider', c.id, (held) =>
          (held.periodPayments ?? []).some((p) => p.index === due.index) ? undefined : { ...held, periodPayments: [...(held.periodPayments ?? []), { index: due.index, ...payment }] }))
        this.components.events.publish('payment', { id: c.id, role: 'provider', index: due.index, txid: payment.txid })
      }, due.index)
      keys.set(charge.key, due.dueUnixSecs)
      charge.done.then(() => { keys.delete(charge.key) }, async (err) => {
        if (!keys.delete(charge.key)) return
        const detail = `payment ${due.index + 1} of ${paymentCount(plan)}, due ${new Date(due.dueUnixSecs * 1000).toISOString()}, was not settled: ${errorText(err)}`
        this.components.metrics.payments.inc({ role: 'provider', outcome: 'missing' })
        const held = await readContract(this.components, 'provider', c.id)
        // Owed for a contract that has already ended (a postpaid last period): nothing left to stop; it is on record.
        if (held?.state !== 'ready') { this.components.log.warn(`contract ${c.id}: ${detail}`); return }
        await this.deps.lifecycle.terminate(c.id, 'PAYMENT_MISSING', detail.slice(0, 256))
      }).catch((err) => { this.components.log.warn(`contract ${c.id}: ${errorText(err)}`) })
    }
  }

  private lapseOverdue (): void {
    const now = nowSecs(this.components)
    for (const key of this.deps.payments.charges.overdue(now)) {
      for (const keys of this.open.values()) if (keys.has(key)) this.deps.payments.charges.lapse(key)
    }
  }

  /**
   * A contract that ended: the charges for what it will no longer run are closed; those already
   * earned (due by `now`, e.g. a postpaid period that ran) stay payable until their deadline.
   */
  private closeUnearned (id: string, now: number): void {
    const keys = this.open.get(id)
    if (keys === undefined) return
    for (const [key, due] of keys) {
      if (due <= now) continue
      keys.delete(key)
      this.deps.payments.charges.close(key)
    }
    if (keys.size === 0) this.open.delete(id)
  }
}
