/**
 * CCRFP: a requester's public Compute Contract Request For Proposal, as gossiped on the rfps topic.
 * It carries what providers need to decide whether to bid, and only a *digest* of `user_data`:
 * the plaintext travels later, inside the attested channel, to the accepted provider alone.
 */
import { ATTESTATION_LEVELS, type AttestationLevel } from './ladder.js'
import type { Did } from './identity.js'
import type { RecordType, SignedRecord } from './record.js'
import { RecordError } from './errors.js'
import { bytes, did, token, uint, unixSecs, wei, weiToString, z } from './schema.js'

/** Lexicon name kept from the compute-contract lexicons. */
export const CCRFP_NSID = 'com.publicdomainrelay.temp.ccrfp'
export const MAX_CCRFP_BYTES = 4 * 1024
export const MAX_BID_WINDOW_SECS = 600

export interface ComputeResources {
  cpu: number
  memoryMiB: number
  diskGiB: number
}

export interface CcrfpRequirements {
  scheme: string
  tdx: boolean
  floor: AttestationLevel
  /** sha256 of the measurement manifest the requester expects, when it pins one. */
  expectedMeasurements?: Uint8Array
  priceCapWei: bigint
  durationSecs: number
  bidWindowSecs: number
}

export interface Ccrfp {
  requester: Did
  createdAtUnixSecs: number
  resources: ComputeResources
  /** Region wanted; any when absent. */
  region?: string
  role: string
  requirements: CcrfpRequirements
  /** sha256 of the user_data the accepted provider will receive. */
  userDataDigest: Uint8Array
}

const ccrfpSchema = z.strictObject({
  requester: did,
  createdAtUnixSecs: unixSecs,
  resources: z.strictObject({ cpu: uint.min(1).max(4096), memoryMiB: uint.min(1), diskGiB: uint }),
  region: token(48).optional(),
  role: token(32),
  requirements: z.strictObject({
    scheme: token(64),
    tdx: z.boolean(),
    floor: z.enum(ATTESTATION_LEVELS),
    expectedMeasurements: bytes(32).optional(),
    priceCapWei: wei,
    durationSecs: uint.min(60).max(366 * 86400),
    bidWindowSecs: uint.min(1).max(MAX_BID_WINDOW_SECS)
  }),
  userDataDigest: bytes(32)
}) satisfies z.ZodType<Ccrfp, any>

export const CcrfpType: RecordType<Ccrfp> = {
  nsid: CCRFP_NSID,
  maxBytes: MAX_CCRFP_BYTES,
  schema: ccrfpSchema,
  toFields: (r) => ({
    requester: r.requester,
    createdAtUnixSecs: r.createdAtUnixSecs,
    resources: { ...r.resources },
    ...(r.region !== undefined ? { region: r.region } : {}),
    role: r.role,
    requirements: {
      scheme: r.requirements.scheme,
      tdx: r.requirements.tdx,
      floor: r.requirements.floor,
      ...(r.requirements.expectedMeasurements !== undefined ? { expectedMeasurements: r.requirements.expectedMeasurements } : {}),
      priceCapWei: weiToString(r.requirements.priceCapWei),
      durationSecs: r.requirements.durationSecs,
      bidWindowSecs: r.requirements.bidWindowSecs
    },
    userDataDigest: r.userDataDigest
  }),
  author: (r) => r.requester,
  time: (r) => r.createdAtUnixSecs,
  check: (r) => {
    if (r.requirements.tdx && r.requirements.floor === 'Software') {
      throw new RecordError('RECORD_SEMANTIC', 'ccrfp: a TDX request needs a TDX attestation floor')
    }
  }
}

export type SignedCcrfp = SignedRecord<Ccrfp>

/** When bidding on this RFP closes (unix seconds). */
export function bidDeadline (rfp: Ccrfp): number {
  return rfp.createdAtUnixSecs + rfp.requirements.bidWindowSecs
}
