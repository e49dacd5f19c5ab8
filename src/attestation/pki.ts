/**
 * Certificate chains and CRLs for DCAP collateral, checked strictly (what @phala/dcap-qvl leaves
 * out): every chain ends at the given trust anchor (exact DER), issuer/subject names chain, CA flags
 * hold, every certificate is valid at the verification time; every CRL's signature verifies under
 * the issuer it claims, its issuer name matches that certificate, and it is current. Certificates
 * through node:crypto, CRLs through @peculiar/x509 (which needs reflect-metadata loaded first).
 */
import 'reflect-metadata'
import { X509Certificate } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import { AttestationError, type AttestationErrorCode } from './errors.js'
import type { TrustAnchor } from './trust-anchor.js'

export function splitPemChain (pem: string): Uint8Array[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)]
    .map((m) => Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64'))
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----\r?\n?([^-]*)-----END CERTIFICATE-----/g

/**
 * Strict PEM: nothing but whitespace around the blocks, base64 lines (LF or CRLF) in canonical
 * encoding. Buffer's base64 decoder skips characters it does not know, so a lenient split can turn
 * a corrupted body into other DER, or read a chain differently from @phala/dcap-qvl.
 */
export function parsePemChain (pem: string, malformed: AttestationErrorCode): Uint8Array[] {
  const out: Uint8Array[] = []
  let end = 0
  for (const m of pem.matchAll(PEM_BLOCK)) {
    if (/\S/.test(pem.slice(end, m.index))) throw new AttestationError(malformed, 'certificate chain holds text outside its PEM blocks')
    end = m.index + m[0].length
    const b64 = (m[1] ?? '').replace(/\r?\n$/, '').split(/\r?\n/).join('')
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) throw new AttestationError(malformed, `PEM certificate ${out.length} has a body that is not base64`)
    const der = Buffer.from(b64, 'base64')
    if (der.length === 0 || der.toString('base64') !== b64) throw new AttestationError(malformed, `PEM certificate ${out.length} has a body that is not canonical base64`)
    out.push(der)
  }
  if (/\S/.test(pem.slice(end))) throw new AttestationError(malformed, 'certificate chain holds text outside its PEM blocks')
  return out
}

/**
 * Parses DER X.509 and its public key, which node decodes lazily (an invalid point would throw
 * later, outside any check). Bytes after the certificate are refused: OpenSSL's DER reader skips
 * them, while dcap-qvl's PEM round trip fails on them.
 */
export function parseCert (der: Uint8Array, malformed: AttestationErrorCode, what = 'certificate'): X509Certificate {
  let cert: X509Certificate
  try {
    cert = new X509Certificate(der)
    void cert.publicKey
  } catch (err) {
    throw new AttestationError(malformed, `${what} is not valid X.509: ${(err as Error).message}`)
  }
  if (!Buffer.from(cert.raw).equals(Buffer.from(der))) throw new AttestationError(malformed, `${what} has bytes after its DER encoding`)
  return cert
}

// Every chain of every verification ends at the anchor: parse it once per anchor object.
const anchorCerts = new WeakMap<TrustAnchor, X509Certificate>()
function anchorCert (anchor: TrustAnchor): X509Certificate {
  const known = anchorCerts.get(anchor)
  // Compared by bytes as well, so an anchor whose DER was changed in place is parsed again.
  if (known !== undefined && Buffer.from(known.raw).equals(Buffer.from(anchor.der))) return known
  const cert = parseCert(anchor.der, 'VERIFIER_FAILED', 'the trust anchor')
  anchorCerts.set(anchor, cert)
  return cert
}

const spki = (c: X509Certificate) => c.publicKey.export({ type: 'spki', format: 'der' })
const sameCa = (a: X509Certificate, b: X509Certificate) => a.subject === b.subject && spki(a).equals(spki(b))
const nameOf = (c: X509Certificate) => c.subject.replace(/\n/g, ', ')

const serial = (hex: string) => hex.toLowerCase().replace(/^(00)+(?=.)/, '')

/** The span [notBefore, notAfter] (ms since the epoch, both inclusive) over which every time check of a verification passed. */
export interface Validity {
  notBefore: number
  notAfter: number
}

export const openValidity = (): Validity => ({ notBefore: -Infinity, notAfter: Infinity })

