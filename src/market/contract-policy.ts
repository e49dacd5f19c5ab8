/**
 * The requester's choice among bids: trust graph first, then verified level, price, measurements
 * and expiry, then a deterministic ranking. Pure: records and time are passed in.
 *
 * Trust: vouch records are edges truster → subject. The nodes I reach through vouches within
 * `depth` hops are my vouched set. A denouncement by me, or by anyone in my vouched set, refuses
 * its subject whatever the mode or price (DENOUNCED), and a denounced node's vouches extend no
 * trust. Membership per mode: 'open' = anyone; 'only-me' = those I vouch directly; 'vouched' = my
 * vouched set; 'mutuals' = those I vouch who vouch me. I am always a member of my own set.
 */
import { planOf, totalCost } from './payment.js'
import type { Did } from './identity.js'
import { ATTESTATION_LEVELS, levelRank, meets, type AttestationLevel } from './ladder.js'
import { bytesEqual } from './bytes.js'
import type { SignedCcb } from './ccb.js'
import type { SignedCcrfp } from './ccrfp.js'
import { DENOUNCE_NSID, VOUCH_NSID, type SignedTrust } from './trust.js'
import { checkCcbAnswers } from './contract-checks.js'
import { ContractError } from './contract-error.js'
import { weiToString } from './schema.js'

export const POLICY_MODES = ['open', 'only-me', 'vouched', 'mutuals'] as const
export type PolicyMode = typeof POLICY_MODES[number]

export const DEFAULT_TRUST_DEPTH = 2
export const MAX_TRUST_DEPTH = 16

/** Why a bid was not chosen, in the order they are checked. */
export const REFUSAL_CODES = [
  'DENOUNCED',
  'NOT_TRUSTED',
  /** Given the RFP: the bid does not answer it (wrong strongRef, terms). */
  'CONTRACT_INVALID',
  'BELOW_FLOOR',
  'PRICE_OVER_CAP',
  'MEASUREMENTS_MISMATCH',
  'EXPIRED'
] as const
export type RefusalCode = typeof REFUSAL_CODES[number]

export interface BidCandidate {
  ccb: SignedCcb
  /** The level the requester verified for this provider (never the claimed one). */
  verifiedLevel: AttestationLevel
  /** The evidence verified under a test PKI. */
  simulated: boolean
  /** The measurements digest of the provider's card (attestationDigest), when known. */
  measurements?: Uint8Array
  /** Free capacity hint for tie-breaks (higher first); 0 when unknown. */
  freeCapacity?: number
}

export interface RequesterPolicy {
  mode: PolicyMode
  /** Hops through vouches (1 = only those I vouch); default 2. */
  depth?: number
  floor: AttestationLevel
  /** Defaults to the RFP's cap when `rfp` is given. */
  priceCapWei?: bigint
  /** Defaults to the RFP's expected measurements when `rfp` is given. */
  expectedMeasurements?: Uint8Array
  /** Count simulated evidence at its verified level; otherwise it is worth Software. Default false. */
  allowSimulated?: boolean
}

export interface ChooseInput {
  me: Did
  bids: readonly BidCandidate[]
  trust: readonly SignedTrust[]
  policy: RequesterPolicy
  now: number
  /** When given, each bid must answer this RFP (strongRef and terms). */
  rfp?: SignedCcrfp
}

export interface Refusal {
  provider: Did
  code: RefusalCode
  detail: string
  /** The refused CCB's at:// address. */
  uri: string
}

export interface Choice {
  chosen?: BidCandidate
  /** Acceptable bids, best first. */
  ranked: BidCandidate[]
  refused: Refusal[]
}

export interface TrustView {
  /** Reached from me through vouches within depth (me excluded), not passing through the denounced. */
  vouched: Set<Did>
  /** Those I vouch directly. */
  direct: Set<Did>
  /** Those I vouch who vouch me. */
  mutuals: Set<Did>
  /** Denounced by me or by anyone I reach within depth. */
  denounced: Set<Did>
}

function reach (edges: Map<Did, Set<Did>>, me: Did, depth: number, blocked: Set<Did>): Set<Did> {
  const seen = new Set<Did>([me])
  let frontier: Did[] = [me]
  for (let hop = 0; hop < depth && frontier.length > 0; hop++) {
    const next: Did[] = []
    for (const node of frontier) {
      for (const to of edges.get(node) ?? []) {
        if (seen.has(to) || blocked.has(to)) continue
        seen.add(to)
        next.push(to)
      }
    }
    frontier = next
  }
  seen.delete(me)
  return seen
}

function checkDepth (depth: number): number {
  if (!Number.isInteger(depth) || depth < 1 || depth > MAX_TRUST_DEPTH) {
    throw new ContractError('CONTRACT_BAD_ARGUMENT', `policy: depth is an integer from 1 to ${MAX_TRUST_DEPTH}`, { depth })
  }
  return depth
}

