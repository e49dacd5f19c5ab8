/**
 * What a full TDX verification established that the next quote can reuse: collateral verified to
 * a trust anchor (keyed by the hash of its bytes and the anchor), PCK chains verified to the anchor
 * (keyed by the chain's bytes), TCB level matches and imported attestation keys. Each verified
 * entry carries the window over which every time check it passed holds (certificates, CRLs, TCB
 * Info, QE Identity): a lookup outside it misses, so a cached success never outlives its collateral.
 * Nothing that joins a chain to collateral is cached (revocation, CRL issuer, FMSPC, PCE-ID): the
 * fast path checks those against the collateral at hand every time. Only successes are cached.
 */
import { createHash, createPublicKey, type KeyObject, type X509Certificate } from 'node:crypto'
import dcap from '@phala/dcap-qvl'
import { BoundedLru } from './bounded-lru.js'
import type { Collateral, QeIdentity, TcbInfo } from './collateral.js'
import type { CheckedCrl, Validity } from './pki.js'
import type { TrustAnchor } from './trust-anchor.js'

/** Collateral that passed every check of a full verification (ours and dcap-qvl's) under one anchor. */
export interface VerifiedCollateral {
  validity: Validity
  tcbInfo: TcbInfo
  qeIdentity: QeIdentity
  /** SHA-256 of the signed TCB Info text: part of every TCB match key. */
  tcbInfoHash: string
  /** DER of the certificate that issued the PCK CRL (must be the PCK chain's CA). */
  pckCrlIssuer: Buffer
  /** The PCK CRL and the root CA CRL, as our CRL check read them (issuer-aware revocation). */
  crls: [CheckedCrl, CheckedCrl]
  /** Every serial either CRL lists, read as dcap-qvl reads them (decimal, issuer-blind); computed on first reuse. */
  qvlRevokedSerials: () => Set<string>
}

/** A PCK chain verified to the anchor, with what the per-quote checks read from its leaf. */
export interface VerifiedChain {
  validity: Validity
  /** [leaf, platform/processor CA, anchor], as our chain check returned it. */
  path: X509Certificate[]
  leafKey: KeyObject
  pceId: Buffer
  cpuSvn: Uint8Array
  pceSvn: number
  fmspc: Buffer
  /** Serials dcap-qvl checks against the CRLs for this chain (leaf, every shipped CA, the anchor); computed on first reuse. */
  qvlSerials: () => string[]
}

/** A platform TCB level match (dcap-qvl semantics), or the absence of one. */
export type TcbMatch = { status: string, advisoryIds: string[] } | { noMatch: true }

export interface VerificationCacheOptions {
  collaterals?: number
  chains?: number
  tcbMatches?: number
  attestationKeys?: number
}

export interface VerificationCacheStats {
  /** Verifications that reused verified collateral and chain (the fast path). */
  warm: number
  /** Verifications that went through the full path (new collateral or chain, a time outside a window, no cache). */
  cold: number
}

export class VerificationCache {
  private readonly collaterals: BoundedLru<string, VerifiedCollateral>
  private readonly chains: BoundedLru<string, VerifiedChain>
  private readonly tcbMatches: BoundedLru<string, TcbMatch>
  private readonly attestationKeys: BoundedLru<string, KeyObject>
  readonly stats: VerificationCacheStats = { warm: 0, cold: 0 }

  constructor (options: VerificationCacheOptions = {}) {
    // Collateral is per FMSPC and changes monthly; chains are per platform; keys per QE.
    this.collaterals = new BoundedLru(options.collaterals ?? 64)
    this.chains = new BoundedLru(options.chains ?? 1024)
    this.tcbMatches = new BoundedLru(options.tcbMatches ?? 4096)
    this.attestationKeys = new BoundedLru(options.attestationKeys ?? 1024)
  }

  /** Verified collateral for `key`, if there is an entry and `atMs` lies inside its window. */
  collateral (key: string, atMs: number): VerifiedCollateral | undefined {
    const entry = this.collaterals.get(key)
    return entry !== undefined && within(entry.validity, atMs) ? entry : undefined
  }

  rememberCollateral (key: string, entry: VerifiedCollateral): void {
    this.collaterals.set(key, entry)
  }

  hasCollateral (key: string): boolean {
    return this.collaterals.get(key) !== undefined
  }

