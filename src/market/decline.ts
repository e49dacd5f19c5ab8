/**
 * Decline: a provider's signed, reasoned refusal to bid on one CCRFP (our namespace; the
 * compute-contract lexicons have no such record). The requester can list why nobody bid.
 */
import type { Did } from './identity.js'
import type { StrongRef } from './address.js'
import type { RecordType, SignedRecord } from './record.js'
import { did, unixSecs, z } from './schema.js'
import { CCRFP_NSID } from './ccrfp.js'
import { strongRef, strongRefToWire } from './strong-ref.js'

export const DECLINE_NSID = 'org.computemesh.contract.decline'
export const MAX_DECLINE_BYTES = 2 * 1024
export const MAX_DECLINE_DETAIL_CHARS = 256

/** Stable reason codes, in the order the bid engine checks them (bid-engine.ts). */
export const DECLINE_CODES = [
  'RFP_CLOSED',
  'SCHEME_UNSUPPORTED',
  'FLOOR_NOT_MET',
  'TDX_UNAVAILABLE',
  'MEASUREMENTS_MISMATCH',
  'REGION_UNSERVED',
  'NO_CAPACITY',
  'PRICE_BELOW_RATE',
  'POLICY_REFUSED'
] as const

export type DeclineCode = typeof DECLINE_CODES[number]

export interface Decline {
  rfp: StrongRef
  provider: Did
  createdAtUnixSecs: number
  code: DeclineCode
  /** For humans; bounded, never parsed. */
  detail: string
}

const declineSchema = z.strictObject({
  rfp: strongRef(CCRFP_NSID),
  provider: did,
  createdAtUnixSecs: unixSecs,
  code: z.enum(DECLINE_CODES),
  detail: z.string().max(MAX_DECLINE_DETAIL_CHARS)
}) satisfies z.ZodType<Decline, any>

export const DeclineType: RecordType<Decline> = {
  nsid: DECLINE_NSID,
  maxBytes: MAX_DECLINE_BYTES,
  schema: declineSchema,
  toFields: (d) => ({
    rfp: strongRefToWire(d.rfp),
    provider: d.provider,
    createdAtUnixSecs: d.createdAtUnixSecs,
    code: d.code,
    detail: d.detail
  }),
  author: (d) => d.provider,
  time: (d) => d.createdAtUnixSecs
}

export type SignedDecline = SignedRecord<Decline>
