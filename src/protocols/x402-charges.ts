/**
 * The provider's x402 resources (exact scheme): one charge per payment of an accepted bid, at
 * `<base_url>/ccr/<accept at-uri>/<accept CID>[/<index>]`. Unpaid, a resource answers 402 with its
 * requirements; given a payment it checks that the payment accepts exactly these requirements and
 * moves exactly the amount to the pay-to (x402's facilitator alone takes "at least"), verifies and
 * settles it with the facilitator it is given, confirms the transfer on chain itself, lets the
 * caller record it, and answers 200 with the settlement — the same 200 when asked again, never a
 * second payment. HTTP-free: `serve` returns status, JSON and headers for the node's server.
 */
import { decodePaymentSignatureHeader, encodePaymentRequiredHeader, encodePaymentResponseHeader } from '@x402/core/http'
import type { PaymentPayload, PaymentRequirements, SettleResponse, VerifyResponse } from '@x402/core/types'
import { CmeshError } from '../market/errors.js'
import { sameAddress, sameRequirements, x402PaymentUrl, type ExactRequirements, type Settlement } from '../market/payment.js'
import { errorText } from './error-text.js'

export type PaymentErrorCode =
  | 'PAYMENT_UNAVAILABLE' | 'PAYMENT_REFUSED' | 'PAYMENT_NOT_ON_CHAIN' | 'PAYMENT_TX_FAILED'
  | 'PAYMENT_MISMATCH' | 'PAYMENT_MISSING' | 'PAYMENT_CHAIN_UNREACHABLE' | 'PAYMENT_TXID_REUSED'
export class PaymentError extends CmeshError<PaymentErrorCode> {}

/** How long an x402 authorization the requester signs may stay valid. */
export const PAYMENT_AUTH_TIMEOUT_SECS = 300
/** Settled charges kept for idempotent re-reads. */
const MAX_CHARGES = 10_000
/** Reads of a settlement the facilitator reported but the RPC does not show yet. */
const CHAIN_READ_ATTEMPTS = 5

export interface ChargeResponse {
  status: number
  json: unknown
  headers?: Record<string, string>
}

export interface X402ChargesInit {
  /** The bid's `x402.base_url`. */
  baseUrl: () => string
  facilitator: {
    verify: (payload: PaymentPayload, requirements: PaymentRequirements) => Promise<VerifyResponse>
    settle: (payload: PaymentPayload, requirements: PaymentRequirements) => Promise<SettleResponse>
  }
  /** Throws a PaymentError unless `txid` moved exactly `amount` of the token from `from` to `to`, on chain. */
  findTransfer: (txid: string, expect: { from: string, to: string, amount: bigint }) => Promise<void>
  /** Unix seconds now. */
  now: () => number
  /** Why a settlement failed, for the operator (e.g. no gas): appended to the payer's error. */
  explainSettleFailure?: () => Promise<string | undefined>
  onOutcome?: (outcome: 'refused' | 'settle-failed' | 'settled') => void
  log?: { info: (line: string) => void, warn: (line: string) => void, error: (line: string) => void }
}

interface Charge {
  uri: string
  cid: string
  /** Which payment of the accept: 0 the first (the accept's own resource), then 1, 2, … */
  index: number
  requirements: ExactRequirements
  deadlineUnixSecs: number
  settled?: Settlement & { response: string }
  settling?: Promise<ChargeResponse>
  /** The caller records the settlement (on disk) before the payer hears it is paid. */
  onSettled: (payment: Settlement) => Promise<void>
  resolve: (payment: Settlement) => void
  reject: (err: Error) => void
}

export function chargeKey (ccbaCid: string, index: number): string {
  return index === 0 ? ccbaCid : `${ccbaCid}/${index}`
}

export class X402Charges {
  private readonly charges = new Map<string, Charge>()
  private readonly settledTx = new Set<string>()

  constructor (private readonly init: X402ChargesInit) {}

