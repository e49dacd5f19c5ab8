/**
 * CCBAP: the requester's record of a settled payment for an accepted bid.
 *
 * Lexicon fields (`com.publicdomainrelay.temp.ccbap`): `embed` (strongRef to the CCB paid for) and
 * `txid` (the settlement transaction). Additive, named: `requester` (the signer),
 * `createdAtUnixSecs`, and extension `cmesh` naming the accept it paid (the CCBA as first sent,
 * before its `payment` pointed here), the network, the payer address and the amount.
 *
 * A provider never takes a CCBAP on its word: the txid must be the settlement its own facilitator
 * made for that accept, and on chain a transfer of exactly the amount from the payer to its pay-to.
 */
import type { Did } from './identity.js'
import type { StrongRef } from './address.js'
import type { RecordType, SignedRecord } from './record.js'
import { did, unixSecs, weiString, z } from './schema.js'
import { CCB_NSID } from './ccb.js'
import { CCBA_NSID, CCBAP_NSID } from './ccba.js'
import { strongRef, strongRefToWire } from './strong-ref.js'
import { evmAddress, evmNetwork, txHash } from './payment.js'

export { CCBAP_NSID }
export const MAX_CCBAP_BYTES = 2 * 1024

export interface CcbapPayment {
  /** The CCBA (without `payment`) whose x402 resource was paid. */
  ccba: StrongRef
  network: string
  payer: string
  /** Atomic units of the bid's asset, decimal. */
  amount: string
}

export interface Ccbap {
  embed: StrongRef
  txid: string
  requester: Did
  createdAtUnixSecs: number
  cmesh: CcbapPayment
}

const ccbapSchema = z.strictObject({
  embed: strongRef(CCB_NSID),
  txid: txHash,
  requester: did,
  createdAtUnixSecs: unixSecs,
  cmesh: z.strictObject({
    ccba: strongRef(CCBA_NSID),
    network: evmNetwork,
    payer: evmAddress,
    amount: weiString
  })
}) satisfies z.ZodType<Ccbap, any>

export const CcbapType: RecordType<Ccbap> = {
  nsid: CCBAP_NSID,
  maxBytes: MAX_CCBAP_BYTES,
  schema: ccbapSchema,
  toFields: (p) => ({
    embed: strongRefToWire(p.embed),
    txid: p.txid,
    requester: p.requester,
    createdAtUnixSecs: p.createdAtUnixSecs,
    cmesh: { ccba: strongRefToWire(p.cmesh.ccba), network: p.cmesh.network, payer: p.cmesh.payer, amount: p.cmesh.amount }
  }),
  author: (p) => p.requester,
  time: (p) => p.createdAtUnixSecs
}

export type SignedCcbap = SignedRecord<Ccbap>
