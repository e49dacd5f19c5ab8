/**
 * Cross-checks over a chain of signed contract records: CCRFP ← CCB ← CCBA ← CCR. Each record has
 * already passed decodeRecord (signature, schema, its own semantics); these check how they point
 * at each other, who signed them and whether the bid's terms answer the RFP. Every refusal is a
 * ContractError with a stable code. A strongRef names a record only if its uri is that record's
 * own at:// address AND its cid that record's CID.
 */
import type { StrongRef } from './address.js'
import type { CID } from './cbor.js'
import { ContractError } from './contract-error.js'
import { meets } from './ladder.js'
import { requestedResources, type Ccrfp, type SignedCcrfp } from './ccrfp.js'
import type { Ccb, SignedCcb } from './ccb.js'
import { CcbaType, type SignedCcba } from './ccba.js'
import type { SignedCcbap } from './ccbap.js'
import { encodeCanonical } from './cbor.js'
import { bytesEqual } from './bytes.js'
import { isAssetId, parseAssetId } from './payment.js'
import type { SignedCcr } from './ccr.js'
import type { SignedDecline } from './decline.js'
import { refersTo } from './strong-ref.js'

function expectRef (ref: StrongRef, record: { uri: string, cid: CID }, what: string): void {
  if (ref.uri !== record.uri) {
    throw new ContractError('CONTRACT_REF_MISMATCH', `${what}: uri names ${ref.uri}, not ${record.uri}`, { field: what, uri: ref.uri, expected: record.uri })
  }
  if (!refersTo(ref, record)) {
    throw new ContractError('CONTRACT_REF_MISMATCH', `${what}: cid ${ref.cid.toString()} is not the record's ${record.cid.toString()}`, { field: what, cid: ref.cid.toString(), expected: record.cid.toString() })
  }
}

function terms (message: string, meta: Record<string, unknown> = {}): never {
  throw new ContractError('CONTRACT_TERMS_MISMATCH', `ccb: ${message}`, meta)
}

/** The bid's concrete terms answer the RFP: enough resources, the same duration, the asked region, a claimed level at the floor. */
export function checkCcbTerms (ccb: Ccb, rfp: Ccrfp): void {
  const want = requestedResources(rfp)
  const got = ccb.cmesh
  if (got.cpus < want.cpus) terms(`offers ${got.cpus} cpus, ${want.cpus} asked`)
  if (got.memMiB < want.memMiB) terms(`offers ${got.memMiB} MiB, ${want.memMiB} asked`)
  if (got.diskGiB < want.diskGiB) terms(`offers ${got.diskGiB} GiB disk, ${want.diskGiB} asked`)
  if (got.durationSecs !== rfp.cmesh.durationSecs) terms(`offers ${got.durationSecs} s, ${rfp.cmesh.durationSecs} s asked`)
  const region = rfp.location?.region
  if (region !== undefined && got.region !== region) terms(`offers region ${got.region}, ${region} asked`)
  if (!meets(got.level, rfp.cmesh.floor)) terms(`claims ${got.level}, below the floor ${rfp.cmesh.floor}`)
}

/** The CCB answers this very RFP (uri and cid) with matching terms; time is not considered. */
export function checkCcbAnswers (ccb: SignedCcb, rfp: SignedCcrfp): void {
  expectRef(ccb.value.embed, rfp, 'ccb.embed')
  checkCcbTerms(ccb.value, rfp.value)
}

/** checkCcbAnswers, and the bid has not expired at `now`. */
export function checkCcb (ccb: SignedCcb, rfp: SignedCcrfp, now: number): void {
  checkCcbAnswers(ccb, rfp)
  if (now >= ccb.value.cmesh.expiresAtUnixSecs) {
    throw new ContractError('CONTRACT_EXPIRED', `ccb expired ${now - ccb.value.cmesh.expiresAtUnixSecs} s ago`, { expiresAtUnixSecs: ccb.value.cmesh.expiresAtUnixSecs, now })
  }
}

