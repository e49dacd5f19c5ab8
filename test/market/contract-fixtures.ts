/** Signed contract records for the market tests: one valid chain, and ways to tamper with it. */
import * as dagCbor from '@ipld/dag-cbor'
import { sha256 } from '@noble/hashes/sha2.js'
import {
  signRecord, encodeCanonical, concatBytes, utf8, strongRefTo, userDataRef, datetimeFromUnixSecs, RecordError, RECORD_SIGNATURE_DOMAIN,
  CcrfpType, CcbType, CcbaType, CcrType, DeclineType, VouchType, DenounceType,
  type Ccrfp, type Ccb, type Ccba, type Ccr, type Decline, type Identity, type RecordErrorCode,
  type SignedCcrfp, type SignedCcb, type SignedCcba, type SignedCcr, type SignedVouch, type SignedDenounce
} from '../../src/market/index.js'
import { testIdentity, T0 } from '../helpers/cards.js'

export const alice = testIdentity(11) // requester
export const bob = testIdentity(12) // provider
export const carol = testIdentity(13) // another provider
export const eve = testIdentity(14)

export const USER_DATA = '#cloud-config\npackages: [python3]\n'

export function rfpFields (overrides: Partial<Ccrfp> = {}, identity: Identity = alice): Ccrfp {
  return {
    requester: identity.did,
    createdAtUnixSecs: T0,
    cpus: 2,
    mem: '4G',
    disk: '20G',
    network: '500G',
    role: 'worker',
    user_data: userDataRef(USER_DATA),
    ...overrides,
    cmesh: { scheme: 'vm.ssh', tdx: false, floor: 'Software', priceCapWei: 10n ** 15n, durationSecs: 3600, bidWindowSecs: 30, ...overrides.cmesh }
  }
}

export function makeRfp (overrides: Partial<Ccrfp> = {}, identity: Identity = alice): SignedCcrfp {
  return signRecord(CcrfpType, rfpFields(overrides, identity), identity)
}

export function ccbFields (rfp: SignedCcrfp, overrides: Partial<Ccb> = {}, identity: Identity = bob): Ccb {
  return {
    embed: strongRefTo(rfp),
    bid: { cost: 5000n, currency: 'wei', frequency: 'one-time', prepay: false, x402: { base_url: '' } },
    provider: identity.did,
    createdAtUnixSecs: T0 + 5,
    ...overrides,
    cmesh: {
      expiresAtUnixSecs: T0 + 90,
      backend: 'local',
      region: 'local',
      level: 'Software',
      cpus: 2,
      memMiB: 4096,
      diskGiB: 20,
      durationSecs: 3600,
      sealKey: sha256(utf8(`seal ${identity.did}`)),
      ...overrides.cmesh
    }
  }
}

export function makeCcb (rfp: SignedCcrfp, overrides: Partial<Ccb> = {}, identity: Identity = bob): SignedCcb {
  return signRecord(CcbType, ccbFields(rfp, overrides, identity), identity)
}

export function ccbaFields (rfp: SignedCcrfp, ccb: SignedCcb, overrides: Partial<Ccba> = {}, identity: Identity = alice): Ccba {
  return {
    embed: strongRefTo(rfp),
    bid: strongRefTo(ccb),
    requester: identity.did,
    createdAtUnixSecs: T0 + 40,
    cmesh: { receiptKey: sha256(utf8('receipt key')), userData: { enc: new Uint8Array(32).fill(7), ct: new Uint8Array(64).fill(9) } },
    ...overrides
  }
}

export function makeCcba (rfp: SignedCcrfp, ccb: SignedCcb, overrides: Partial<Ccba> = {}, identity: Identity = alice): SignedCcba {
  return signRecord(CcbaType, ccbaFields(rfp, ccb, overrides, identity), identity)
}

export function ccrFields (rfp: SignedCcrfp, ccb: SignedCcb, ccba: SignedCcba, overrides: Partial<Ccr> = {}, identity: Identity = bob): Ccr {
  return {
    rfp: strongRefTo(rfp),
    bid: strongRefTo(ccb),
    ccba: strongRefTo(ccba),
    createdAt: datetimeFromUnixSecs(T0 + 60),
    compute: { ipv4: '203.0.113.7' },
    provider: identity.did,
    createdAtUnixSecs: T0 + 60,
    ...overrides
  }
}

export function makeCcr (rfp: SignedCcrfp, ccb: SignedCcb, ccba: SignedCcba, overrides: Partial<Ccr> = {}, identity: Identity = bob): SignedCcr {
  return signRecord(CcrType, ccrFields(rfp, ccb, ccba, overrides, identity), identity)
}

export function declineFields (rfp: SignedCcrfp, overrides: Partial<Decline> = {}, identity: Identity = bob): Decline {
  return { rfp: strongRefTo(rfp), provider: identity.did, createdAtUnixSecs: T0 + 5, code: 'NO_CAPACITY', detail: 'full', ...overrides }
}

export function vouch (truster: Identity, subject: Identity, at = T0): SignedVouch {
  return signRecord(VouchType, { truster: truster.did, subject: subject.did, createdAtUnixSecs: at }, truster)
}

export function denounce (truster: Identity, subject: Identity, at = T0): SignedDenounce {
  return signRecord(DenounceType, { truster: truster.did, subject: subject.did, createdAtUnixSecs: at }, truster)
}

export function refusedWith (code: RecordErrorCode) {
  return (err: unknown) => err instanceof RecordError && err.code === code
}

export function wireMap (bytes: Uint8Array): Record<string, any> {
  return dagCbor.decode(bytes) as Record<string, any>
}

/** Re-signs a decoded map (changed as a test likes) as `identity`, so the change reaches the checks after the signature. */
export function signMap (map: Record<string, unknown>, identity: Identity): Uint8Array {
  const { sig: _sig, ...body } = map
  return encodeCanonical({ ...body, sig: identity.sign(concatBytes(RECORD_SIGNATURE_DOMAIN, encodeCanonical(body))) })
}
