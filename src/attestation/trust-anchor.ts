/**
 * The root a quote must chain to. Production pins the Intel SGX Root CA by the SHA-256 of its DER
 * and refuses any other; anything verified under another root is labelled simulated wherever it is
 * shown. The Intel root's DER is the copy @phala/dcap-qvl ships, checked against the pin on load.
 */
import { createHash, X509Certificate } from 'node:crypto'
import dcap from '@phala/dcap-qvl'
import { AttestationError } from './errors.js'
import { splitPemChain } from './pki.js'

export const INTEL_SGX_ROOT_CA_SHA256 = '44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3'

export interface TrustAnchor {
  der: Uint8Array
  sha256: string
  /** True for any root but Intel's: results are simulated, never production evidence. */
  simulated: boolean
  subject: string
}

export function trustAnchorFromDer (der: Uint8Array, { production = false } = {}): TrustAnchor {
  const sha256 = createHash('sha256').update(der).digest('hex')
  if (production && sha256 !== INTEL_SGX_ROOT_CA_SHA256) {
    throw new AttestationError('ROOT_NOT_INTEL', `production mode accepts only the Intel SGX Root CA (sha256 ${INTEL_SGX_ROOT_CA_SHA256}); got ${sha256}`)
  }
  let subject: string
  try {
    subject = new X509Certificate(der).subject.replace(/\n/g, ', ')
  } catch {
    throw new AttestationError('COLLATERAL_MALFORMED', 'trust root is not an X.509 certificate')
  }
  return { der: Uint8Array.from(der), sha256, simulated: sha256 !== INTEL_SGX_ROOT_CA_SHA256, subject }
}

export function trustAnchorFromPem (pem: string, options: { production?: boolean } = {}): TrustAnchor {
  const der = splitPemChain(pem)[0]
  if (der === undefined) throw new AttestationError('COLLATERAL_MALFORMED', 'no PEM certificate in the trust root')
  return trustAnchorFromDer(der, options)
}

export function intelTrustAnchor (): TrustAnchor {
  const anchor = trustAnchorFromDer(Buffer.from(dcap.constants.TRUSTED_ROOT_CA_DER))
  if (anchor.simulated) throw new AttestationError('ROOT_NOT_INTEL', 'the bundled Intel root does not match its pin')
  return anchor
}
