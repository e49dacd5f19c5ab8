/**
 * Why a chain of contract records (CCRFP → CCB → CCBA → CCR) does not hold together. Each record
 * was already decoded (signature, schema); these codes are about how records relate. Stable:
 * the bid protocol maps them to refusals and the requester lists them.
 */
import { CmeshError } from './errors.js'

export const CONTRACT_ERROR_CODES = [
  /** A strongRef does not name the record it must (uri or cid differ). */
  'CONTRACT_REF_MISMATCH',
  /** A record is signed by someone other than the party the chain requires. */
  'CONTRACT_WRONG_AUTHOR',
  /** The bid has expired at the time given. */
  'CONTRACT_EXPIRED',
  /** The bid's terms do not answer the RFP (resources, duration, region, level). */
  'CONTRACT_TERMS_MISMATCH',
  /** A caller passed something the market functions cannot work with (bad resources, bad ledger JSON, bad policy). */
  'CONTRACT_BAD_ARGUMENT',
  /** A paid accept does not match its payment: the CCBA changed beyond `payment`, or the CCBAP names another bid, accept or amount. */
  'CONTRACT_PAYMENT_MISMATCH'
] as const

export type ContractErrorCode = typeof CONTRACT_ERROR_CODES[number]

export class ContractError extends CmeshError<ContractErrorCode> {}
