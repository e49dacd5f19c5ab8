/**
 * CCRFP: a requester's public Compute Contract Request For Proposal, gossiped on the rfps topic.
 *
 * The fields are the compute-contract lexicon's (`com.publicdomainrelay.temp.ccrfp`), by name and
 * format, so a compute-contract client can read the record: `cpus`, `mem`, `disk`, `network`
 * (lexicon size strings, see sizes.ts), `location {country, region}`, `role`, `user_data`.
 * Additive, named fields: `requester` (the signer), `createdAtUnixSecs` (orders and names the
 * record), and one extension key `cmesh` with our requirements.
 *
 * `user_data` in this public record is never the script: it is a reference
 * `cmesh-sealed:sha256:<hex>` to the plaintext, which travels HPKE-sealed inside the CCBA to the
 * accepted provider alone. Eve, who reads every topic, learns only its digest.
 */
import { sha256 } from '@noble/hashes/sha2.js'
import { ATTESTATION_LEVELS, type AttestationLevel } from './ladder.js'
import type { Did } from './identity.js'
import type { RecordType, SignedRecord } from './record.js'
import { RecordError } from './errors.js'
import { bytesEqual, fromHex, toHex, utf8 } from './bytes.js'
import { bytes, did, token, uint, unixSecs, wei, weiToString, z } from './schema.js'
import { sizeString, sizeToGiB, sizeToMiB } from './sizes.js'

/** Lexicon name kept from the compute-contract lexicons. */
export const CCRFP_NSID = 'com.publicdomainrelay.temp.ccrfp'
export const MAX_CCRFP_BYTES = 4 * 1024
export const MAX_BID_WINDOW_SECS = 600
export const MIN_DURATION_SECS = 60
export const MAX_DURATION_SECS = 366 * 86400
export const MAX_CPUS = 4096

/** What our public `user_data` holds: this prefix and the lower-case hex sha256 of the plaintext. */
export const USER_DATA_REF_PREFIX = 'cmesh-sealed:sha256:'
const USER_DATA_REF_PATTERN = /^cmesh-sealed:sha256:([0-9a-f]{64})$/

/** Our requirements, under the one extension key `cmesh`. */
export interface CcrfpRequirements {
  scheme: string
  tdx: boolean
  floor: AttestationLevel
  /** sha256 of the measurement manifest the requester pins (compared with a card's attestationDigest). */
  expectedMeasurements?: Uint8Array
  priceCapWei: bigint
  durationSecs: number
  bidWindowSecs: number
  /**
   * Random bytes that make each RFP its own record: two requests with the same fields in the same
   * second would otherwise be one record (one CID), and their bids, holds and contracts one too.
   */
  nonce?: Uint8Array
}

/** The lexicon's location; either part may be absent. Only `region` is matched (against backend regions). */
export interface CcrfpLocation {
  country?: string
  region?: string
}

export interface Ccrfp {
  requester: Did
  createdAtUnixSecs: number
  /** vCPUs, ≥ 1. */
  cpus: number
  /** Lexicon sizes: `"4G"`, `"512M"`… (sizes.ts). */
  mem: string
  disk: string
  network: string
  location?: CcrfpLocation
  role: string
  /** `cmesh-sealed:sha256:<hex>`: a reference to the sealed user_data, never the plaintext. */
  user_data: string
  cmesh: CcrfpRequirements
}

export function isUserDataRef (value: unknown): value is string {
  return typeof value === 'string' && USER_DATA_REF_PATTERN.test(value)
}

/** The public reference to a user_data plaintext (bytes, or a string taken as UTF-8). */
export function userDataRef (plaintext: Uint8Array | string): string {
  return userDataRefFromDigest(sha256(typeof plaintext === 'string' ? utf8(plaintext) : plaintext))
}

export function userDataRefFromDigest (digest: Uint8Array): string {
  if (!(digest instanceof Uint8Array) || digest.length !== 32) throw new TypeError('a user_data digest is 32 bytes')
  return `${USER_DATA_REF_PREFIX}${toHex(digest)}`
}

/** The sha256 digest a reference names; throws a TypeError on anything else. */
export function parseUserDataRef (ref: string): Uint8Array {
  const m = typeof ref === 'string' ? USER_DATA_REF_PATTERN.exec(ref) : null
  if (m === null) throw new TypeError('not a cmesh-sealed:sha256 user_data reference')
  return fromHex(m[1] as string)
}

