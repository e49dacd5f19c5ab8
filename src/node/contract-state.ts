/**
 * A contract as this node keeps it in the store's `contracts` keyspace, for either role: the
 * signed records so far, where it stands, and what went wrong. Written before every step that
 * cannot be undone (provisioning starts only once `provisioning` is on disk), so a restart never
 * forgets a grant nor provisions one twice. The requester's receipt key is kept here too: the data
 * dir is 0700, like the node key beside it.
 */
import type { Settlement } from '../market/payment.js'
import { z } from 'zod'
import { decodeCanonical, encodeCanonical } from '../market/cbor.js'
import { bytes, did, unixSecs } from '../market/schema.js'
import type { Did } from '../market/identity.js'

/**
 * `awaiting-payment`: accepted, the provider waits for the x402 payment; `paid`: settled on chain,
 * not yet provisioning. `unresponsive`: the requester's view of a ready contract whose provider
 * stopped sending heartbeats. `ended`: terminated (the termination record says why).
 */
export const CONTRACT_STATES = ['collecting', 'choosing', 'accepted', 'awaiting-payment', 'paid', 'provisioning', 'ready', 'unresponsive', 'failed', 'no-bids', 'interrupted', 'ended'] as const
export type ContractState = typeof CONTRACT_STATES[number]
export type ContractRole = 'requester' | 'provider'

export interface StoredContract {
  role: ContractRole
  /** Requester: the RFP's CID; provider: the CCBA's CID. */
  id: string
  state: ContractState
  rfp: Uint8Array
  ccb?: Uint8Array
  ccba?: Uint8Array
  ccr?: Uint8Array
  receipt?: { enc: Uint8Array, ct: Uint8Array }
  /** Requester: the X25519 private key the receipt is sealed to. */
  receiptKey?: Uint8Array
  counterparty?: Did
  costWei?: string
  backend?: string
  validToUnixSecs?: number
  progress: string[]
  error?: { code: string, detail: string }
  /** The settled x402 payment (issue 11): chain tx hash, payer address, CAIP-2 network, amount in the asset's units. */
  payment?: StoredPayment
  /** The requester's signed CCBAP recording that payment. */
  ccbap?: Uint8Array
  /** Payments after the first (per-period bids, or a postpaid one): index, settlement, and the requester's CCBAP for it. */
  periodPayments?: Array<StoredPayment & { index: number, ccbap?: Uint8Array }>
  /** Lifecycle (contract-lifecycle / contract-watch services): the last signed heartbeat, the termination record. */
  heartbeat?: Uint8Array
  lastHeartbeatUnixSecs?: number
  termination?: Uint8Array
  /** Provider: the instance's start, for uptime in usage records. */
  startedAtUnixSecs?: number
  updatedAtUnixSecs: number
}

/** A settled payment (market/payment.ts Settlement). */
export type StoredPayment = Settlement

const schema = z.strictObject({
  role: z.enum(['requester', 'provider']),
  id: z.string().min(1).max(128),
  state: z.enum(CONTRACT_STATES),
  rfp: bytes(),
  ccb: bytes().optional(),
  ccba: bytes().optional(),
  ccr: bytes().optional(),
  receipt: z.strictObject({ enc: bytes(32), ct: bytes() }).optional(),
  receiptKey: bytes(32).optional(),
  counterparty: did.optional(),
  costWei: z.string().optional(),
  backend: z.string().optional(),
  validToUnixSecs: unixSecs.optional(),
  progress: z.array(z.string().max(64)).max(64),
  error: z.strictObject({ code: z.string(), detail: z.string() }).optional(),
  payment: z.strictObject({ txid: z.string().max(80), payer: z.string().max(64), network: z.string().max(64), amount: z.string().max(80) }).optional(),
  ccbap: bytes().optional(),
  periodPayments: z.array(z.strictObject({ index: z.number().int().nonnegative(), txid: z.string().max(80), payer: z.string().max(64), network: z.string().max(64), amount: z.string().max(80), ccbap: bytes().optional() })).max(10_000).optional(),
  heartbeat: bytes().optional(),
  lastHeartbeatUnixSecs: unixSecs.optional(),
  termination: bytes().optional(),
  startedAtUnixSecs: unixSecs.optional(),
  updatedAtUnixSecs: unixSecs
})

export function contractKey (role: ContractRole, id: string): string {
  return `${role}/${id}`
}

export function encodeContract (c: StoredContract): Uint8Array {
  // Drop undefined fields: DAG-CBOR has no undefined.
  return encodeCanonical(Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)))
}

export function decodeContract (bytes: Uint8Array): StoredContract {
  return schema.parse(decodeCanonical(bytes)) as StoredContract
}