/** Narrows `v` to [from, to]: a cached success may only be reused inside every window it was checked against. */
export function narrowValidity (v: Validity, from: number, to: number): void {
  v.notBefore = Math.max(v.notBefore, from)
  v.notAfter = Math.min(v.notAfter, to)
}

export interface ChainCodes {
  /** Structure: length, names, CA flags, validity. */
  chain: AttestationErrorCode
  /** A certificate whose signature does not verify under the certificate that names itself its issuer. */
  signature: AttestationErrorCode
  /** PEM or DER that does not decode. */
  malformed: AttestationErrorCode
  /** Which chain this is, put before every refusal's reason (the codes are shared by several chains). */
  name?: string
}

/**
 * Verifies `pem` (leaf first, the shipped root copy optional) up to `anchor`. Returns the path
 * [leaf, …, root]. `leafIsCa` is true for chains whose first certificate issues CRLs.
 * ROOT_MISMATCH means only that the chain's top is not the anchor: a shipped root of another name
 * or key, or a top certificate not issued (names, key identifiers) by the anchor. A certificate
 * whose issuer is right but whose signature does not verify is `codes.signature`.
 */
export function verifyChain (pem: string, anchor: TrustAnchor, at: Date, codes: ChainCodes, options: { leafIsCa?: boolean, length?: number, validity?: Validity } = {}): X509Certificate[] {
  if (codes.name === undefined) return verifyPath(pem, anchor, at, codes, options)
  try {
    return verifyPath(pem, anchor, at, codes, options)
  } catch (err) {
    if (!(err instanceof AttestationError)) throw err
    throw new AttestationError(err.code, `${codes.name}: ${err.message}`, err.meta, { cause: err })
  }
}

function verifyPath (pem: string, anchor: TrustAnchor, at: Date, codes: ChainCodes, { leafIsCa = false, length, validity }: { leafIsCa?: boolean, length?: number, validity?: Validity }): X509Certificate[] {
  const root = anchorCert(anchor)
  let certs = parsePemChain(pem, codes.malformed).map((der, i) => parseCert(der, codes.malformed, `certificate ${i}`))
  if (certs.length === 0) throw new AttestationError(codes.chain, 'empty certificate chain')
  const last = certs[certs.length - 1] as X509Certificate
  if (last.ca && last.issuer === last.subject) {
    // A shipped root copy must be the anchor itself (same name, same key), not another self-signed CA.
    if (!sameCa(last, root)) throw new AttestationError('ROOT_MISMATCH', 'the chain ends at a root other than the trusted one', { root: nameOf(last) })
    // dcap-qvl checks the copy as an intermediate: its signature and validity must hold too.
    if (!Buffer.from(last.raw).equals(Buffer.from(root.raw))) {
      if (!last.verify(root.publicKey)) throw new AttestationError(codes.signature, 'the shipped root certificate\'s signature does not verify under the trusted root key')
      if (new Date(last.validFrom) > at || new Date(last.validTo) < at) throw new AttestationError(codes.chain, `the shipped root certificate is not valid at ${at.toISOString()}`)
      if (validity !== undefined) narrowValidity(validity, +new Date(last.validFrom), +new Date(last.validTo))
    }
    certs = certs.slice(0, -1)
  }
  const path = [...certs, root]
  if (length !== undefined && path.length !== length) throw new AttestationError(codes.chain, `expected a chain of ${length} certificates to the root, got ${path.length}`)
  for (let i = 0; i < path.length; i++) {
    const cert = path[i] as X509Certificate
    const issuer = path[Math.min(i + 1, path.length - 1)] as X509Certificate
    if (!cert.checkIssued(issuer)) {
      throw new AttestationError(i === path.length - 2 ? 'ROOT_MISMATCH' : codes.chain, `certificate ${i} (${nameOf(cert)}) is not issued by ${i === path.length - 2 ? 'the trusted root' : `certificate ${i + 1}`} (${nameOf(issuer)})`)
    }
    if (!cert.verify(issuer.publicKey)) throw new AttestationError(codes.signature, `certificate ${i} (${nameOf(cert)}): its signature does not verify under its issuer's key`)
    if (new Date(cert.validFrom) > at || new Date(cert.validTo) < at) throw new AttestationError(codes.chain, `certificate ${i} is not valid at ${at.toISOString()}`)
    if (validity !== undefined) narrowValidity(validity, +new Date(cert.validFrom), +new Date(cert.validTo))
    if (i > 0 && !cert.ca) throw new AttestationError(codes.chain, `certificate ${i} issues certificates but is not a CA`)
    if (i === 0 && cert.ca !== leafIsCa) throw new AttestationError(codes.chain, leafIsCa ? 'CRL issuer is not a CA' : 'leaf certificate is a CA')
  }
  return path
}