/** The trust graph as seen from `me`. */
export function trustView (me: Did, trust: readonly SignedTrust[], depth = DEFAULT_TRUST_DEPTH): TrustView {
  checkDepth(depth)
  const edges = new Map<Did, Set<Did>>()
  const denouncements: Array<[Did, Did]> = []
  for (const record of trust) {
    // Compare the type by NSID: a vouch and a denouncement have the same value shape.
    if (record.type.nsid === VOUCH_NSID) {
      let out = edges.get(record.value.truster)
      if (out === undefined) edges.set(record.value.truster, out = new Set())
      out.add(record.value.subject)
    } else if (record.type.nsid === DENOUNCE_NSID) {
      denouncements.push([record.value.truster, record.value.subject])
    }
  }
  // Who may denounce: me and everyone my vouches reach (a denounced voucher still speaks: denounce wins).
  const denouncers = reach(edges, me, depth, new Set())
  denouncers.add(me)
  const denounced = new Set<Did>()
  for (const [truster, subject] of denouncements) if (denouncers.has(truster)) denounced.add(subject)
  const direct = new Set(edges.get(me) ?? [])
  const mutuals = new Set([...direct].filter((d) => edges.get(d)?.has(me) === true))
  return { vouched: reach(edges, me, depth, denounced), direct, mutuals, denounced }
}

/** Whether `provider` belongs to `me`'s set under `mode` (denouncement is checked separately). */
export function isMember (view: TrustView, me: Did, mode: PolicyMode, provider: Did): boolean {
  if (provider === me) return true
  switch (mode) {
    case 'open': return true
    case 'only-me': return view.direct.has(provider)
    case 'vouched': return view.vouched.has(provider)
    case 'mutuals': return view.mutuals.has(provider)
  }
}

function effectiveLevel (bid: BidCandidate, policy: RequesterPolicy): AttestationLevel {
  return bid.simulated && policy.allowSimulated !== true ? 'Software' : bid.verifiedLevel
}

function compareBids (policy: RequesterPolicy) {
  return (a: BidCandidate, b: BidCandidate): number => {
    const ca = totalCost(planOf(a.ccb.value))
    const cb = totalCost(planOf(b.ccb.value))
    if (ca !== cb) return ca < cb ? -1 : 1
    const la = levelRank(effectiveLevel(a, policy))
    const lb = levelRank(effectiveLevel(b, policy))
    if (la !== lb) return lb - la
    const fa = a.freeCapacity ?? 0
    const fb = b.freeCapacity ?? 0
    if (fa !== fb) return fb - fa
    const pa = a.ccb.value.provider
    const pb = b.ccb.value.provider
    if (pa !== pb) return pa < pb ? -1 : 1
    const ka = a.ccb.cid.toString()
    const kb = b.ccb.cid.toString()
    return ka < kb ? -1 : ka > kb ? 1 : 0
  }
}

export function choose (input: ChooseInput): Choice {
  const { me, bids, trust, policy, now, rfp } = input
  if (!(POLICY_MODES as readonly string[]).includes(policy.mode)) {
    throw new ContractError('CONTRACT_BAD_ARGUMENT', 'policy: unknown mode', { mode: String(policy.mode).slice(0, 32) })
  }
  if (!(ATTESTATION_LEVELS as readonly string[]).includes(policy.floor)) {
    throw new ContractError('CONTRACT_BAD_ARGUMENT', 'policy: unknown floor', { floor: String(policy.floor).slice(0, 32) })
  }
  const view = trustView(me, trust, policy.depth ?? DEFAULT_TRUST_DEPTH)
  const cap = policy.priceCapWei ?? rfp?.value.cmesh.priceCapWei
  const expected = policy.expectedMeasurements ?? rfp?.value.cmesh.expectedMeasurements

  const ranked: BidCandidate[] = []
  const refused: Refusal[] = []
  for (const bid of bids) {
    const provider = bid.ccb.value.provider
    const refuse = (code: RefusalCode, detail: string): void => { refused.push({ provider, code, detail, uri: bid.ccb.uri }) }
    if (view.denounced.has(provider)) { refuse('DENOUNCED', 'denounced by me or by someone I trust'); continue }
    if (!isMember(view, me, policy.mode, provider)) { refuse('NOT_TRUSTED', `not in my ${policy.mode} set`); continue }
    if (rfp !== undefined) {
      try {
        checkCcbAnswers(bid.ccb, rfp)
      } catch (err) {
        if (!(err instanceof ContractError)) throw err
        refuse('CONTRACT_INVALID', `${err.code}: ${err.message}`)
        continue
      }
    }
    const level = effectiveLevel(bid, policy)
    if (!meets(level, policy.floor)) {
      refuse('BELOW_FLOOR', `verified ${level}${level !== bid.verifiedLevel ? ' (simulated evidence)' : ''} is below ${policy.floor}`)
      continue
    }
    if (cap !== undefined && totalCost(planOf(bid.ccb.value)) > cap) {
      refuse('PRICE_OVER_CAP', `${weiToString(totalCost(planOf(bid.ccb.value)))} wei in all is over the cap ${weiToString(cap)} wei`)
      continue
    }
    if (expected !== undefined && (bid.measurements === undefined || !bytesEqual(bid.measurements, expected))) {
      refuse('MEASUREMENTS_MISMATCH', bid.measurements === undefined ? 'provider measurements unknown' : 'provider measurements differ from the expected ones')
      continue
    }
    if (now >= bid.ccb.value.cmesh.expiresAtUnixSecs) { refuse('EXPIRED', `expired at ${bid.ccb.value.cmesh.expiresAtUnixSecs}`); continue }
    ranked.push(bid)
  }
  ranked.sort(compareBids(policy))
  return { ...(ranked[0] !== undefined ? { chosen: ranked[0] } : {}), ranked, refused }
}
