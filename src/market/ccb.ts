/**
 * CCB: a provider's Compute Contract Bid on one CCRFP, sent to the requester over the bid protocol.
 *
 * Lexicon fields (`com.publicdomainrelay.temp.ccb`): `embed` (strongRef to the CCRFP), `bid {cost,
 * currency, frequency, prepay, x402 {base_url}}`, optional `wif {…}`. Additive, named: `provider`
 * (the signer), `createdAtUnixSecs`, and extension `cmesh` with the offer's concrete terms and the
 * X25519 key the requester seals user_data to.
 */
import { ATTESTATION_LEVELS, type AttestationLevel } from './ladder.js'
import type { Did } from './identity.js'
import type { StrongRef } from './address.js'
import type { RecordType, SignedRecord } from './record.js'
import { RecordError } from './errors.js'
import { bytes, did, token, uint, unixSecs, z } from './schema.js'
import { CCRFP_NSID, MAX_CPUS, MAX_DURATION_SECS, MIN_DURATION_SECS } from './ccrfp.js'
import { strongRef, strongRefToWire } from './strong-ref.js'
import { isAssetId } from './payment.js'

export const CCB_NSID = 'com.publicdomainrelay.temp.ccb'
export const MAX_CCB_BYTES = 4 * 1024
/** A bid lives at most an hour: long enough for any bid window (≤ 600 s) plus grace and skew. */
export const MAX_CCB_TTL_SECS = 3600
/** Largest `cost`: a CBOR unsigned integer is at most 64 bits. */
export const MAX_CCB_COST = (1n << 64n) - 1n

/**
 * The lexicon leaves `currency` and `frequency` open ('USDC', 'monthly'…). Currencies: `wei` — an
 * unsettled market (no chain configured; nothing is paid) — or a CAIP-19 asset id
 * (`eip155:<chainId>/erc20:<token>`): the cost is in that token's atomic units, paid with x402 at
 * `x402.base_url`. Frequencies: `one-time` (`cost` is the whole contract) or `per-period` (`cost` is
 * one period of `cmesh.periodSecs`; the contract is ⌈duration / period⌉ payments, a paid bid only).
 * `prepay`: each payment is due at the start of what it pays for (the first before the machine is
 * provisioned), else at its end. Caps and "cheapest first" compare the whole contract's cost
 * (payment.ts totalCost). Widening either list is an additive change.
 */
export const CCB_CURRENCIES = ['wei'] as const
export const CCB_FREQUENCIES = ['one-time', 'per-period'] as const
/** Bounds of a payment period: long enough to settle a payment on chain, at most a day. */
export const MIN_PAYMENT_PERIOD_SECS = 10
export const MAX_PAYMENT_PERIOD_SECS = 86_400

export type CcbCurrency = typeof CCB_CURRENCIES[number] | string

export interface CcbBid {
  /** The price of the contract (`one-time`) or of one period (`per-period`); a CBOR integer on the wire (the lexicon says number). */
  cost: bigint
  currency: CcbCurrency
  frequency: typeof CCB_FREQUENCIES[number]
  prepay: boolean
  x402: { base_url: string }
}

/** Workload identity federation parameters, as the lexicon names them; any may be empty. */
export interface CcbWif {
  issuer_uri?: string
  to_issue?: string
  token_path?: string
  url_path?: string
  url_route?: string
  subject?: string
}

export interface CcbTerms {
  /** The bid is void (and the provider's reservation released) from this second on. */
  expiresAtUnixSecs: number
  backend: string
  region: string
  /** The attestation level the provider claims; the requester verifies its own. */
  level: AttestationLevel
  cpus: number
  memMiB: number
  diskGiB: number
  durationSecs: number
  /** X25519 public key the requester seals user_data to (HPKE). */
  sealKey: Uint8Array
  /** How often the provider sends a signed heartbeat while the contract runs. */
  heartbeatSecs?: number
  /** A `per-period` bid's period; absent otherwise. */
  periodSecs?: number
}

export interface Ccb {
  embed: StrongRef
  bid: CcbBid
  wif?: CcbWif
  provider: Did
  createdAtUnixSecs: number
  cmesh: CcbTerms
}

const wireString = z.string().max(512)

/** A CBOR unsigned integer up to 2^64 − 1 (decoded as a number when safe, else a bigint). */
export const costInteger = z.union([
  z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  z.bigint().nonnegative().max(MAX_CCB_COST)
]).transform((v) => BigInt(v))

