/**
 * Payment terms for x402 on an EVM chain, kept pure: how a settlement asset is named (CAIP-2
 * network, CAIP-19 asset id), what a provider's card publishes (network, token, pay-to address),
 * the x402 resource path of an accept, and the exact-scheme requirements a provider asks for.
 * Addresses are compared case-insensitively and written lower-case (no EIP-55 checksum needed
 * for equality; viem checksums where it signs).
 */
import { z } from './schema.js'

// Records hold lower-case hex only: a decoded record must re-encode to the bytes that were signed.
const ADDRESS = /^0x[0-9a-f]{40}$/
const TX_HASH = /^0x[0-9a-f]{64}$/
const NETWORK = /^eip155:([1-9][0-9]{0,15})$/
const ASSET_ID = /^eip155:([1-9][0-9]{0,15})\/erc20:(0x[0-9a-f]{40})$/

export const evmAddress = z.string().regex(ADDRESS, 'expected a 0x-prefixed 20-byte lower-case hex address')
export const txHash = z.string().regex(TX_HASH, 'expected a 0x-prefixed 32-byte lower-case hex transaction hash')
export const evmNetwork = z.string().regex(NETWORK, 'expected a CAIP-2 eip155:<chainId> network')

/** What a provider card says about how its bids are paid. */
export interface PaymentTerms {
  /** CAIP-2, `eip155:<chainId>`. */
  network: string
  /** The EIP-3009 token contract, lower-case hex. */
  asset: string
  /** Where payments go, lower-case hex. */
  payTo: string
}

export const paymentTermsSchema = z.strictObject({ network: evmNetwork, asset: evmAddress, payTo: evmAddress })

export function networkOf (chainId: number): string {
  return `eip155:${chainId}`
}

/** CAIP-19 asset id: what a paid CCB's `currency` holds. */
export function assetId (network: string, asset: string): string {
  return `${network}/erc20:${asset.toLowerCase()}`
}

export function parseAssetId (id: string): { network: string, asset: string } | undefined {
  const m = ASSET_ID.exec(id)
  return m === null ? undefined : { network: `eip155:${m[1] as string}`, asset: m[2] as string }
}

export function isAssetId (id: string): boolean {
  return ASSET_ID.test(id)
}

export function sameAddress (a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase()
}

/** The compute-contract form of the x402 resource: `<base_url>/ccr/<at uri>/<cid>` (the at URI percent-encoded as one segment). */
export function x402ResourceUrl (baseUrl: string, ccbaUri: string, ccbaCid: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/ccr/${encodeURIComponent(ccbaUri)}/${ccbaCid}`
}

/** x402 v2 exact-scheme requirements for one accepted bid: the whole cost, to the card's pay-to, in the card's token. */
export interface ExactRequirements {
  scheme: 'exact'
  network: string
  asset: string
  amount: string
  payTo: string
  maxTimeoutSeconds: number
  extra: { name: string, version: string }
}

export function exactRequirements (terms: PaymentTerms, amount: bigint, domain: { name: string, version: string }, maxTimeoutSeconds: number): ExactRequirements {
  return { scheme: 'exact', network: terms.network, asset: terms.asset, amount: amount.toString(), payTo: terms.payTo, maxTimeoutSeconds, extra: { name: domain.name, version: domain.version } }
}

/** Whether what a client says it accepted is, field for field, what was asked (addresses case-insensitive). */
export function sameRequirements (asked: ExactRequirements, accepted: unknown): boolean {
  if (typeof accepted !== 'object' || accepted === null) return false
  const a = accepted as Record<string, unknown>
  const extra = a.extra as Record<string, unknown> | undefined
  return a.scheme === asked.scheme && a.network === asked.network &&
    typeof a.asset === 'string' && sameAddress(a.asset, asked.asset) &&
    typeof a.payTo === 'string' && sameAddress(a.payTo, asked.payTo) &&
    a.amount === asked.amount && a.maxTimeoutSeconds === asked.maxTimeoutSeconds &&
    extra?.name === asked.extra.name && extra?.version === asked.extra.version
}

/** What a bid's payments depend on (its `bid` and `cmesh` parts). */
export interface PaymentPlan {
  cost: bigint
  frequency: 'one-time' | 'per-period'
  prepay: boolean
  periodSecs?: number
  durationSecs: number
}

export function planOf (ccb: { bid: { cost: bigint, frequency: string, prepay: boolean }, cmesh: { periodSecs?: number, durationSecs: number } }): PaymentPlan {
  return {
    cost: ccb.bid.cost,
    frequency: ccb.bid.frequency === 'per-period' ? 'per-period' : 'one-time',
    prepay: ccb.bid.prepay,
    ...(ccb.cmesh.periodSecs !== undefined ? { periodSecs: ccb.cmesh.periodSecs } : {}),
    durationSecs: ccb.cmesh.durationSecs
  }
}

/** How many payments the contract takes: 1, or ⌈duration / period⌉. */
export function paymentCount (plan: PaymentPlan): number {
  return plan.frequency === 'per-period' && plan.periodSecs !== undefined ? Math.ceil(plan.durationSecs / plan.periodSecs) : 1
}

/** The whole contract's price: what caps and "cheapest first" compare. */
export function totalCost (plan: PaymentPlan): bigint {
  return plan.cost * BigInt(paymentCount(plan))
}

/** One payment of a contract: its index and when it is due (unix seconds). */
export interface ScheduledPayment {
  index: number
  dueUnixSecs: number
}

/**
 * When each payment falls due for a contract whose machine runs from `startUnixSecs`: prepaid,
 * at the start of what it pays for (the first is paid before the machine exists, so it is listed
 * as due at the start); otherwise at its end (the last at the contract's end).
 */
export function paymentSchedule (plan: PaymentPlan, startUnixSecs: number): ScheduledPayment[] {
  const n = paymentCount(plan)
  const period = plan.frequency === 'per-period' && plan.periodSecs !== undefined ? plan.periodSecs : plan.durationSecs
  const end = startUnixSecs + plan.durationSecs
  return Array.from({ length: n }, (_, index) => ({
    index,
    dueUnixSecs: plan.prepay ? startUnixSecs + index * period : Math.min(end, startUnixSecs + (index + 1) * period)
  }))
}

/** The per-period price for a whole-contract `total` split into the plan's payments, rounded down (never over the total). */
export function periodCost (total: bigint, durationSecs: number, periodSecs: number): bigint {
  return total / BigInt(Math.ceil(durationSecs / periodSecs))
}

/** The x402 resource of payment `index` of an accept: the accept's resource itself for the first, `/<index>` after it for the rest. */
export function x402PaymentUrl (baseUrl: string, ccbaUri: string, ccbaCid: string, index: number): string {
  const first = x402ResourceUrl(baseUrl, ccbaUri, ccbaCid)
  return index === 0 ? first : `${first}/${index}`
}

/** A settled payment as both sides keep it: the transaction, who paid, where, how much (atomic units, decimal). */
export interface Settlement {
  txid: string
  payer: string
  network: string
  amount: string
}
