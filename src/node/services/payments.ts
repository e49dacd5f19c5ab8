/**
 * Payments with x402 (exact scheme, EIP-3009 `transferWithAuthorization`) on the EVM chain the
 * config names. One EVM key per node (`<data>/evm.key`, 0600) is the requester's payer and the
 * provider's pay-to and facilitator signer: the provider verifies and settles payments itself,
 * with the facilitator the x402 packages ship, so no third party sits between the two.
 *
 * Provider side: `expect()` opens a charge for an accepted bid; its x402 resource
 * (`<base_url>/ccr/<ccba at-uri>/<ccba cid>`) answers 402 with the requirements until a payment
 * settles on chain, then 200 with the settlement (asked again, the same answer: never a second
 * payment). Requester side: `pay()` pays a resource with the x402 fetch client, accepting only the
 * exact amount, asset and pay-to it expects, then checks the transfer on chain itself.
 */
import type { Startable } from '@libp2p/interface'
import { join } from 'node:path'
import { createPublicClient, createWalletClient, defineChain, http, parseEventLogs, type PublicClient } from 'viem'
import { privateKeyToAccount, type PrivateKeyAccount } from 'viem/accounts'
import { x402Facilitator } from '@x402/core/facilitator'
import { x402Client } from '@x402/core/client'
import { decodePaymentResponseHeader, decodePaymentSignatureHeader, encodePaymentRequiredHeader, encodePaymentResponseHeader } from '@x402/core/http'
import { ExactEvmScheme as ExactEvmFacilitatorScheme } from '@x402/evm/exact/facilitator'
import { ExactEvmScheme as ExactEvmClientScheme } from '@x402/evm/exact/client'
import { toFacilitatorEvmSigner, toClientEvmSigner } from '@x402/evm'
import { wrapFetchWithPayment, type PaymentRequirements } from '@x402/fetch'
import { CmeshError } from '../../market/errors.js'
import { exactRequirements, networkOf, sameAddress, sameRequirements, x402PaymentUrl, type ExactRequirements, type PaymentTerms } from '../../market/payment.js'
import { errorText } from '../../protocols/error-text.js'
import { nowSecs, type NodeComponents } from '../components.js'
import type { StoredPayment } from '../contract-state.js'
import { loadOrCreateEvmKey } from '../evm-key.js'
import { HttpRefusal, type PublicHttp, type PublicRequest, type PublicResponse } from './public-http.js'

export type PaymentErrorCode =
  | 'PAYMENT_UNAVAILABLE' | 'PAYMENT_REFUSED' | 'PAYMENT_NOT_ON_CHAIN' | 'PAYMENT_TX_FAILED'
  | 'PAYMENT_MISMATCH' | 'PAYMENT_MISSING' | 'PAYMENT_CHAIN_UNREACHABLE' | 'PAYMENT_TXID_REUSED'
export class PaymentError extends CmeshError<PaymentErrorCode> {}

/** The x402 path under the public HTTP server; the bid's `x402.base_url` ends here. */
export const X402_BASE_PATH = '/x402'
/** How long an x402 authorization the requester signs stays valid. */
export const PAYMENT_AUTH_TIMEOUT_SECS = 300
/** Charges kept for idempotent re-reads after they settle or lapse. */
const MAX_CHARGES = 10_000

function chargeKey (ccbaCid: string, index: number): string {
  return index === 0 ? ccbaCid : `${ccbaCid}/${index}`
}

const transferEvent = [{ type: 'event', name: 'Transfer', inputs: [{ name: 'from', type: 'address', indexed: true }, { name: 'to', type: 'address', indexed: true }, { name: 'value', type: 'uint256', indexed: false }] }] as const

interface Charge {
  uri: string
  cid: string
  /** Which payment of the accept: 0 the first (the accept's own resource), then 1, 2, … */
  index: number
  requirements: ExactRequirements
  deadlineUnixSecs: number
  settled?: StoredPayment & { response: string }
  settling?: Promise<PublicResponse>
  /** The caller records the settlement (on disk) before the payer hears it is paid. */
  onSettled: (payment: StoredPayment) => Promise<void>
  resolve: (payment: StoredPayment) => void
  reject: (err: Error) => void
  done: Promise<StoredPayment>
}