/** Whether an opened user_data plaintext is the one the RFP referenced. */
export function userDataMatches (ref: string, plaintext: Uint8Array | string): boolean {
  return isUserDataRef(ref) && bytesEqual(parseUserDataRef(ref), parseUserDataRef(userDataRef(plaintext)))
}

const requirementsSchema = z.strictObject({
  scheme: token(64),
  tdx: z.boolean(),
  floor: z.enum(ATTESTATION_LEVELS),
  expectedMeasurements: bytes(32).optional(),
  priceCapWei: wei,
  durationSecs: uint.min(MIN_DURATION_SECS).max(MAX_DURATION_SECS),
  bidWindowSecs: uint.min(1).max(MAX_BID_WINDOW_SECS),
  nonce: bytes(8).optional()
})

const locationSchema = z.strictObject({
  country: z.string().min(1).max(64).optional(),
  region: token(48).optional()
}).refine((l) => l.country !== undefined || l.region !== undefined, { message: 'an empty location is spelt by leaving it out' })

const ccrfpSchema = z.strictObject({
  requester: did,
  createdAtUnixSecs: unixSecs,
  cpus: uint.min(1).max(MAX_CPUS),
  mem: sizeString,
  disk: sizeString,
  network: sizeString,
  location: locationSchema.optional(),
  role: token(64),
  user_data: z.string().refine(isUserDataRef, { message: 'user_data must be a cmesh-sealed:sha256:<hex> reference, never the plaintext' }),
  cmesh: requirementsSchema
}) satisfies z.ZodType<Ccrfp, any>

function locationToWire (l: CcrfpLocation): Record<string, unknown> {
  return {
    ...(l.country !== undefined ? { country: l.country } : {}),
    ...(l.region !== undefined ? { region: l.region } : {})
  }
}

export const CcrfpType: RecordType<Ccrfp> = {
  nsid: CCRFP_NSID,
  maxBytes: MAX_CCRFP_BYTES,
  schema: ccrfpSchema,
  toFields: (r) => ({
    requester: r.requester,
    createdAtUnixSecs: r.createdAtUnixSecs,
    cpus: r.cpus,
    mem: r.mem,
    disk: r.disk,
    network: r.network,
    ...(r.location !== undefined ? { location: locationToWire(r.location) } : {}),
    role: r.role,
    user_data: r.user_data,
    cmesh: {
      scheme: r.cmesh.scheme,
      tdx: r.cmesh.tdx,
      floor: r.cmesh.floor,
      ...(r.cmesh.expectedMeasurements !== undefined ? { expectedMeasurements: r.cmesh.expectedMeasurements } : {}),
      priceCapWei: weiToString(r.cmesh.priceCapWei),
      durationSecs: r.cmesh.durationSecs,
      bidWindowSecs: r.cmesh.bidWindowSecs,
      ...(r.cmesh.nonce !== undefined ? { nonce: r.cmesh.nonce } : {})
    }
  }),
  author: (r) => r.requester,
  time: (r) => r.createdAtUnixSecs,
  check: (r) => {
    if (r.cmesh.tdx && r.cmesh.floor === 'Software') {
      throw new RecordError('RECORD_SEMANTIC', 'ccrfp: a TDX request needs a TDX attestation floor')
    }
  }
}

export type SignedCcrfp = SignedRecord<Ccrfp>

/** When bidding on this RFP closes (unix seconds). */
export function bidDeadline (rfp: Ccrfp): number {
  return rfp.createdAtUnixSecs + rfp.cmesh.bidWindowSecs
}

export interface RequestedResources {
  cpus: number
  /** `mem` in whole MiB, rounded up. */
  memMiB: number
  /** `disk` in whole GiB, rounded up. */
  diskGiB: number
  /** `network` in whole GiB, rounded up (carried; no current code meters it). */
  networkGiB: number
}

/** The RFP's resources as numbers (only call on a decoded or schema-valid RFP). */
export function requestedResources (rfp: Ccrfp): RequestedResources {
  return { cpus: rfp.cpus, memMiB: sizeToMiB(rfp.mem), diskGiB: sizeToGiB(rfp.disk), networkGiB: sizeToGiB(rfp.network) }
}
