/**
 * Consumer-side audit of a provider collection (the seed's "Consumer-side selection"): level mix,
 * fee ranking, committee cost forecast and coverage, capacity against a burst. Pure: cards and the
 * verified levels are passed in. Eligibility always uses the *verified* level; a card with no
 * verified evidence counts as Software (its signature is all that is proven).
 */
import { AuditError } from './errors.js'
import { ATTESTATION_LEVELS, levelRank, meets, type AttestationLevel } from './ladder.js'
import type { Did } from './identity.js'
import type { ProviderCard } from './provider-card.js'

/** Verified levels by providerId; absent = nothing beyond the signature has been verified. */
export type VerifiedLevels = ReadonlyMap<string, AttestationLevel>

export function verifiedLevelOf (card: ProviderCard, verified: VerifiedLevels): AttestationLevel {
  return verified.get(card.providerId) ?? 'Software'
}

/** A claim above what evidence proves. */
export function isOverClaim (card: ProviderCard, verified: VerifiedLevels): boolean {
  return levelRank(card.attestationLevel) > levelRank(verifiedLevelOf(card, verified))
}

export interface LevelMixRow {
  level: AttestationLevel
  claimed: number
  verified: number
}

export function levelMix (cards: readonly ProviderCard[], verified: VerifiedLevels): LevelMixRow[] {
  return ATTESTATION_LEVELS.map((level) => ({
    level,
    claimed: cards.filter((c) => c.attestationLevel === level).length,
    verified: cards.filter((c) => verifiedLevelOf(c, verified) === level).length
  }))
}

export interface AuditFilter {
  floor: AttestationLevel
  /** Any scheme when absent. */
  scheme?: string
}

export function eligibleCards (cards: readonly ProviderCard[], verified: VerifiedLevels, filter: AuditFilter): ProviderCard[] {
  return cards.filter((c) => meets(verifiedLevelOf(c, verified), filter.floor) &&
    (filter.scheme === undefined || c.schemesSupported.includes(filter.scheme)))
}

/** Eligible cards, cheapest first; ties by providerId so the order is the same on every node. */
export function rankByFee (cards: readonly ProviderCard[], verified: VerifiedLevels, filter: AuditFilter): ProviderCard[] {
  return eligibleCards(cards, verified, filter).sort((a, b) =>
    a.feePerPartialWei < b.feePerPartialWei ? -1 : a.feePerPartialWei > b.feePerPartialWei ? 1 : a.providerId < b.providerId ? -1 : a.providerId > b.providerId ? 1 : 0)
}

export interface CommitteeReport {
  committeeSize: number
  threshold: number
  eligible: number
  /** How many more eligible providers a committee of this size needs (0 when enough). */
  missing: number
  /** Mean fee per partial over the eligible providers (rounded down), undefined when none. */
  meanFeeWei?: bigint
  /** threshold × mean(fee): what one signature (threshold partials) is expected to cost. */
  forecastWei?: bigint
  /** The committee a requester would pick: the cheapest `committeeSize` eligible providers. */
  cheapest: Did[]
}

export function committeeReport (cards: readonly ProviderCard[], verified: VerifiedLevels, filter: AuditFilter, threshold: number, committeeSize: number): CommitteeReport {
  if (!Number.isInteger(committeeSize) || committeeSize < 1) throw new AuditError('AUDIT_BAD_ARGUMENT', 'committee size must be a positive integer')
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > committeeSize) {
    throw new AuditError('AUDIT_BAD_ARGUMENT', 'threshold must be an integer from 1 to the committee size')
  }
  const ranked = rankByFee(cards, verified, filter)
  const report: CommitteeReport = {
    committeeSize,
    threshold,
    eligible: ranked.length,
    missing: Math.max(0, committeeSize - ranked.length),
    cheapest: ranked.slice(0, committeeSize).map((c) => c.providerId)
  }
  if (ranked.length > 0) {
    const sum = ranked.reduce((acc, c) => acc + c.feePerPartialWei, 0n)
    const n = BigInt(ranked.length)
    report.meanFeeWei = sum / n
    // Multiply before dividing so the forecast keeps the precision the mean would round away.
    report.forecastWei = (BigInt(threshold) * sum) / n
  }
  return report
}

export interface CapacityReport {
  burstPerSecond: number
  capacityPerSecond: number
  sufficient: boolean
  shortfall: number
}

export function capacityReport (cards: readonly ProviderCard[], verified: VerifiedLevels, filter: AuditFilter, burstPerSecond: number): CapacityReport {
  if (!Number.isFinite(burstPerSecond) || burstPerSecond < 0) throw new AuditError('AUDIT_BAD_ARGUMENT', 'burst must be a non-negative number')
  const capacity = eligibleCards(cards, verified, filter).reduce((acc, c) => acc + c.capacityPerSecond, 0)
  return { burstPerSecond, capacityPerSecond: capacity, sufficient: capacity >= burstPerSecond, shortfall: Math.max(0, burstPerSecond - capacity) }
}
