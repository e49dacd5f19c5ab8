/**
 * Builds and prints the auditor's report over a set of cards: the market's pure audit functions,
 * laid out as a table for people or as JSON (wei amounts as decimal strings) for programs.
 */
import {
  levelMix, rankByFee, committeeReport, capacityReport, isOverClaim, verifiedLevelOf,
  type AuditFilter, type VerifiedLevels, type CommitteeReport, type CapacityReport, type LevelMixRow
} from '../market/audit.js'
import { capabilityUnion, type ProviderCard } from '../market/provider-card.js'

export interface AuditOptions extends AuditFilter {
  threshold?: number
  committee?: number
  burst?: number
}

export interface AuditReport {
  at: number
  shown: number
  filter: AuditFilter
  levels: LevelMixRow[]
  overClaims: string[]
  ranked: Array<{ providerId: string, claimed: string, verified: string, simulated: boolean, feePerPartialWei: bigint, capacityPerSecond: number, regions: string[] }>
  /** Providers whose verified level rests on evidence under a test root (simulated, not production). */
  simulated: string[]
  committee?: CommitteeReport
  capacity?: CapacityReport
  /** True while no verifier runs: every verified level is Software (the signature alone). */
  evidenceUnchecked: boolean
}

export function buildAuditReport (cards: ProviderCard[], verified: VerifiedLevels, options: AuditOptions, at: number, simulated: ReadonlySet<string> = new Set()): AuditReport {
  const filter: AuditFilter = { floor: options.floor, ...(options.scheme !== undefined ? { scheme: options.scheme } : {}) }
  const report: AuditReport = {
    at,
    shown: cards.length,
    filter,
    levels: levelMix(cards, verified),
    overClaims: cards.filter((c) => isOverClaim(c, verified)).map((c) => c.providerId),
    ranked: rankByFee(cards, verified, filter).map((c) => ({
      providerId: c.providerId,
      claimed: c.attestationLevel,
      verified: verifiedLevelOf(c, verified),
      simulated: simulated.has(c.providerId),
      feePerPartialWei: c.feePerPartialWei,
      capacityPerSecond: c.capacityPerSecond,
      regions: capabilityUnion(c).regions
    })),
    simulated: cards.filter((c) => simulated.has(c.providerId)).map((c) => c.providerId),
    evidenceUnchecked: verified.size === 0
  }
  if (options.committee !== undefined || options.threshold !== undefined) {
    const committee = options.committee ?? options.threshold ?? 1
    report.committee = committeeReport(cards, verified, filter, options.threshold ?? committee, committee)
  }
  if (options.burst !== undefined) report.capacity = capacityReport(cards, verified, filter, options.burst)
  return report
}

export function auditReportToJson (report: AuditReport): string {
  return JSON.stringify(report, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2)
}

function table (header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ').trimEnd()
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')
}

const short = (did: string) => did.length > 24 ? `${did.slice(0, 14)}…${did.slice(-8)}` : did

export function auditReportToText (report: AuditReport): string {
  const out: string[] = []
  out.push(`Providers shown: ${report.shown} (at ${new Date(report.at * 1000).toISOString()})`)
  out.push('')
  out.push(table(['level', 'claimed', 'verified'], report.levels.map((r) => [r.level, String(r.claimed), String(r.verified)])))
  if (report.evidenceUnchecked) out.push('(no evidence verified: every provider counts as Software, whatever it claims)')
  if (report.overClaims.length > 0) out.push(`Over-claims (claimed above what evidence proves): ${report.overClaims.length}`)
  if (report.simulated.length > 0) out.push(`SIMULATED: ${report.simulated.length} verified level(s) rest on a TEST-ONLY root (marked *), not on Intel's`)
  out.push('')
  const scope = `floor ${report.filter.floor}${report.filter.scheme !== undefined ? `, scheme ${report.filter.scheme}` : ''}`
  out.push(`Eligible at ${scope}, cheapest first: ${report.ranked.length}`)
  if (report.ranked.length > 0) {
    out.push(table(['provider', 'claimed', 'verified', 'fee/partial (wei)', 'capacity/s', 'regions'],
      report.ranked.map((r) => [short(r.providerId), r.claimed, r.verified + (r.simulated ? '*' : ''), r.feePerPartialWei.toString(), String(r.capacityPerSecond), r.regions.join(',')])))
  }
  if (report.committee !== undefined) {
    const c = report.committee
    out.push('')
    out.push(`Committee ${c.threshold}-of-${c.committeeSize}: ${c.eligible} eligible, ${c.missing === 0 ? 'none missing' : `${c.missing} missing`}`)
    out.push(c.forecastWei === undefined
      ? 'Cost forecast: no eligible provider, no forecast'
      : `Cost forecast: ${c.threshold} × mean fee ${c.meanFeeWei} = ${c.forecastWei} wei per signature`)
  }
  if (report.capacity !== undefined) {
    const c = report.capacity
    out.push('')
    out.push(`Capacity: ${c.capacityPerSecond}/s eligible for a burst of ${c.burstPerSecond}/s: ${c.sufficient ? 'sufficient' : `short by ${c.shortfall}/s`}`)
  }
  return out.join('\n')
}
