/**
 * Checks on the records of a live contract: a heartbeat or a termination must name the contract's
 * CCBA (uri and cid), be signed by the party allowed to sign it, and fall in a clock window around
 * `nowSecs`, which the caller passes in. Each record has already passed decodeRecord (signature,
 * schema); refusals are typed: ContractError for the reference and the signer, RecordError for the
 * clock, LifecycleError for the sequence and the reason.
 */
import type { Did } from './identity.js'
import type { CID } from './cbor.js'
import { checkClockWindow, type ClockWindow } from './record.js'
import { ContractError } from './contract-error.js'
import { RecordError } from './errors.js'
import { LifecycleError } from './lifecycle-error.js'
import { refersTo } from './strong-ref.js'
import type { StrongRef } from './address.js'
import type { SignedCcba } from './ccba.js'
import type { SignedCcb } from './ccb.js'
import type { SignedHeartbeat } from './heartbeat.js'
import type { SignedTermination } from './termination.js'

/** ±300 s: clocks of two honest nodes agree better than that; a record outside is stale or forged in time. */
export const LIFECYCLE_CLOCK_WINDOW: ClockWindow = { maxFutureSecs: 300, maxAgeSecs: 300 }

/** Who a live contract binds, and the record its lifecycle records must name. */
export interface ContractParties {
  ccba: { uri: string, cid: CID, createdAtUnixSecs: number }
  provider: Did
  requester: Did
}

/** The parties of the contract formed by this accept of this bid. */
export function contractParties (ccba: SignedCcba, ccb: SignedCcb): ContractParties {
  if (!refersTo(ccba.value.bid, ccb)) {
    throw new ContractError('CONTRACT_REF_MISMATCH', 'ccba.bid does not name the bid', { field: 'ccba.bid' })
  }
  return {
    ccba: { uri: ccba.uri, cid: ccba.cid, createdAtUnixSecs: ccba.value.createdAtUnixSecs },
    provider: ccb.value.provider,
    requester: ccba.value.requester
  }
}

function expectContract (ref: StrongRef, parties: ContractParties, what: string): void {
  if (!refersTo(ref, parties.ccba)) {
    throw new ContractError('CONTRACT_REF_MISMATCH', `${what}.contract names ${ref.uri}, not this contract's accept`, { field: `${what}.contract`, uri: ref.uri, expected: parties.ccba.uri })
  }
}

/**
 * A heartbeat the requester accepts: it names the contract, its provider signed it, its seq is
 * above `lastSeq` (the last one accepted; undefined before the first) and its time is within
 * ±300 s of `nowSecs`.
 */
export function checkHeartbeat (hb: SignedHeartbeat, parties: ContractParties, lastSeq: number | undefined, nowSecs: number): void {
  expectContract(hb.value.contract, parties, 'heartbeat')
  if (hb.author !== parties.provider) {
    throw new ContractError('CONTRACT_WRONG_AUTHOR', 'a heartbeat is signed by the contract\'s provider', { author: hb.author, expected: parties.provider })
  }
  if (lastSeq !== undefined && hb.value.seq <= lastSeq) {
    throw new LifecycleError('LIFECYCLE_SEQ_REPLAYED', `heartbeat seq ${hb.value.seq} is not above ${lastSeq}`, { seq: hb.value.seq, lastSeq })
  }
  checkClockWindow(hb, nowSecs, LIFECYCLE_CLOCK_WINDOW)
}

export interface TerminationCheckOptions {
  /**
   * True (the default) for a record that must be news: within ±300 s of now. False for a
   * provider's record that may be old (it is re-sent until delivered, or answers a request about a
   * contract that ended long ago): then only not more than 300 s in the future, and not dated
   * more than 300 s before the accept that began the contract.
   */
  fresh?: boolean
}

/**
 * A termination signed by `from`: it names the contract, its signer is that party, and a
 * requester's only asks (reason REQUESTER, no usage). Time as the options say.
 */
export function checkTermination (t: SignedTermination, parties: ContractParties, from: 'provider' | 'requester', nowSecs: number, options: TerminationCheckOptions = {}): void {
  expectContract(t.value.contract, parties, 'termination')
  const expected = from === 'provider' ? parties.provider : parties.requester
  if (t.author !== expected) {
    throw new ContractError('CONTRACT_WRONG_AUTHOR', `this termination must be signed by the contract's ${from}`, { author: t.author, expected })
  }
  if (from === 'requester' && (t.value.reason !== 'REQUESTER' || t.value.usage !== undefined)) {
    throw new LifecycleError('LIFECYCLE_REASON_INVALID', 'a requester asks for the end with reason REQUESTER and no usage', { reason: t.value.reason })
  }
  if (options.fresh ?? true) {
    checkClockWindow(t, nowSecs, LIFECYCLE_CLOCK_WINDOW)
    return
  }
  checkClockWindow(t, nowSecs, { maxFutureSecs: LIFECYCLE_CLOCK_WINDOW.maxFutureSecs, maxAgeSecs: Number.POSITIVE_INFINITY })
  const floor = parties.ccba.createdAtUnixSecs - LIFECYCLE_CLOCK_WINDOW.maxAgeSecs
  if (t.value.atUnixSecs < floor) {
    throw new RecordError('RECORD_STALE', `termination is dated ${parties.ccba.createdAtUnixSecs - t.value.atUnixSecs}s before its contract was accepted`, { time: t.value.atUnixSecs, accepted: parties.ccba.createdAtUnixSecs })
  }
}
