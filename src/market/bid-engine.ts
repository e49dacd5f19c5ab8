/**
 * The provider's decision on one CCRFP: a priced offer or a reasoned decline. Pure: it reads the
 * card, the RFP and the capacity ledger, and changes nothing; the caller reserves
 * `offer.reservationId` on the ledger and signs the CCB (or the Decline).
 *
 * Checks run in a fixed order, so one RFP always gets the same reason (DECLINE_CODES): RFP_CLOSED,
 * SCHEME_UNSUPPORTED, FLOOR_NOT_MET, TDX_UNAVAILABLE, MEASUREMENTS_MISMATCH, REGION_UNSERVED,
 * NO_CAPACITY, PRICE_BELOW_RATE, POLICY_REFUSED.
 */
import type { CID } from './cbor.js'
import type { Did } from './identity.js'
import type { AttestationLevel } from './ladder.js'
import { meets } from './ladder.js'
import { bytesEqual } from './bytes.js'
import type { BackendCapability, ProviderCard, Rate } from './provider-card.js'
import { bidDeadline, requestedResources, type Ccrfp } from './ccrfp.js'
import type { DeclineCode } from './decline.js'
import { fits, type CapacityLedger, type Resources } from './capacity.js'
import { weiToString } from './schema.js'
import { MAX_CCB_COST } from './ccb.js'
import { ContractError } from './contract-error.js'

/** A bid outlives the RFP's bid window by this much: the requester chooses after the window closes. */
export const BID_GRACE_SECS = 60

export interface BidPolicy {
  /** Requesters this provider will not serve. */
  refuse?: Did[]
  /** Added to the rate-table cost; the requester's cap must cover cost + margin. */
  minMarginWei?: bigint
  /** Longest contract this provider takes on. */
  maxDurationSecs?: number
}

export interface BidInput {
  /** The provider's own card (value). */
  card: ProviderCard
  /** The RFP and its strongRef (a SignedCcrfp fits). */
  rfp: { value: Ccrfp, uri: string, cid: CID }
  capacity: Pick<CapacityLedger, 'free' | 'held'>
  /** The level this provider can prove (not merely claims). */
  ownLevel: AttestationLevel
  /** This provider's measurements digest (its card's attestationDigest). */
  ownMeasurements: Uint8Array
  policy?: BidPolicy
  now: number
}

export interface BidOffer {
  backend: string
  region: string
  costWei: bigint
  expiresAtUnixSecs: number
  cpus: number
  memMiB: number
  diskGiB: number
  durationSecs: number
  /** The ledger id to reserve under (`reserve(reservationId, backend, offer, expiresAtUnixSecs)`). */
  reservationId: string
}

export type BidDecision =
  | { kind: 'bid', offer: BidOffer }
  | { kind: 'decline', code: DeclineCode, detail: string }

/** One hold per RFP per provider: re-deciding the same RFP finds its own hold, not a rival. */
export function reservationIdFor (rfp: { cid: CID }): string {
  return `rfp:${rfp.cid.toString()}`
}

const HOUR_SECS = 3600n
const MIB_PER_GIB = 1024n

/**
 * ceil((cpus·cpuHourWei + memGiB·memoryGiBHourWei + diskGiB·diskGiBHourWei) · durationSecs / 3600),
 * with memGiB = memMiB / 1024 kept exact by scaling everything by 1024 before the one division.
 */
export function contractCostWei (rate: Pick<Rate, 'cpuHourWei' | 'memoryGiBHourWei' | 'diskGiBHourWei'>, resources: Resources, durationSecs: number): bigint {
  const perHourScaled = BigInt(resources.cpus) * rate.cpuHourWei * MIB_PER_GIB +
    BigInt(resources.memMiB) * rate.memoryGiBHourWei +
    BigInt(resources.diskGiB) * rate.diskGiBHourWei * MIB_PER_GIB
  const numerator = perHourScaled * BigInt(durationSecs)
  const denominator = HOUR_SECS * MIB_PER_GIB
  return (numerator + denominator - 1n) / denominator
}

/** The rate for a backend in a region: the region's own rate if the table has one, else the backend's default. */
export function rateFor (rates: Rate[], backend: string, region: string): Rate | undefined {
  return rates.find((r) => r.backend === backend && r.region === region) ?? rates.find((r) => r.backend === backend && r.region === undefined)
}

interface Priced {
  backend: BackendCapability
  region: string
  cost: bigint
  free: Resources
}

function decline (code: DeclineCode, detail: string): BidDecision {
  return { kind: 'decline', code, detail: detail.slice(0, 256) }
}

