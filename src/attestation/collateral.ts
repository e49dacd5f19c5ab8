/**
 * DCAP collateral in the @phala/dcap-qvl `QuoteCollateralV3` shape: PEM issuer chains, hex DER
 * CRLs, TCB Info and QE Identity as the exact signed JSON strings with hex r‖s signatures.
 * Validated and size-capped before anything parses it: collateral comes from peers.
 */
import { z } from 'zod'
import { AttestationError } from './errors.js'

export const MAX_COLLATERAL_BYTES = 256 * 1024

const pemChain = z.string().min(1).max(16 * 1024).includes('-----BEGIN CERTIFICATE-----')
const hexDer = z.string().min(2).max(128 * 1024).regex(/^([0-9a-fA-F]{2})+$/)
const signedJson = z.string().min(2).max(64 * 1024)
const hexSig = z.string().regex(/^[0-9a-fA-F]{128}$/, 'expected a 64-byte r‖s signature in hex')

export const collateralSchema = z.object({
  pck_crl_issuer_chain: pemChain,
  root_ca_crl: hexDer,
  pck_crl: hexDer,
  tcb_info_issuer_chain: pemChain,
  tcb_info: signedJson,
  tcb_info_signature: hexSig,
  qe_identity_issuer_chain: pemChain,
  qe_identity: signedJson,
  qe_identity_signature: hexSig
}).strip()

export type Collateral = z.output<typeof collateralSchema>

/** Parses collateral from JSON text or a decoded object; unknown keys are dropped (never trusted). */
export function parseCollateral (input: string | unknown): Collateral {
  let value = input
  if (typeof input === 'string') {
    if (input.length > MAX_COLLATERAL_BYTES) throw new AttestationError('COLLATERAL_MALFORMED', `collateral larger than ${MAX_COLLATERAL_BYTES} bytes`)
    try {
      value = JSON.parse(input)
    } catch {
      throw new AttestationError('COLLATERAL_MALFORMED', 'collateral is not JSON')
    }
  }
  const parsed = collateralSchema.safeParse(value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new AttestationError('COLLATERAL_MALFORMED', `collateral: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`.trim())
  }
  return parsed.data
}
