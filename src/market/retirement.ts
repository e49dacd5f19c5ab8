/**
 * A signed retirement tombstone: the provider withdraws its card, optionally naming a successor
 * identity (key rotation, operator hand-over). It wins over every card not committed after it.
 */
import type { Did } from './identity.js'
import type { RecordType, SignedRecord } from './record.js'
import { RecordError } from './errors.js'
import { did, unixSecs, z } from './schema.js'

export const RETIREMENT_NSID = 'org.computemesh.provider.retirement'

export interface Retirement {
  providerId: Did
  retiredAtUnixSecs: number
  successor?: Did
  /** Free text for humans (why); bounded. */
  reason?: string
}

const retirementSchema = z.strictObject({
  providerId: did,
  retiredAtUnixSecs: unixSecs,
  successor: did.optional(),
  reason: z.string().max(280).optional()
}) satisfies z.ZodType<Retirement, any>

export const RetirementType: RecordType<Retirement> = {
  nsid: RETIREMENT_NSID,
  maxBytes: 1024,
  schema: retirementSchema,
  toFields: (r) => ({
    providerId: r.providerId,
    retiredAtUnixSecs: r.retiredAtUnixSecs,
    ...(r.successor !== undefined ? { successor: r.successor } : {}),
    ...(r.reason !== undefined ? { reason: r.reason } : {})
  }),
  author: (r) => r.providerId,
  time: (r) => r.retiredAtUnixSecs,
  check: (r) => {
    if (r.successor === r.providerId) throw new RecordError('RECORD_SEMANTIC', 'retirement: a provider cannot succeed itself')
  }
}

export type SignedRetirement = SignedRecord<Retirement>