export class PaymentService implements Startable {
  private account: PrivateKeyAccount | undefined
  private publicClient: PublicClient | undefined
  private facilitator: x402Facilitator | undefined
  private readonly charges = new Map<string, Charge>()
  private readonly settledTx = new Set<string>()

  constructor (private readonly components: NodeComponents, private readonly init: { publicHttp: PublicHttp }) {
    if (components.config.payment !== undefined && components.config.roles.includes('provider')) {
      init.publicHttp.add(
        { method: 'GET', path: `${X402_BASE_PATH}/ccr/:at/:cid`, handle: async (req) => await this.serveCharge(req) },
        // Later payments of the same accept (per-period, or postpaid): `/<index>`.
        { method: 'GET', path: `${X402_BASE_PATH}/ccr/:at/:cid/:index`, handle: async (req) => await this.serveCharge(req) }
      )
    }
  }

  get enabled (): boolean {
    return this.components.config.payment !== undefined
  }

  /** This node's payment terms, for its card (provider) — undefined without a payment config. */
  get terms (): PaymentTerms | undefined {
    const p = this.components.config.payment
    if (p === undefined || this.account === undefined) return undefined
    return { network: networkOf(p.chainId), asset: p.asset.toLowerCase(), payTo: this.account.address.toLowerCase() }
  }

  get address (): string | undefined {
    return this.account?.address.toLowerCase()
  }

  /** The bid's `x402.base_url`. */
  get baseUrl (): string {
    return `${this.init.publicHttp.url}${X402_BASE_PATH}`
  }

