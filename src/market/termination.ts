/**
 * Termination: the signed end of a live contract (our namespace). The provider signs one when it
 * ends the machine, for whatever reason, with the final usage. A requester asks for the end with
 * the same record signed by itself (reason `REQUESTER`, no usage); the provider answers with its
 * own. The provider's record is the one both sides keep.
 */
import type { Did } from './identity.js'
import type { StrongRef } from './address.js'
import type { RecordType, SignedRecord } from './record.js'
import { did, unixSecs, z } from './schema.js'
import { CCBA_NSID } from './ccba.js'
import { strongRef, strongRefToWire } from './strong-ref.js'
import { usageSchema, usageToWire, type Usage } from './usage.js'

export const TERMINATION_NSID = 'org.computemesh.contract.termination'
export const MAX_TERMINATION_BYTES = 2 * 1024
export const MAX_TERMINATION_DETAIL_CHARS = 256

/** Stable reason codes. */
export const TERMINATION_REASONS = [
  /** valid-to was reached. */
  'EXPIRED',
  /** The requester asked for the end. */
  'REQUESTER',
  /** The machine failed or vanished on the provider's side before valid-to. */
  'PROVIDER_FAULT',
  /** The contract's payment did not arrive (x402). */
  'PAYMENT_MISSING',
  /** The provider's node stopped, and the machine with it. */
  'PROVIDER_SHUTDOWN'
] as const

export type TerminationReason = typeof TERMINATION_REASONS[number]

export interface Termination {
  /** The contract: its CCBA. */
  contract: StrongRef
  /** The signer: the contract's provider, or its requester asking for the end. */
  by: Did
  reason: TerminationReason
  /** For humans; bounded, never parsed. */
  detail: string
  atUnixSecs: number
  /** The final usage: the provider's record only. */
  usage?: Usage
}

const terminationSchema = z.strictObject({
  contract: strongRef(CCBA_NSID),
  by: did,
  reason: z.enum(TERMINATION_REASONS),
  detail: z.string().max(MAX_TERMINATION_DETAIL_CHARS),
  atUnixSecs: unixSecs,
  usage: usageSchema.optional()
}) satisfies z.ZodType<Termination, any>

export const TerminationType: RecordType<Termination> = {
  nsid: TERMINATION_NSID,
  maxBytes: MAX_TERMINATION_BYTES,
  schema: terminationSchema,
  toFields: (t) => ({
    contract: strongRefToWire(t.contract),
    by: t.by,
    reason: t.reason,
    detail: t.detail,
    atUnixSecs: t.atUnixSecs,
    ...(t.usage !== undefined ? { usage: usageToWire(t.usage) } : {})
  }),
  author: (t) => t.by,
  time: (t) => t.atUnixSecs
}

export type SignedTermination = SignedRecord<Termination>