  /**
   * Opens the charge for payment `index` of an accepted bid. `done` resolves with the settlement,
   * or rejects with PAYMENT_MISSING when `lapse` ends it (the caller's timer) or `rejectAll`.
   */
  expect (ccba: { uri: string, cid: string }, requirements: ExactRequirements, deadlineUnixSecs: number, onSettled: (payment: Settlement) => Promise<void>, index = 0): { key: string, url: string, done: Promise<Settlement> } {
    let resolve!: (payment: Settlement) => void
    let reject!: (err: Error) => void
    const done = new Promise<Settlement>((res, rej) => { resolve = res; reject = rej })
    done.catch(() => {})
    const key = chargeKey(ccba.cid, index)
    this.charges.get(key)?.reject(new PaymentError('PAYMENT_MISSING', 'replaced by a new charge'))
    this.charges.set(key, { uri: ccba.uri, cid: ccba.cid, index, requirements, deadlineUnixSecs, onSettled, resolve, reject })
    for (const [old, charge] of this.charges) if (this.charges.size > MAX_CHARGES && charge.settled !== undefined) this.charges.delete(old)
    return { key, url: x402PaymentUrl(this.init.baseUrl(), ccba.uri, ccba.cid, index), done }
  }

  /** The charge's settlement so far (undefined until paid). */
  settlement (key: string): Settlement | undefined {
    const s = this.charges.get(key)?.settled
    return s === undefined ? undefined : { txid: s.txid, payer: s.payer, network: s.network, amount: s.amount }
  }

  /** Open charges, not settled nor settling, whose deadline has passed at `now`. */
  overdue (now: number): string[] {
    return [...this.charges].filter(([, c]) => c.settled === undefined && c.settling === undefined && c.deadlineUnixSecs <= now).map(([key]) => key)
  }

  /** Closes a charge that is no longer wanted (its contract ended), without calling it missing. */
  close (key: string): void {
    const charge = this.charges.get(key)
    if (charge === undefined || charge.settling !== undefined) return
    this.charges.delete(key)
  }

  /** Ends a charge nobody paid in time; a settlement in flight is let finish (the payer's money may be moving). */
  lapse (key: string): void {
    const charge = this.charges.get(key)
    if (charge === undefined || charge.settled !== undefined || charge.settling !== undefined) return
    this.charges.delete(key)
    charge.reject(new PaymentError('PAYMENT_MISSING', 'no payment settled before the payment window closed'))
  }

  rejectAll (why: string): void {
    for (const charge of this.charges.values()) if (charge.settled === undefined) charge.reject(new PaymentError('PAYMENT_MISSING', why))
    this.charges.clear()
  }

  /** A GET of a charge's resource; `paymentHeader` is `PAYMENT-SIGNATURE` (v2) or `X-PAYMENT`. */
  async serve (resource: { at: string, cid: string, index?: string }, paymentHeader: string | undefined): Promise<ChargeResponse> {
    const index = resource.index === undefined ? 0 : /^[1-9][0-9]{0,5}$/.test(resource.index) ? Number(resource.index) : -1
    const charge = index < 0 ? undefined : this.charges.get(chargeKey(resource.cid, index))
    if (charge === undefined || charge.uri !== resource.at) return refusal(404, 'CHARGE_UNKNOWN', 'no accepted bid of this provider awaits payment here')
    if (charge.settled !== undefined) return this.paidResponse(charge)
    if (this.init.now() >= charge.deadlineUnixSecs) return refusal(410, 'PAYMENT_MISSING', 'the payment window for this accept has closed')
    if (paymentHeader === undefined || paymentHeader === '') return this.paymentRequired(charge)
    // One settlement per charge: a second request while the first settles gets its answer.
    if (charge.settling === undefined) {
      charge.settling = this.settle(charge, paymentHeader).finally(() => { charge.settling = undefined })
    }
    return await charge.settling
  }

  private paymentRequired (charge: Charge, error?: string): ChargeResponse {
    const required = {
      x402Version: 2,
      ...(error !== undefined ? { error } : {}),
      resource: { url: x402PaymentUrl(this.init.baseUrl(), charge.uri, charge.cid, charge.index), description: `compute contract ${charge.uri}${charge.index > 0 ? `, payment ${charge.index}` : ''}`, mimeType: 'application/json' },
      accepts: [charge.requirements]
    }
    return { status: 402, json: required, headers: { 'PAYMENT-REQUIRED': encodePaymentRequiredHeader(required as any) } }
  }