/** The accept names this RFP and a bid on it, and is signed by the RFP's requester. Time is not considered. */
export function checkCcbaChain (ccba: SignedCcba, ccb: SignedCcb, rfp: SignedCcrfp): void {
  expectRef(ccba.value.embed, rfp, 'ccba.embed')
  expectRef(ccba.value.bid, ccb, 'ccba.bid')
  checkCcbAnswers(ccb, rfp)
  if (ccba.author !== rfp.value.requester) {
    throw new ContractError('CONTRACT_WRONG_AUTHOR', 'ccba is not signed by the RFP\'s requester', { author: ccba.author, expected: rfp.value.requester })
  }
}

/** What a provider checks on receiving a CCBA: the chain, and its bid still open at `now`. */
export function checkCcba (ccba: SignedCcba, ccb: SignedCcb, rfp: SignedCcrfp, now: number): void {
  checkCcbaChain(ccba, ccb, rfp)
  checkCcb(ccb, rfp, now)
}

/**
 * What a requester checks on receiving a CCR: it names all three records and is signed by the
 * provider that bid. No expiry: provisioning may finish after the bid's expiry.
 */
export function checkCcr (ccr: SignedCcr, ccba: SignedCcba, ccb: SignedCcb, rfp: SignedCcrfp): void {
  expectRef(ccr.value.rfp, rfp, 'ccr.rfp')
  expectRef(ccr.value.bid, ccb, 'ccr.bid')
  expectRef(ccr.value.ccba, ccba, 'ccr.ccba')
  checkCcbaChain(ccba, ccb, rfp)
  if (ccr.author !== ccb.value.provider) {
    throw new ContractError('CONTRACT_WRONG_AUTHOR', 'ccr is not signed by the provider that bid', { author: ccr.author, expected: ccb.value.provider })
  }
}

/** A decline names this RFP. */
export function checkDecline (decline: SignedDecline, rfp: SignedCcrfp): void {
  expectRef(decline.value.rfp, rfp, 'decline.rfp')
}

function paymentMismatch (message: string, meta: Record<string, unknown> = {}): never {
  throw new ContractError('CONTRACT_PAYMENT_MISMATCH', message, meta)
}

/** Whether the bid is settled in a token (x402) rather than unsettled `wei`. */
export function isPaidBid (ccb: SignedCcb): boolean {
  return isAssetId(ccb.value.bid.currency)
}

/**
 * A paid accept: `paid` is the first accept `unpaid` (the x402 resource that was paid) with only
 * `payment` added — the same at:// address, as an atproto record update — and `payment` names
 * `ccbap`, the requester's record of paying exactly the bid's cost for `unpaid` on the bid's
 * network. Whether the txid is real is for the chain to say, not this function.
 */
export function checkPaidAccept (paid: SignedCcba, unpaid: SignedCcba, ccbap: SignedCcbap, ccb: SignedCcb): void {
  if (unpaid.value.payment !== undefined) paymentMismatch('the accept that was paid for already names a payment')
  if (paid.value.payment === undefined) paymentMismatch('the paid accept names no payment')
  expectRef(paid.value.payment, ccbap, 'ccba.payment')
  if (paid.uri !== unpaid.uri) paymentMismatch(`the paid accept is ${paid.uri}, not an update of ${unpaid.uri}`)
  const { payment: _, ...rest } = paid.value
  if (!bytesEqual(encodeCanonical(CcbaType.toFields(rest)), encodeCanonical(CcbaType.toFields(unpaid.value)))) {
    paymentMismatch('the paid accept differs from the accept that was paid for in more than its payment')
  }
  expectRef(ccbap.value.embed, ccb, 'ccbap.embed')
  expectRef(ccbap.value.cmesh.ccba, unpaid, 'ccbap.cmesh.ccba')
  if (ccbap.author !== unpaid.author) throw new ContractError('CONTRACT_WRONG_AUTHOR', 'ccbap is not signed by the accept\'s requester', { author: ccbap.author, expected: unpaid.author })
  const asset = parseAssetId(ccb.value.bid.currency)
  if (asset === undefined) paymentMismatch('the bid is unsettled (wei): there is nothing to pay')
  if (ccbap.value.cmesh.network !== asset.network) paymentMismatch(`paid on ${ccbap.value.cmesh.network}, the bid settles on ${asset.network}`)
  if (ccbap.value.cmesh.amount !== ccb.value.bid.cost.toString()) paymentMismatch(`paid ${ccbap.value.cmesh.amount}, the bid costs ${ccb.value.bid.cost.toString()}`)
}