export interface CheckedCrl {
  revokedSerials: Set<string>
  issuer: X509Certificate
  /** The CRL's window in ms (nextUpdate Infinity when the CRL has none). */
  thisUpdate: number
  nextUpdate: number
}

/** The length a DER SEQUENCE says it has (header included), or undefined when the header is not one. */
function derSequenceLength (der: Uint8Array): number | undefined {
  if (der.length < 2 || der[0] !== 0x30) return undefined
  const first = der[1] as number
  if (first < 0x80) return 2 + first
  const n = first & 0x7f
  if (n === 0 || n > 4 || der.length < 2 + n) return undefined
  let length = 0
  for (let i = 0; i < n; i++) length = length * 256 + (der[2 + i] as number)
  return 2 + n + length
}

/** Verifies a DER CRL against the certificate that must have issued it. */
export async function verifyCrl (hexDer: string, issuer: X509Certificate, at: Date, what: string): Promise<CheckedCrl> {
  // Buffer.from(hex) stops quietly at the first non-hex character, and the CRL parser ignores
  // bytes after the CRL: either would let collateral change without its signature noticing.
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(hexDer)) throw new AttestationError('COLLATERAL_MALFORMED', `${what} is not hex`)
  const der = Buffer.from(hexDer, 'hex')
  if (derSequenceLength(der) !== der.length) throw new AttestationError('COLLATERAL_MALFORMED', `${what} is not exactly one DER CRL (bytes after its encoding, or a bad header)`)
  // @peculiar/x509 decodes fields lazily: every field read here must sit inside the try.
  let crl: x509.X509Crl
  let issuerName: Buffer
  let revokedSerials: Set<string>
  try {
    crl = new x509.X509Crl(der)
    issuerName = Buffer.from(crl.issuerName.toArrayBuffer())
    revokedSerials = new Set(crl.entries.map((e) => serial(e.serialNumber)))
    if (!(crl.thisUpdate instanceof Date) || Number.isNaN(+crl.thisUpdate) || (crl.nextUpdate !== undefined && Number.isNaN(+crl.nextUpdate))) throw new Error('bad update times')
  } catch {
    throw new AttestationError('COLLATERAL_MALFORMED', `${what} is not a DER CRL`)
  }
  let issuerCert: x509.X509Certificate
  try {
    issuerCert = new x509.X509Certificate(issuer.raw)
  } catch {
    throw new AttestationError('COLLATERAL_MALFORMED', `${what}: its issuer certificate does not decode`)
  }
  if (!issuerName.equals(Buffer.from(issuerCert.subjectName.toArrayBuffer()))) {
    throw new AttestationError('CRL_ISSUER', `${what} was not issued by ${nameOf(issuer)}`)
  }
  let ok = false
  try {
    ok = await crl.verify({ publicKey: issuerCert })
  } catch {
    ok = false
  }
  if (!ok) throw new AttestationError('CRL_SIGNATURE', `${what} signature does not verify under its issuer`)
  if (crl.thisUpdate > at || (crl.nextUpdate !== undefined && crl.nextUpdate < at)) {
    throw new AttestationError('COLLATERAL_EXPIRED', `${what} is not current at ${at.toISOString()} (${crl.thisUpdate.toISOString()} – ${crl.nextUpdate?.toISOString() ?? 'open'})`)
  }
  return { revokedSerials, issuer, thisUpdate: +crl.thisUpdate, nextUpdate: crl.nextUpdate === undefined ? Infinity : +crl.nextUpdate }
}

/** Refuses any certificate in `path` that a CRL of its own issuer lists. */
export function assertNotRevoked (path: X509Certificate[], crls: CheckedCrl[]): void {
  for (let i = 0; i < path.length - 1; i++) {
    const cert = path[i] as X509Certificate
    for (const crl of crls) {
      if (cert.checkIssued(crl.issuer) && crl.revokedSerials.has(serial(cert.serialNumber))) {
        throw new AttestationError('PCK_REVOKED', `certificate ${i} (${nameOf(cert)}, serial ${cert.serialNumber}) is revoked`)
      }
    }
  }
}
