/**
 * Why a heartbeat, a termination or a lifecycle exchange was refused or failed. Stable: the
 * contract protocol answers `refused` with these codes and the requester lists them. A record that
 * names another contract or is signed by the wrong party is a ContractError
 * (`CONTRACT_REF_MISMATCH`, `CONTRACT_WRONG_AUTHOR`); one outside the clock window a RecordError
 * (`RECORD_FROM_FUTURE`, `RECORD_STALE`).
 */
import { CmeshError } from './errors.js'

export const LIFECYCLE_ERROR_CODES = [
  /** A heartbeat's seq is not above the last one accepted for its contract (a replay, or out of order). */
  'LIFECYCLE_SEQ_REPLAYED',
  /** A termination's reason or usage is not one its signer may give (a requester asks with reason REQUESTER and no usage). */
  'LIFECYCLE_REASON_INVALID',
  /** This node holds no such contract with the peer that sent the record (or asked). */
  'LIFECYCLE_UNKNOWN_CONTRACT',
  /** The contract has ended here: no more heartbeats. */
  'LIFECYCLE_ENDED',
  /** The contract is not live (still being provisioned, failed): there is nothing to end. */
  'LIFECYCLE_NOT_LIVE',
  /** The provider could not end the machine; the contract stays live and may be asked again. */
  'LIFECYCLE_TERMINATE_FAILED',
  /** Client side: the peer answered `refused` (its code is in `meta.code`). */
  'LIFECYCLE_REFUSED',
  /** Client side: no answer within the exchange's time budget. */
  'LIFECYCLE_TIMEOUT',
  /** Client side: a malformed or oversize message, or a broken stream. */
  'LIFECYCLE_PROTOCOL',
  /** Client side: no stream could be opened to the peer. */
  'LIFECYCLE_UNREACHABLE'
] as const

export type LifecycleErrorCode = typeof LIFECYCLE_ERROR_CODES[number]

export class LifecycleError extends CmeshError<LifecycleErrorCode, { code?: string } & Record<string, unknown>> {}
