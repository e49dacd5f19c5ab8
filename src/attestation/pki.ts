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

function parseCert (der: Uint8Array, code: AttestationErrorCode): X509Certificate {
  try {
    return new X509Certificate(der)
  } catch {
    throw new AttestationError(code, 'certificate is not valid DER X.509')
  }
}

const spki = (c: X509Certificate) => c.publicKey.export({ type: 'spki', format: 'der' })
const sameCa = (a: X509Certificate, b: X509Certificate) => a.subject === b.subject && spki(a).equals(spki(b))

const serial = (hex: string) => hex.toLowerCase().replace(/^(00)+(?=.)/, '')

/**
 * Verifies `pem` (leaf first, the shipped root copy optional) up to `anchor`. Returns the path
 * [leaf, …, root]. `leafIsCa` is true for chains whose first certificate issues CRLs.
 */
export function verifyChain (pem: string, anchor: TrustAnchor, at: Date, code: AttestationErrorCode, { leafIsCa = false, length }: { leafIsCa?: boolean, length?: number } = {}): X509Certificate[] {
  const root = parseCert(anchor.der, code)
  let certs = splitPemChain(pem).map((der) => parseCert(der, code))
  if (certs.length === 0) throw new AttestationError(code, 'empty certificate chain')
  const last = certs[certs.length - 1] as X509Certificate
  if (last.ca && last.issuer === last.subject) {
    // A shipped root copy must be the anchor itself (same name, same key), not another self-signed CA.
    if (!sameCa(last, root)) throw new AttestationError('ROOT_MISMATCH', 'the chain ends at a root other than the trusted one', { root: last.subject.replace(/\n/g, ', ') })
    certs = certs.slice(0, -1)
  }
  const path = [...certs, root]
  if (length !== undefined && path.length !== length) throw new AttestationError(code, `expected a chain of ${length} certificates to the root, got ${path.length}`)
  for (let i = 0; i < path.length; i++) {
    const cert = path[i] as X509Certificate
    const issuer = path[Math.min(i + 1, path.length - 1)] as X509Certificate
    if (!cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) {
      throw new AttestationError(i === path.length - 2 ? 'ROOT_MISMATCH' : code, `certificate ${i} (${cert.subject.replace(/\n/g, ', ')}) is not signed by its issuer`)
    }
    if (new Date(cert.validFrom) > at || new Date(cert.validTo) < at) throw new AttestationError(code, `certificate ${i} is not valid at ${at.toISOString()}`)
    if (i > 0 && !cert.ca) throw new AttestationError(code, `certificate ${i} issues certificates but is not a CA`)
    if (i === 0 && cert.ca !== leafIsCa) throw new AttestationError(code, leafIsCa ? 'CRL issuer is not a CA' : 'leaf certificate is a CA')
  }
  return path
}

export interface CheckedCrl {
  revokedSerials: Set<string>
  issuer: X509Certificate
}

/** Verifies a DER CRL against the certificate that must have issued it. */
export async function verifyCrl (hexDer: string, issuer: X509Certificate, at: Date, what: string): Promise<CheckedCrl> {
  let crl: x509.X509Crl
  try {
    crl = new x509.X509Crl(Buffer.from(hexDer, 'hex'))
  } catch {
    throw new AttestationError('COLLATERAL_MALFORMED', `${what} is not a DER CRL`)
  }
  const issuerCert = new x509.X509Certificate(issuer.raw)
  if (!Buffer.from(crl.issuerName.toArrayBuffer()).equals(Buffer.from(issuerCert.subjectName.toArrayBuffer()))) {
    throw new AttestationError('CRL_ISSUER', `${what} was not issued by ${issuer.subject.replace(/\n/g, ', ')}`)
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
  return { revokedSerials: new Set(crl.entries.map((e) => serial(e.serialNumber))), issuer }
}

/** Refuses any certificate in `path` that a CRL of its own issuer lists. */
export function assertNotRevoked (path: X509Certificate[], crls: CheckedCrl[]): void {
  for (let i = 0; i < path.length - 1; i++) {
    const cert = path[i] as X509Certificate
    for (const crl of crls) {
      if (cert.checkIssued(crl.issuer) && crl.revokedSerials.has(serial(cert.serialNumber))) {
        throw new AttestationError('PCK_REVOKED', `certificate ${i} (${cert.subject.replace(/\n/g, ', ')}, serial ${cert.serialNumber}) is revoked`)
      }
    }
  }
}