function byPrice (a: Priced, b: Priced): number {
  if (a.cost !== b.cost) return a.cost < b.cost ? -1 : 1
  // Ties: most free capacity first (DESIGN.md §7), then names, so the choice is deterministic.
  if (a.free.cpus !== b.free.cpus) return b.free.cpus - a.free.cpus
  if (a.free.memMiB !== b.free.memMiB) return b.free.memMiB - a.free.memMiB
  if (a.backend.name !== b.backend.name) return a.backend.name < b.backend.name ? -1 : 1
  return a.region < b.region ? -1 : a.region > b.region ? 1 : 0
}

export function decideBid (input: BidInput): BidDecision {
  const { card, rfp, capacity, ownLevel, ownMeasurements, now } = input
  const policy = input.policy ?? {}
  const margin = policy.minMarginWei ?? 0n
  if (typeof margin !== 'bigint' || margin < 0n) throw new ContractError('CONTRACT_BAD_ARGUMENT', 'bid policy: minMarginWei is a non-negative bigint')
  const req = rfp.value.cmesh
  const deadline = bidDeadline(rfp.value)

  if (now >= deadline) return decline('RFP_CLOSED', `bidding closed ${now - deadline} s ago`)
  if (!card.schemesSupported.includes(req.scheme)) return decline('SCHEME_UNSUPPORTED', `scheme ${req.scheme} is not served`)
  if (!meets(ownLevel, req.floor)) return decline('FLOOR_NOT_MET', `provable level ${ownLevel} is below the floor ${req.floor}`)
  if (req.tdx && !card.backends.some((b) => b.tdx)) return decline('TDX_UNAVAILABLE', 'no backend offers TDX')
  if (req.expectedMeasurements !== undefined && !bytesEqual(req.expectedMeasurements, ownMeasurements)) {
    return decline('MEASUREMENTS_MISMATCH', 'own measurements differ from the expected ones')
  }

  const region = rfp.value.location?.region
  const want = requestedResources(rfp.value)
  const resources: Resources = { cpus: want.cpus, memMiB: want.memMiB, diskGiB: want.diskGiB }
  const own = capacity.held(reservationIdFor(rfp))

  // Every (backend, region) this provider sells that serves the RFP's region and TDX need.
  const offered: Array<{ backend: BackendCapability, region: string, rate: Rate }> = []
  for (const b of card.backends) {
    if (req.tdx && !b.tdx) continue
    for (const r of region === undefined ? b.regions : b.regions.filter((x) => x === region)) {
      const rate = rateFor(card.rates, b.name, r)
      if (rate !== undefined) offered.push({ backend: b, region: r, rate })
    }
  }
  if (offered.length === 0) {
    return decline('REGION_UNSERVED', region === undefined ? 'no priced backend serves the request' : `no priced${req.tdx ? ' TDX' : ''} backend serves region ${region}`)
  }

  const priced: Priced[] = []
  for (const o of offered) {
    const free = capacity.free(o.backend.name, now)
    if (free === undefined) continue
    // This RFP's own hold (a re-decision) is ours to reuse, not a competitor for room.
    if (own !== undefined && own.backend === o.backend.name) {
      free.cpus += own.resources.cpus
      free.memMiB += own.resources.memMiB
      free.diskGiB += own.resources.diskGiB
    }
    if (!fits(resources, free)) continue
    priced.push({ backend: o.backend, region: o.region, cost: contractCostWei(o.rate, resources, req.durationSecs), free })
  }
  if (priced.length === 0) {
    return decline('NO_CAPACITY', `no backend has ${resources.cpus} cpus, ${resources.memMiB} MiB, ${resources.diskGiB} GiB free`)
  }
  priced.sort(byPrice)
  const best = priced[0] as Priced

  if (best.cost > req.priceCapWei) {
    return decline('PRICE_BELOW_RATE', `cheapest cost ${weiToString(best.cost)} wei exceeds the cap ${weiToString(req.priceCapWei)} wei`)
  }
  if (policy.refuse?.includes(rfp.value.requester) === true) return decline('POLICY_REFUSED', 'requester refused by policy')
  if (policy.maxDurationSecs !== undefined && req.durationSecs > policy.maxDurationSecs) {
    return decline('POLICY_REFUSED', `duration ${req.durationSecs} s exceeds the policy maximum ${policy.maxDurationSecs} s`)
  }
  const costWei = best.cost + margin
  if (costWei > req.priceCapWei) {
    return decline('POLICY_REFUSED', `cap ${weiToString(req.priceCapWei)} wei leaves less than the minimum margin ${weiToString(margin)} wei`)
  }

  if (costWei > MAX_CCB_COST) return decline('POLICY_REFUSED', 'the price exceeds what a CCB can carry (2^64 − 1 wei)')

  return {
    kind: 'bid',
    offer: {
      backend: best.backend.name,
      region: best.region,
      costWei,
      expiresAtUnixSecs: deadline + BID_GRACE_SECS,
      cpus: resources.cpus,
      memMiB: resources.memMiB,
      diskGiB: resources.diskGiB,
      durationSecs: req.durationSecs,
      reservationId: reservationIdFor(rfp)
    }
  }
}
