/**
 * Payments with x402 (exact scheme, EIP-3009 `transferWithAuthorization`) on the EVM chain the
 * config names. One EVM key per node (`<data>/evm.key`, 0600) is the requester's payer and the
 * provider's pay-to and facilitator signer: the provider verifies and settles payments itself,
 * with the facilitator the x402 packages ship, so no third party sits between the two.
 *
 * This service holds the key, the chain clients and the facilitator, and serves the provider's
 * x402 resources (src/protocols/x402-charges.ts) on the public HTTP server; `pay()` is the
 * requester's side (src/protocols/x402-payer.ts), with the transfer then checked on chain here.
 */
import type { Startable } from '@libp2p/interface'
import { join } from 'node:path'
// The chain stack (viem, the x402 EVM scheme) loads at start only on a node with a payment config.
import type { PublicClient } from 'viem'
import type { PrivateKeyAccount } from 'viem/accounts'
import type { x402Facilitator } from '@x402/core/facilitator'
import { exactRequirements, networkOf, sameAddress, type PaymentTerms } from '../../market/payment.js'
import { errorText } from '../../protocols/error-text.js'
import { PAYMENT_AUTH_TIMEOUT_SECS, PaymentError, X402Charges } from '../../protocols/x402-charges.js'
import type { PaymentExpectation } from '../../protocols/x402-payer.js'
import { nowSecs, type NodeComponents } from '../components.js'
import type { StoredPayment } from '../contract-state.js'
import { loadOrCreateEvmKey } from '../evm-key.js'
import type { PublicHttp } from './public-http.js'

export { PaymentError }
export type { PaymentErrorCode } from '../../protocols/x402-charges.js'

/** The x402 path under the public HTTP server; the bid's `x402.base_url` ends here. */
export const X402_BASE_PATH = '/x402'

const transferEvent = [{ type: 'event', name: 'Transfer', inputs: [{ name: 'from', type: 'address', indexed: true }, { name: 'to', type: 'address', indexed: true }, { name: 'value', type: 'uint256', indexed: false }] }] as const

export class PaymentService implements Startable {
  private account: PrivateKeyAccount | undefined
  private publicClient: PublicClient | undefined
  /** The provider's x402 resources, one per payment it waits for. */
  readonly charges: X402Charges

