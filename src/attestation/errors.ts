import { CmeshError } from '../market/errors.js'

/**
 * Why a quote, its collateral or an attest exchange was refused. Stable codes. Malformed input
 * says where it sits (QUOTE_ / COLLATERAL_ / CERT_MALFORMED); a chain whose top is not the trust
 * anchor is ROOT_MISMATCH, one whose certificate signatures do not verify is *_CHAIN_SIGNATURE.
 * VERIFIER_FAILED is left for internal errors only.
 */
export type AttestationErrorCode =
  | 'QUOTE_TOO_LARGE'
  | 'QUOTE_MALFORMED'
  | 'QUOTE_UNSUPPORTED'
  | 'QUOTE_TRAILING_BYTES'
  | 'QE_VENDOR'
  | 'COLLATERAL_MALFORMED'
  | 'CERT_MALFORMED'
  | 'ROOT_NOT_INTEL'
  | 'ROOT_MISMATCH'
  | 'CRL_SIGNATURE'
  | 'CRL_ISSUER'
  | 'COLLATERAL_EXPIRED'
  | 'PCK_CHAIN'
  | 'PCK_CHAIN_SIGNATURE'
  | 'PCK_REVOKED'
  | 'SIGNING_CHAIN'
  | 'SIGNING_CHAIN_SIGNATURE'
  | 'COLLATERAL_SIGNATURE'
  | 'QUOTE_SIGNATURE'
  | 'QE_REPORT_SIGNATURE'
  | 'QE_REPORT_DATA'
  | 'QE_IDENTITY'
  | 'FMSPC'
  | 'PCEID'
  | 'TCB_NO_MATCH'
  | 'TCB_STATUS'
  | 'TDX_MODULE'
  | 'TD_ATTRIBUTES'
  | 'MEASUREMENT_MISMATCH'
  | 'REPORT_DATA_MISMATCH'
  | 'VERIFIER_FAILED'
  | 'QUOTE_PROVIDER'

export class AttestationError extends CmeshError<AttestationErrorCode> {}
