/**
 * Vouch and denounce: signed trust edges `truster → subject` that a requester's policy walks
 * (contract-policy.ts). A vouch extends trust; a denouncement by me or anyone I trust always wins.
 */
import type { Did } from './identity.js'
import type { RecordType, SignedRecord } from './record.js'
import { RecordError } from './errors.js'
import { did, unixSecs, z } from './schema.js'

export const VOUCH_NSID = 'org.computemesh.trust.vouch'
export const DENOUNCE_NSID = 'org.computemesh.trust.denounce'
export const MAX_TRUST_BYTES = 1024
export const MAX_TRUST_NOTE_CHARS = 280

export interface TrustStatement {
  truster: Did
  subject: Did
  createdAtUnixSecs: number
  /** For humans; bounded. */
  note?: string
}

export type Vouch = TrustStatement
export type Denounce = TrustStatement

const trustSchema = z.strictObject({
  truster: did,
  subject: did,
  createdAtUnixSecs: unixSecs,
  note: z.string().max(MAX_TRUST_NOTE_CHARS).optional()
}) satisfies z.ZodType<TrustStatement, any>

function trustType (nsid: string, what: string): RecordType<TrustStatement> {
  return {
    nsid,
    maxBytes: MAX_TRUST_BYTES,
    schema: trustSchema,
    toFields: (t) => ({
      truster: t.truster,
      subject: t.subject,
      createdAtUnixSecs: t.createdAtUnixSecs,
      ...(t.note !== undefined ? { note: t.note } : {})
    }),
    author: (t) => t.truster,
    time: (t) => t.createdAtUnixSecs,
    check: (t) => {
      if (t.subject === t.truster) throw new RecordError('RECORD_SEMANTIC', `${what}: truster and subject are the same identity`)
    }
  }
}

export const VouchType: RecordType<Vouch> = trustType(VOUCH_NSID, 'vouch')
export const DenounceType: RecordType<Denounce> = trustType(DENOUNCE_NSID, 'denounce')

export type SignedVouch = SignedRecord<Vouch>
export type SignedDenounce = SignedRecord<Denounce>
export type SignedTrust = SignedVouch | SignedDenounce

export const TRUST_RECORD_TYPES = [VouchType, DenounceType] as const

/** By NSID: a vouch and a denouncement share one value shape, so TS types cannot tell them apart. */
export function isVouch (record: { type: { nsid: string } }): boolean {
  return record.type.nsid === VOUCH_NSID
}

export function isDenounce (record: { type: { nsid: string } }): boolean {
  return record.type.nsid === DENOUNCE_NSID
}
