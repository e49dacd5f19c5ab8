/**
 * CCR: the provider's Compute Contract Receipt, issued once the compute runs.
 *
 * Lexicon fields (`com.publicdomainrelay.temp.ccr`): `rfp`, `bid`, `ccba` (strongRefs), `createdAt`
 * (RFC 3339 datetime), optional `compute {ipv4, ipv6}`. Additive, named: `provider` (the signer)
 * and `createdAtUnixSecs`, which must name the same second as `createdAt`.
 *
 * The sealed SSH receipt is not a field here: its HPKE aad binds this record's CID, so it cannot
 * sit inside the bytes that CID hashes. It travels beside the CCR.
 */
import type { Did } from './identity.js'
import type { StrongRef } from './address.js'
import type { RecordType, SignedRecord } from './record.js'
import { RecordError } from './errors.js'
import { did, unixSecs, z } from './schema.js'
import { CCRFP_NSID } from './ccrfp.js'
import { CCB_NSID } from './ccb.js'
import { CCBA_NSID } from './ccba.js'
import { strongRef, strongRefToWire } from './strong-ref.js'
import { isDatetime, parseDatetimeMs } from './datetime.js'
import { isIpv4, isIpv6 } from './ip-literal.js'

export const CCR_NSID = 'com.publicdomainrelay.temp.ccr'
export const MAX_CCR_BYTES = 2 * 1024

export interface CcrCompute {
  ipv4?: string
  ipv6?: string
}

export interface Ccr {
  rfp: StrongRef
  bid: StrongRef
  ccba: StrongRef
  /** RFC 3339; see datetimeFromUnixSecs. */
  createdAt: string
  compute?: CcrCompute
  provider: Did
  createdAtUnixSecs: number
}

const ccrSchema = z.strictObject({
  rfp: strongRef(CCRFP_NSID),
  bid: strongRef(CCB_NSID),
  ccba: strongRef(CCBA_NSID),
  createdAt: z.string().refine(isDatetime, { message: 'expected an RFC 3339 datetime' }),
  compute: z.strictObject({
    ipv4: z.string().refine(isIpv4, { message: 'expected an IPv4 address' }).optional(),
    ipv6: z.string().refine(isIpv6, { message: 'expected an IPv6 address' }).optional()
  }).optional(),
  provider: did,
  createdAtUnixSecs: unixSecs
}) satisfies z.ZodType<Ccr, any>

export const CcrType: RecordType<Ccr> = {
  nsid: CCR_NSID,
  maxBytes: MAX_CCR_BYTES,
  schema: ccrSchema,
  toFields: (r) => ({
    rfp: strongRefToWire(r.rfp),
    bid: strongRefToWire(r.bid),
    ccba: strongRefToWire(r.ccba),
    createdAt: r.createdAt,
    ...(r.compute !== undefined
      ? { compute: { ...(r.compute.ipv4 !== undefined ? { ipv4: r.compute.ipv4 } : {}), ...(r.compute.ipv6 !== undefined ? { ipv6: r.compute.ipv6 } : {}) } }
      : {}),
    provider: r.provider,
    createdAtUnixSecs: r.createdAtUnixSecs
  }),
  author: (r) => r.provider,
  time: (r) => r.createdAtUnixSecs,
  check: (r) => {
    const ms = parseDatetimeMs(r.createdAt) as number
    if (Math.floor(ms / 1000) !== r.createdAtUnixSecs) {
      throw new RecordError('RECORD_SEMANTIC', 'ccr: createdAt and createdAtUnixSecs name different seconds')
    }
  }
}

export type SignedCcr = SignedRecord<Ccr>