const ccbSchema = z.strictObject({
  embed: strongRef(CCRFP_NSID),
  bid: z.strictObject({
    cost: costInteger,
    currency: z.union([z.enum(CCB_CURRENCIES), z.string().max(128).refine(isAssetId, { message: 'expected wei or a CAIP-19 eip155 erc20 asset id' })]),
    frequency: z.enum(CCB_FREQUENCIES),
    prepay: z.boolean(),
    x402: z.strictObject({ base_url: wireString })
  }),
  wif: z.strictObject({
    issuer_uri: wireString.optional(),
    to_issue: wireString.optional(),
    token_path: wireString.optional(),
    url_path: wireString.optional(),
    url_route: wireString.optional(),
    subject: wireString.optional()
  }).optional(),
  provider: did,
  createdAtUnixSecs: unixSecs,
  cmesh: z.strictObject({
    expiresAtUnixSecs: unixSecs,
    backend: token(32),
    region: token(48),
    level: z.enum(ATTESTATION_LEVELS),
    cpus: uint.min(1).max(MAX_CPUS),
    memMiB: uint.min(1),
    diskGiB: uint.min(1),
    durationSecs: uint.min(MIN_DURATION_SECS).max(MAX_DURATION_SECS),
    sealKey: bytes(32),
    heartbeatSecs: uint.min(1).max(3600).optional(),
    periodSecs: uint.min(MIN_PAYMENT_PERIOD_SECS).max(MAX_PAYMENT_PERIOD_SECS).optional()
  })
}) satisfies z.ZodType<Ccb, any>

const WIF_KEYS = ['issuer_uri', 'to_issue', 'token_path', 'url_path', 'url_route', 'subject'] as const

function costToWire (cost: bigint): bigint {
  if (typeof cost !== 'bigint' || cost < 0n || cost > MAX_CCB_COST) {
    throw new RecordError('RECORD_SCHEMA', 'ccb: bid.cost is an integer from 0 to 2^64 − 1')
  }
  return cost
}

function semantic (message: string): never {
  throw new RecordError('RECORD_SEMANTIC', `ccb: ${message}`)
}

export const CcbType: RecordType<Ccb> = {
  nsid: CCB_NSID,
  maxBytes: MAX_CCB_BYTES,
  schema: ccbSchema,
  toFields: (c) => ({
    embed: strongRefToWire(c.embed),
    bid: {
      cost: costToWire(c.bid.cost),
      currency: c.bid.currency,
      frequency: c.bid.frequency,
      prepay: c.bid.prepay,
      x402: { base_url: c.bid.x402.base_url }
    },
    ...(c.wif !== undefined ? { wif: Object.fromEntries(WIF_KEYS.filter((k) => c.wif?.[k] !== undefined).map((k) => [k, c.wif?.[k]])) } : {}),
    provider: c.provider,
    createdAtUnixSecs: c.createdAtUnixSecs,
    cmesh: {
      expiresAtUnixSecs: c.cmesh.expiresAtUnixSecs,
      backend: c.cmesh.backend,
      region: c.cmesh.region,
      level: c.cmesh.level,
      cpus: c.cmesh.cpus,
      memMiB: c.cmesh.memMiB,
      diskGiB: c.cmesh.diskGiB,
      durationSecs: c.cmesh.durationSecs,
      sealKey: c.cmesh.sealKey,
      ...(c.cmesh.heartbeatSecs !== undefined ? { heartbeatSecs: c.cmesh.heartbeatSecs } : {}),
      ...(c.cmesh.periodSecs !== undefined ? { periodSecs: c.cmesh.periodSecs } : {})
    }
  }),
  author: (c) => c.provider,
  time: (c) => c.createdAtUnixSecs,
  check: (c) => {
    if (c.cmesh.expiresAtUnixSecs <= c.createdAtUnixSecs) semantic('expires before it is made')
    if (c.cmesh.expiresAtUnixSecs - c.createdAtUnixSecs > MAX_CCB_TTL_SECS) semantic(`lives longer than ${MAX_CCB_TTL_SECS} s`)
    // Paid in a token: there must be somewhere to pay, before anything is provisioned. Unsettled: nowhere.
    if (c.bid.currency === 'wei' && c.bid.x402.base_url !== '') semantic('a wei bid is unsettled and names no x402 endpoint')
    if (c.bid.currency === 'wei' && (c.bid.frequency !== 'one-time' || c.bid.prepay)) semantic('a wei bid is unsettled: one-time, nothing prepaid')
    if (isAssetId(c.bid.currency) && !/^https?:\/\/[^\s]+$/.test(c.bid.x402.base_url)) semantic('a paid bid needs an http(s) x402.base_url')
    if ((c.bid.frequency === 'per-period') !== (c.cmesh.periodSecs !== undefined)) semantic('cmesh.periodSecs is given exactly for a per-period bid')
  }
}

export type SignedCcb = SignedRecord<Ccb>