  constructor (private readonly components: NodeComponents, private readonly init: { publicHttp: PublicHttp }) {
    this.charges = new X402Charges({
      baseUrl: () => this.baseUrl,
      facilitator: {
        verify: async (payload, requirements) => await this.facilitator().verify(payload, requirements),
        settle: async (payload, requirements) => await this.facilitator().settle(payload, requirements)
      },
      findTransfer: async (txid, expect) => { await this.findTransfer(txid, expect) },
      now: () => nowSecs(components),
      explainSettleFailure: async () => {
        const gas = await this.publicClient?.getBalance({ address: (this.account as PrivateKeyAccount).address })
        if (gas !== 0n) return undefined
        components.log.warn(`cannot settle payments: the provider's EVM account ${this.address ?? ''} has no ether for gas; fund it`)
        return 'the provider cannot pay gas'
      },
      onOutcome: (outcome) => { components.metrics.payments.inc({ role: 'provider', outcome }) },
      log: components.log
    })
    if (components.config.payment !== undefined && components.config.roles.includes('provider')) {
      const serve = async (params: Record<string, string>, headers: Record<string, string | string[] | undefined>) => {
        const header = headers['payment-signature'] ?? headers['x-payment']
        return await this.charges.serve({ at: params.at as string, cid: params.cid as string, ...(params.index !== undefined ? { index: params.index } : {}) }, typeof header === 'string' ? header : undefined)
      }
      init.publicHttp.add(
        { method: 'GET', path: `${X402_BASE_PATH}/ccr/:at/:cid`, handle: async (req) => await serve(req.params, req.headers) },
        // Later payments of the same accept (per-period, or postpaid): `/<index>`.
        { method: 'GET', path: `${X402_BASE_PATH}/ccr/:at/:cid/:index`, handle: async (req) => await serve(req.params, req.headers) }
      )
    }
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

  private x402: x402Facilitator | undefined

  private facilitator (): x402Facilitator {
    if (this.x402 === undefined) throw new PaymentError('PAYMENT_UNAVAILABLE', 'this node has no payment config')
    return this.x402
  }

  async start (): Promise<void> {
    const p = this.components.config.payment
    if (p === undefined) return
    const { createPublicClient, createWalletClient, defineChain, http } = await import('viem')
    const { privateKeyToAccount } = await import('viem/accounts')
    const { x402Facilitator } = await import('@x402/core/facilitator')
    const { ExactEvmScheme: ExactEvmFacilitatorScheme } = await import('@x402/evm/exact/facilitator')
    const { toFacilitatorEvmSigner } = await import('@x402/evm')
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
    this.x402 = new x402Facilitator().register(networkOf(p.chainId) as `${string}:${string}`, new ExactEvmFacilitatorScheme(signer))
  }

  stop (): void {
    this.charges.rejectAll('the node stopped before the payment settled')
  }

  /**
   * Provider: opens the charge for payment `index` (0: the first) of an accepted bid, for exactly
   * `amount` to this node in its token. See X402Charges.expect.
   */
  expect (ccba: { uri: string, cid: string }, amount: bigint, deadlineUnixSecs: number, onSettled: (payment: StoredPayment) => Promise<void>, index = 0): { key: string, url: string, done: Promise<StoredPayment> } {
    const p = this.components.config.payment
    const terms = this.terms
    if (p === undefined || terms === undefined) throw new PaymentError('PAYMENT_UNAVAILABLE', 'this node has no payment config')
    const requirements = exactRequirements(terms, amount, { name: p.assetName, version: p.assetVersion }, PAYMENT_AUTH_TIMEOUT_SECS)
    return this.charges.expect(ccba, requirements, deadlineUnixSecs, onSettled, index)
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
    const { parseEventLogs } = await import('viem')
    const transfers = parseEventLogs({ abi: transferEvent, logs: receipt.logs, eventName: 'Transfer' })
    const match = transfers.some((log) => sameAddress(log.address, p.asset) && sameAddress(log.args.from, expect.from) && sameAddress(log.args.to, expect.to) && log.args.value === expect.amount)
    if (!match) throw new PaymentError('PAYMENT_MISMATCH', `transaction ${txid} does not move ${expect.amount.toString()} of ${p.asset} from ${expect.from} to ${expect.to}`)
  }

  /**
   * Requester: pays an x402 resource, accepting only `expect` (network, token, pay-to, amount),
   * then confirms the transfer on chain. Returns the settlement.
   */
  async pay (url: string, expect: PaymentExpectation, signal: AbortSignal): Promise<StoredPayment> {
    const p = this.components.config.payment
    const account = this.account
    if (p === undefined || account === undefined) throw new PaymentError('PAYMENT_UNAVAILABLE', 'this node has no payment config: it cannot pay for a bid')
    if (p.maxPerPayment !== undefined && expect.amount > BigInt(p.maxPerPayment)) throw new PaymentError('PAYMENT_REFUSED', `the bid costs ${expect.amount.toString()}, over payment.maxPerPayment ${p.maxPerPayment}`)
    if (expect.network !== networkOf(p.chainId) || !sameAddress(expect.asset, p.asset)) throw new PaymentError('PAYMENT_REFUSED', `the bid settles in ${expect.asset} on ${expect.network}; this node pays in ${p.asset} on ${networkOf(p.chainId)}`)
    const { payX402 } = await import('../../protocols/x402-payer.js')
    const { txid } = await payX402(url, expect, { address: account.address, signTypedData: async (m) => await account.signTypedData(m as any) }, signal)
    await this.findTransfer(txid, { from: account.address, to: expect.payTo, amount: expect.amount })
    this.components.metrics.payments.inc({ role: 'requester', outcome: 'settled' })
    return { txid, payer: account.address.toLowerCase(), network: expect.network, amount: expect.amount.toString() }
  }
}