  chain (key: string, atMs: number): VerifiedChain | undefined {
    const entry = this.chains.get(key)
    return entry !== undefined && within(entry.validity, atMs) ? entry : undefined
  }

  rememberChain (key: string, entry: VerifiedChain): void {
    this.chains.set(key, entry)
  }

  hasChain (key: string): boolean {
    return this.chains.get(key) !== undefined
  }

  tcbMatch (key: string, compute: () => TcbMatch): TcbMatch {
    let match = this.tcbMatches.get(key)
    if (match === undefined) {
      match = compute()
      this.tcbMatches.set(key, match)
    }
    return match
  }

  /**
   * The quote's attestation key (X‖Y) as a node:crypto key, imported once. Imported as a JWK, as
   * dcap-qvl does, so a key that is not a P-256 point throws the same error there and here.
   */
  attestationKey (xy: Uint8Array): KeyObject {
    const id = Buffer.from(xy).toString('hex')
    let key = this.attestationKeys.get(id)
    if (key === undefined) {
      key = importAttestationKey(xy)
      this.attestationKeys.set(id, key)
    }
    return key
  }

  clear (): void {
    this.collaterals.clear()
    this.chains.clear()
    this.tcbMatches.clear()
    this.attestationKeys.clear()
  }
}

export function importAttestationKey (xy: Uint8Array): KeyObject {
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url')
  return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: b64(xy.subarray(0, 32)), y: b64(xy.subarray(32, 64)) }, format: 'jwk' })
}

/** `f`'s value, computed on the first call: the full path should not pay for what only reuse needs. */
export function once<T> (f: () => T): () => T {
  let value: { v: T } | undefined
  return () => (value ??= { v: f() }).v
}

const within = (v: Validity, atMs: number) => v.notBefore <= atMs && atMs <= v.notAfter

const COLLATERAL_FIELDS = [
  'pck_crl_issuer_chain', 'root_ca_crl', 'pck_crl', 'tcb_info_issuer_chain', 'tcb_info',
  'tcb_info_signature', 'qe_identity_issuer_chain', 'qe_identity', 'qe_identity_signature'
] as const

/**
 * SHA-256 over the anchor and every collateral field (length-prefixed), or undefined when a field
 * is not a well-formed string: such collateral is refused by the full path and never cached. Lone
 * surrogates would all encode to U+FFFD, so two different strings could hash alike.
 */
export function collateralKey (anchor: TrustAnchor, collateral: Collateral): string | undefined {
  const parts: string[] = [anchor.sha256]
  for (const field of COLLATERAL_FIELDS) {
    const value: unknown = (collateral as Record<string, unknown>)[field]
    // String.prototype.isWellFormed is in Node 20, not in this project's TypeScript lib.
    if (typeof value !== 'string' || !(value as unknown as { isWellFormed: () => boolean }).isWellFormed()) return undefined
    parts.push(`${value.length}:`, value)
  }
  // One update of the joined text: each update call costs more than hashing a few kB.
  return createHash('sha256').update(parts.join('\0')).digest('hex')
}

/** The PCK chain text (latin1, as read from the quote) under one anchor. */
export function chainKey (anchor: TrustAnchor, pckChainPem: string): string {
  return createHash('sha256').update(anchor.sha256).update('\0').update(pckChainPem, 'latin1').digest('hex')
}

/** A certificate's serial as dcap-qvl compares it with CRL entries (its own DER decoder, decimal). */
export function qvlSerial (der: Uint8Array): string {
  return dcap.utils.Certificate.decode(Buffer.from(der), 'der').tbsCertificate.serialNumber.toString()
}

/** Every serial a CRL lists as dcap-qvl reads it; a CRL its decoder cannot read revokes nothing there. */
export function qvlCrlSerials (der: Uint8Array): string[] {
  try {
    const crl = dcap.utils.CertificateList.decode(Buffer.from(der), 'der')
    return (crl.tbsCertList.revokedCertificates ?? []).map((r: { userCertificate: { toString: () => string } }) => r.userCertificate.toString())
  } catch {
    return []
  }
}

/**
 * Shared by every verification that does not bring its own cache: bounded, and safe to share
 * because an entry is only ever a verified success reused inside its own window.
 */
export const sharedVerificationCache = new VerificationCache()
