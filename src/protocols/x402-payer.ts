/**
 * The requester's x402 payment of one resource (exact scheme, EIP-3009): the x402 fetch client,
 * held to exactly one requirement — the network, token, pay-to and amount the caller expects —
 * and to a spend cap of that amount. Returns the settlement transaction the provider reports;
 * the caller confirms it on chain.
 */
import { x402Client } from '@x402/core/client'
import { decodePaymentResponseHeader } from '@x402/core/http'
import { ExactEvmScheme } from '@x402/evm/exact/client'
import { toClientEvmSigner } from '@x402/evm'
import { wrapFetchWithPayment } from '@x402/fetch'
import { sameAddress } from '../market/payment.js'
import { errorText } from './error-text.js'
import { PaymentError } from './x402-charges.js'

export interface PaymentExpectation { network: string, asset: string, payTo: string, amount: bigint }

export interface X402Signer {
  address: `0x${string}`
  signTypedData: (message: { domain: Record<string, unknown>, types: Record<string, unknown>, primaryType: string, message: Record<string, unknown> }) => Promise<`0x${string}`>
}

export async function payX402 (url: string, expect: PaymentExpectation, signer: X402Signer, signal: AbortSignal): Promise<{ txid: string }> {
  const network = expect.network as `${string}:${string}`
  const client = new x402Client()
    .register(network, new ExactEvmScheme(toClientEvmSigner(signer)))
    // Only the exact requirement the bid implies; anything else is not paid.
    .registerPolicy((_version, reqs) => reqs.filter((r: any) => r.scheme === 'exact' && r.network === expect.network && sameAddress(r.asset, expect.asset) && sameAddress(r.payTo, expect.payTo) && r.amount === expect.amount.toString()))
    .setSpendControls({ allowedAssets: [{ network, asset: expect.asset, maxAmountPerPayment: expect.amount.toString() }] } as any)
  let res: Response
  try {
    res = await wrapFetchWithPayment(fetch, client)(url, { signal })
  } catch (err) {
    throw new PaymentError('PAYMENT_REFUSED', `paying ${url}: ${errorText(err)}`, {}, { cause: err })
  }
  const body: any = await res.json().catch(() => ({}))
  if (res.status !== 200) throw new PaymentError('PAYMENT_REFUSED', `the provider answered ${res.status}: ${String(body?.error?.message ?? body?.error ?? '')}`.slice(0, 400))
  const header = res.headers.get('PAYMENT-RESPONSE') ?? res.headers.get('X-PAYMENT-RESPONSE')
  const settled = header !== null ? decodePaymentResponseHeader(header) : undefined
  const txid = String(settled?.transaction ?? body?.txid ?? '').toLowerCase()
  if (!/^0x[0-9a-f]{64}$/.test(txid)) throw new PaymentError('PAYMENT_REFUSED', 'the provider answered 200 without a settlement transaction')
  return { txid }
}