  async start (): Promise<void> {
    const p = this.components.config.payment
    if (p === undefined) return
    const key = await loadOrCreateEvmKey(join(this.components.dataDir, 'evm.key'))
    const account = privateKeyToAccount(key)
    const chain = defineChain({ id: p.chainId, name: `cmesh-${p.chainId}`, nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [p.rpcUrl] } } })
    const publicClient = createPublicClient({ chain, transport: http(p.rpcUrl, { timeout: 15_000 }) }) as PublicClient
    const wallet = createWalletClient({ account, chain, transport: http(p.rpcUrl, { timeout: 15_000 }) })
    this.account = account
    this.publicClient = publicClient
    const signer = toFacilitatorEvmSigner({
      address: account.address,
      readContract: async (args) => await publicClient.readContract(args as any),
      verifyTypedData: async (args) => await publicClient.verifyTypedData(args as any),
      writeContract: async (args) => await wallet.writeContract({ ...(args as any), chain, account }),
      sendTransaction: async (args) => await wallet.sendTransaction({ ...args, chain, account }),
      waitForTransactionReceipt: async (args) => await publicClient.waitForTransactionReceipt({ hash: args.hash, timeout: args.timeout ?? 60_000 }),
      getCode: async (args) => await publicClient.getCode(args)
    }, { confirmationTimeoutMs: 60_000 })
    // The provider settles, so it pays gas: say so at start rather than at the first failed settlement.
    if (this.components.config.roles.includes('provider')) {
      publicClient.getBalance({ address: account.address }).then((wei) => {
        if (wei === 0n) this.components.log.warn(`payments: EVM account ${account.address} has no ether for gas; settlements will fail until it is funded`)
      }, (err) => { this.components.log.warn(`payments: chain ${p.rpcUrl} unreachable at start: ${errorText(err)}`) })
    }
    this.facilitator = new x402Facilitator().register(networkOf(p.chainId) as `${string}:${string}`, new ExactEvmFacilitatorScheme(signer))
  }

  stop (): void {
    for (const charge of this.charges.values()) if (charge.settled === undefined) charge.reject(new PaymentError('PAYMENT_MISSING', 'the node stopped before the payment settled'))
    this.charges.clear()
  }

  /**
   * Provider: opens the charge for an accepted bid. Resolves with the settlement, or rejects with
   * PAYMENT_MISSING once `deadlineUnixSecs` passes (the caller's timer; see `lapse`).
   */
  expect (ccba: { uri: string, cid: string }, amount: bigint, deadlineUnixSecs: number, onSettled: (payment: StoredPayment) => Promise<void>, index = 0): { key: string, url: string, requirements: ExactRequirements, done: Promise<StoredPayment> } {
    const p = this.components.config.payment
    const terms = this.terms
    if (p === undefined || terms === undefined) throw new PaymentError('PAYMENT_UNAVAILABLE', 'this node has no payment config')
    const requirements = exactRequirements(terms, amount, { name: p.assetName, version: p.assetVersion }, PAYMENT_AUTH_TIMEOUT_SECS)
    let resolve!: (payment: StoredPayment) => void
    let reject!: (err: Error) => void
    const done = new Promise<StoredPayment>((res, rej) => { resolve = res; reject = rej })
    done.catch(() => {})
    const key = chargeKey(ccba.cid, index)
    this.charges.get(key)?.reject(new PaymentError('PAYMENT_MISSING', 'replaced by a new charge'))
    this.charges.set(key, { uri: ccba.uri, cid: ccba.cid, index, requirements, deadlineUnixSecs, onSettled, resolve, reject, done })
    for (const [old, charge] of this.charges) if (this.charges.size > MAX_CHARGES && charge.settled !== undefined) this.charges.delete(old)
    return { key, url: x402PaymentUrl(this.baseUrl, ccba.uri, ccba.cid, index), requirements, done }
  }

  /** Provider: the charge's settlement so far (undefined until paid); `key` is the accept's CID, or what `expect` returned. */
  settlement (key: string): StoredPayment | undefined {
    const s = this.charges.get(key)?.settled
    return s === undefined ? undefined : { txid: s.txid, payer: s.payer, network: s.network, amount: s.amount }
  }

  /** Provider: the open charges not settled whose deadline has passed at `now`. */
  overdue (now: number): string[] {
    return [...this.charges].filter(([, c]) => c.settled === undefined && c.settling === undefined && c.deadlineUnixSecs <= now).map(([key]) => key)
  }

  /** Provider: closes a charge that is no longer wanted (its contract ended), without calling it missing. */
  close (key: string): void {
    const charge = this.charges.get(key)
    if (charge === undefined || charge.settling !== undefined) return
    this.charges.delete(key)
  }

  /** Provider: ends a charge nobody paid in time. */
  lapse (ccbaCid: string): void {
    const charge = this.charges.get(ccbaCid)
    // A settlement in flight is let finish: the payer's money may already be moving.
    if (charge === undefined || charge.settled !== undefined || charge.settling !== undefined) return
    this.charges.delete(ccbaCid)
    charge.reject(new PaymentError('PAYMENT_MISSING', 'no payment settled before the payment window closed'))
  }

  private async serveCharge (req: PublicRequest): Promise<PublicResponse> {
    const at = req.params.at as string
    const cid = req.params.cid as string
    const index = req.params.index === undefined ? 0 : /^[1-9][0-9]{0,5}$/.test(req.params.index) ? Number(req.params.index) : -1
    const charge = index < 0 ? undefined : this.charges.get(chargeKey(cid, index))
    if (charge === undefined || charge.uri !== at) throw new HttpRefusal('CHARGE_UNKNOWN', 'no accepted bid of this provider awaits payment here', { status: 404 })
    if (charge.settled !== undefined) return this.paidResponse(charge)
    if (nowSecs(this.components) >= charge.deadlineUnixSecs) throw new HttpRefusal('PAYMENT_MISSING', 'the payment window for this accept has closed', { status: 410 })
    const header = req.headers['payment-signature'] ?? req.headers['x-payment']
    if (typeof header !== 'string' || header === '') return this.paymentRequired(charge)
    // One settlement per charge: a second request while the first settles gets its answer.
    if (charge.settling === undefined) {
      charge.settling = this.settle(charge, header).finally(() => { charge.settling = undefined })
    }
    return await charge.settling
  }

  private paymentRequired (charge: Charge, error?: string): PublicResponse {
    const required = {
      x402Version: 2,
      ...(error !== undefined ? { error } : {}),
      resource: { url: x402PaymentUrl(this.baseUrl, charge.uri, charge.cid, charge.index), description: `compute contract ${charge.uri}${charge.index > 0 ? `, payment ${charge.index}` : ''}`, mimeType: 'application/json' },
      accepts: [charge.requirements]
    }
    return { status: 402, json: required, headers: { 'PAYMENT-REQUIRED': encodePaymentRequiredHeader(required as any) } }
  }

  private paidResponse (charge: Charge): PublicResponse {
    const s = charge.settled as NonNullable<Charge['settled']>
    return { status: 200, json: { state: 'paid', ccba: { uri: charge.uri, cid: charge.cid }, index: charge.index, txid: s.txid, payer: s.payer, network: s.network, amount: s.amount }, headers: { 'PAYMENT-RESPONSE': s.response } }
  }

  private async settle (charge: Charge, header: string): Promise<PublicResponse> {
    const facilitator = this.facilitator as x402Facilitator
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
    const metrics = this.components.metrics
    const verified = await facilitator.verify(payload, charge.requirements as PaymentRequirements)
    if (!verified.isValid) {
      metrics.payments.inc({ role: 'provider', outcome: 'refused' })
      return this.paymentRequired(charge, `payment refused: ${verified.invalidReason ?? 'invalid'}${verified.invalidMessage !== undefined ? `: ${verified.invalidMessage}` : ''}`)
    }
    const settled = await facilitator.settle(payload, charge.requirements as PaymentRequirements)
    if (!settled.success) {
      metrics.payments.inc({ role: 'provider', outcome: 'settle-failed' })
      const gas = await this.publicClient?.getBalance({ address: (this.account as PrivateKeyAccount).address }).catch(() => undefined)
      if (gas === 0n) this.components.log.warn(`cannot settle payments: the provider's EVM account ${this.address ?? ''} has no ether for gas; fund it`)
      return this.paymentRequired(charge, `settlement failed: ${settled.errorReason ?? 'unknown'}${gas === 0n ? ' (the provider cannot pay gas)' : ''}`)
    }
    const payer = (settled.payer ?? auth.from as string).toLowerCase()
    const txid = settled.transaction.toLowerCase()
    // Our own check, not the facilitator's word: the transfer is on chain, exactly as asked (a lagging RPC read is retried).
    for (let attempt = 1; ; attempt++) {
      try {
        await this.findTransfer(txid, { from: payer, to: charge.requirements.payTo, amount: BigInt(charge.requirements.amount) })
        break
      } catch (err) {
        const transient = err instanceof PaymentError && (err.code === 'PAYMENT_NOT_ON_CHAIN' || err.code === 'PAYMENT_CHAIN_UNREACHABLE')
        if (!transient || attempt >= 5) {
          this.components.log.error(`settlement ${txid} for ${charge.uri} reported success but the chain does not show it: ${errorText(err)}`)
          throw err
        }
        await new Promise((resolve) => setTimeout(resolve, 500 * attempt))
      }
    }
    if (this.settledTx.has(txid)) throw new PaymentError('PAYMENT_TXID_REUSED', `transaction ${txid} already paid for another accept`)
    this.settledTx.add(txid)
    const payment: StoredPayment = { txid, payer, network: charge.requirements.network, amount: charge.requirements.amount }
    metrics.payments.inc({ role: 'provider', outcome: 'settled' })
    this.components.log.info(`payment settled for ${charge.uri}: ${txid}`)
    // Recorded by the caller first; only then is the charge settled for anyone asking (a paid accept, a second GET).
    await charge.onSettled(payment).catch((err) => { this.components.log.warn(`recording payment ${txid}: ${errorText(err)}`) })
    charge.settled = { ...payment, response: encodePaymentResponseHeader(settled) }
    charge.resolve(payment)
    return this.paidResponse(charge)
  }

  /**
   * That `txid` is on chain, succeeded, and moved exactly `amount` of the configured token from
   * `from` to `to` (a Transfer log of the token contract). Typed errors otherwise.
   */
  async findTransfer (txid: string, expect: { from: string, to: string, amount: bigint }): Promise<void> {
    const p = this.components.config.payment
    const client = this.publicClient
    if (p === undefined || client === undefined) throw new PaymentError('PAYMENT_UNAVAILABLE', 'this node has no payment config')
    let receipt
    try {
      receipt = await client.getTransactionReceipt({ hash: txid as `0x${string}` })
    } catch (err: any) {
      if (err?.name === 'TransactionReceiptNotFoundError') throw new PaymentError('PAYMENT_NOT_ON_CHAIN', `transaction ${txid} is not on chain ${p.chainId}`)
      throw new PaymentError('PAYMENT_CHAIN_UNREACHABLE', `cannot read transaction ${txid}: ${errorText(err)}`, {}, { cause: err })
    }
    if (receipt.status !== 'success') throw new PaymentError('PAYMENT_TX_FAILED', `transaction ${txid} reverted`)
    const transfers = parseEventLogs({ abi: transferEvent, logs: receipt.logs, eventName: 'Transfer' })
    const match = transfers.some((log) => sameAddress(log.address, p.asset) && sameAddress(log.args.from, expect.from) && sameAddress(log.args.to, expect.to) && log.args.value === expect.amount)
    if (!match) throw new PaymentError('PAYMENT_MISMATCH', `transaction ${txid} does not move ${expect.amount.toString()} of ${p.asset} from ${expect.from} to ${expect.to}`)
  }

  /**
   * Requester: pays an x402 resource, accepting only `expect` (network, token, pay-to, amount), then
   * confirms the transfer on chain. Returns the settlement.
   */
  async pay (url: string, expect: { network: string, asset: string, payTo: string, amount: bigint }, signal: AbortSignal): Promise<StoredPayment> {
    const p = this.components.config.payment
    const account = this.account
    if (p === undefined || account === undefined) throw new PaymentError('PAYMENT_UNAVAILABLE', 'this node has no payment config: it cannot pay for a bid')
    if (p.maxPerPayment !== undefined && expect.amount > BigInt(p.maxPerPayment)) throw new PaymentError('PAYMENT_REFUSED', `the bid costs ${expect.amount.toString()}, over payment.maxPerPayment ${p.maxPerPayment}`)
    if (expect.network !== networkOf(p.chainId) || !sameAddress(expect.asset, p.asset)) throw new PaymentError('PAYMENT_REFUSED', `the bid settles in ${expect.asset} on ${expect.network}; this node pays in ${p.asset} on ${networkOf(p.chainId)}`)
    const client = new x402Client()
      .register(expect.network as `${string}:${string}`, new ExactEvmClientScheme(toClientEvmSigner({ address: account.address, signTypedData: async (m) => await account.signTypedData(m as any) })))
      // Only the exact requirement this bid implies; anything else is not paid.
      .registerPolicy((_version, reqs) => reqs.filter((r: any) => r.scheme === 'exact' && r.network === expect.network && sameAddress(r.asset, expect.asset) && sameAddress(r.payTo, expect.payTo) && r.amount === expect.amount.toString()))
      .setSpendControls({ allowedAssets: [{ network: expect.network as `${string}:${string}`, asset: expect.asset, maxAmountPerPayment: expect.amount.toString() }] } as any)
    const paidFetch = wrapFetchWithPayment(fetch, client)
    let res: Response
    try {
      res = await paidFetch(url, { signal })
    } catch (err) {
      throw new PaymentError('PAYMENT_REFUSED', `paying ${url}: ${errorText(err)}`, {}, { cause: err })
    }
    const body: any = await res.json().catch(() => ({}))
    if (res.status !== 200) throw new PaymentError('PAYMENT_REFUSED', `the provider answered ${res.status}: ${String(body?.error?.message ?? body?.error ?? '')}`.slice(0, 400))
    const header = res.headers.get('PAYMENT-RESPONSE') ?? res.headers.get('X-PAYMENT-RESPONSE')
    const settled = header !== null ? decodePaymentResponseHeader(header) : undefined
    const txid = String(settled?.transaction ?? body?.txid ?? '').toLowerCase()
    if (!/^0x[0-9a-f]{64}$/.test(txid)) throw new PaymentError('PAYMENT_REFUSED', 'the provider answered 200 without a settlement transaction')
    await this.findTransfer(txid, { from: account.address, to: expect.payTo, amount: expect.amount })
    this.components.metrics.payments.inc({ role: 'requester', outcome: 'settled' })
    return { txid, payer: account.address.toLowerCase(), network: expect.network, amount: expect.amount.toString() }
  }
}