  private paidResponse (charge: Charge): ChargeResponse {
    const s = charge.settled as NonNullable<Charge['settled']>
    return { status: 200, json: { state: 'paid', ccba: { uri: charge.uri, cid: charge.cid }, index: charge.index, txid: s.txid, payer: s.payer, network: s.network, amount: s.amount }, headers: { 'PAYMENT-RESPONSE': s.response } }
  }

  private async settle (charge: Charge, header: string): Promise<ChargeResponse> {
    const { facilitator, onOutcome, log } = this.init
    let payload: any
    try {
      payload = decodePaymentSignatureHeader(header)
    } catch (err) {
      return this.paymentRequired(charge, `unreadable payment: ${errorText(err)}`)
    }
    // Exactly what was asked: the x402 facilitator takes "at least", a contract costs what the bid says.
    if (payload?.x402Version !== 2 || !sameRequirements(charge.requirements, payload.accepted)) return this.paymentRequired(charge, 'the payment does not accept these requirements')
    const auth = payload.payload?.authorization
    if (auth?.value !== charge.requirements.amount || typeof auth?.to !== 'string' || !sameAddress(auth.to, charge.requirements.payTo)) {
      return this.paymentRequired(charge, `the authorization must move exactly ${charge.requirements.amount} to ${charge.requirements.payTo}`)
    }
    const requirements = charge.requirements as PaymentRequirements
    const verified = await facilitator.verify(payload, requirements)
    if (!verified.isValid) {
      onOutcome?.('refused')
      return this.paymentRequired(charge, `payment refused: ${verified.invalidReason ?? 'invalid'}${verified.invalidMessage !== undefined ? `: ${verified.invalidMessage}` : ''}`)
    }
    const settled = await facilitator.settle(payload, requirements)
    if (!settled.success) {
      onOutcome?.('settle-failed')
      const why = await this.init.explainSettleFailure?.().catch(() => undefined)
      return this.paymentRequired(charge, `settlement failed: ${settled.errorReason ?? 'unknown'}${why !== undefined ? ` (${why})` : ''}`)
    }
    const payer = (settled.payer ?? auth.from as string).toLowerCase()
    const txid = settled.transaction.toLowerCase()
    // Our own check, not the facilitator's word: the transfer is on chain, exactly as asked (a lagging RPC read is retried).
    for (let attempt = 1; ; attempt++) {
      try {
        await this.init.findTransfer(txid, { from: payer, to: charge.requirements.payTo, amount: BigInt(charge.requirements.amount) })
        break
      } catch (err) {
        const transient = err instanceof PaymentError && (err.code === 'PAYMENT_NOT_ON_CHAIN' || err.code === 'PAYMENT_CHAIN_UNREACHABLE')
        if (!transient || attempt >= CHAIN_READ_ATTEMPTS) {
          log?.error(`settlement ${txid} for ${charge.uri} reported success but the chain does not show it: ${errorText(err)}`)
          throw err
        }
        await new Promise((resolve) => setTimeout(resolve, 500 * attempt))
      }
    }
    if (this.settledTx.has(txid)) throw new PaymentError('PAYMENT_TXID_REUSED', `transaction ${txid} already paid for another accept`)
    this.settledTx.add(txid)
    const payment: Settlement = { txid, payer, network: charge.requirements.network, amount: charge.requirements.amount }
    onOutcome?.('settled')
    log?.info(`payment settled for ${charge.uri}: ${txid}`)
    // Recorded by the caller first; only then is the charge settled for anyone asking (a paid accept, a second GET).
    await charge.onSettled(payment).catch((err) => { log?.warn(`recording payment ${txid}: ${errorText(err)}`) })
    charge.settled = { ...payment, response: encodePaymentResponseHeader(settled) }
    charge.resolve(payment)
    return this.paidResponse(charge)
  }
}

function refusal (status: number, code: string, message: string): ChargeResponse {
  return { status, json: { error: { code, message } } }
}
