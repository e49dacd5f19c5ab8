/**
 * CCBA: the requester's Compute Contract Bid Accept, sent to the one provider it chose.
 *
 * Lexicon fields (`com.publicdomainrelay.temp.ccba`): `embed` (strongRef to the CCRFP), `bid`
 * (strongRef to the accepted CCB), `payment` (strongRef to a CCBAP). The lexicon requires
 * `payment`; it stays optional here: an unsettled (wei) bid is accepted without one, and a paid bid
 * is accepted first without one (the x402 resource names that record) and then updated, at the same
 * at:// address, to name its CCBAP (contract-checks.ts checkPaidAccept). Additive, named: `requester` (the signer), `createdAtUnixSecs`, and extension
 * `cmesh` with the receipt key and the HPKE-sealed user_data, opaque to this module.
 */
import type { Did } from './identity.js'
import type { StrongRef } from './address.js'
import type { RecordType, SignedRecord } from './record.js'
import { MAX_RECORD_BYTES } from './record.js'
import { bytes, did, unixSecs, z } from './schema.js'
import { CCRFP_NSID } from './ccrfp.js'
import { CCB_NSID } from './ccb.js'
import { strongRef, strongRefToWire } from './strong-ref.js'

export const CCBA_NSID = 'com.publicdomainrelay.temp.ccba'
export const CCBAP_NSID = 'com.publicdomainrelay.temp.ccbap'
/** The CCBA carries the sealed user_data, so it may use the whole record cap. */
export const MAX_CCBA_BYTES = MAX_RECORD_BYTES
/**
 * Sealed user_data ciphertext cap: 63 KiB, leaving 1 KiB of the 64 KiB record cap for the rest of
 * the CCBA. With ChaCha20-Poly1305's 16-byte tag, user_data plaintext is at most 64,496 bytes.
 */
export const MAX_SEALED_USER_DATA_BYTES = 63 * 1024
/** AEAD tag: a ciphertext is never shorter. */
export const MIN_SEALED_USER_DATA_BYTES = 16
/** HPKE `enc` of DHKEM(X25519, HKDF-SHA256) (DESIGN.md §8 fixes the suite). */
export const HPKE_X25519_ENC_BYTES = 32

export interface SealedBox {
  enc: Uint8Array
  ct: Uint8Array
}

export interface CcbaExtension {
  /** X25519 public key the provider seals the receipt to. */
  receiptKey: Uint8Array
  /** user_data sealed to the CCB's sealKey; its plaintext's sha256 is the CCRFP's user_data reference. */
  userData: SealedBox
  /** The audience the provider's workload identity issuer puts in this contract's tokens (default: the requester's DID). */
  wifAudience?: string
}

export interface Ccba {
  embed: StrongRef
  bid: StrongRef
  /** The CCBAP of a paid bid, once paid. */
  payment?: StrongRef
  requester: Did
  createdAtUnixSecs: number
  cmesh: CcbaExtension
}

const ccbaSchema = z.strictObject({
  embed: strongRef(CCRFP_NSID),
  bid: strongRef(CCB_NSID),
  payment: strongRef(CCBAP_NSID).optional(),
  requester: did,
  createdAtUnixSecs: unixSecs,
  cmesh: z.strictObject({
    receiptKey: bytes(32),
    userData: z.strictObject({
      enc: bytes(HPKE_X25519_ENC_BYTES),
      ct: bytes().refine((b) => b.length >= MIN_SEALED_USER_DATA_BYTES && b.length <= MAX_SEALED_USER_DATA_BYTES,
        { message: `sealed user_data is ${MIN_SEALED_USER_DATA_BYTES} to ${MAX_SEALED_USER_DATA_BYTES} bytes` })
    }),
    wifAudience: z.string().min(1).max(256).optional()
  })
}) satisfies z.ZodType<Ccba, any>

export const CcbaType: RecordType<Ccba> = {
  nsid: CCBA_NSID,
  maxBytes: MAX_CCBA_BYTES,
  schema: ccbaSchema,
  toFields: (a) => ({
    embed: strongRefToWire(a.embed),
    bid: strongRefToWire(a.bid),
    ...(a.payment !== undefined ? { payment: strongRefToWire(a.payment) } : {}),
    requester: a.requester,
    createdAtUnixSecs: a.createdAtUnixSecs,
    cmesh: {
      receiptKey: a.cmesh.receiptKey,
      userData: { enc: a.cmesh.userData.enc, ct: a.cmesh.userData.ct },
      ...(a.cmesh.wifAudience !== undefined ? { wifAudience: a.cmesh.wifAudience } : {})
    }
  }),
  author: (a) => a.requester,
  time: (a) => a.createdAtUnixSecs
}

export type SignedCcba = SignedRecord<Ccba>
