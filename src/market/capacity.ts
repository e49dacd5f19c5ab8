/**
 * CapacityLedger: what a provider has promised, per backend, against the totals its card declares.
 *
 * A hold is `reserved` while a bid is open (until the bid's expiry) and `committed` once accepted
 * (until the contract's end). The one invariant: the holds present on a backend never add up to
 * more than its totals, because `reserve` is the only way in and it checks against every present
 * hold. `free(backend, now)` additionally ignores holds that have lapsed at `now` but have not yet
 * been swept by `expire(now)`. Operations are idempotent per id. Time is a parameter.
 */
import type { ProviderCard } from './provider-card.js'
import { ContractError } from './contract-error.js'
import { z } from './schema.js'

export interface Resources {
  cpus: number
  memMiB: number
  diskGiB: number
}

export type HoldState = 'reserved' | 'committed'

export interface Hold {
  id: string
  backend: string
  resources: Resources
  untilUnixSecs: number
  state: HoldState
}

/**
 * `reserved`: held now. `duplicate`: this id already holds the same resources on the same backend
 * (nothing changes). `conflict`: this id holds something else. `unknown-backend`, `no-capacity`:
 * refused, nothing held.
 */
export type ReserveOutcome = 'reserved' | 'duplicate' | 'conflict' | 'unknown-backend' | 'no-capacity'

export type CommitOutcome = 'committed' | 'unknown'

export const CAPACITY_LEDGER_VERSION = 1

export interface CapacityLedgerJSON {
  version: typeof CAPACITY_LEDGER_VERSION
  totals: Record<string, Resources>
  holds: Hold[]
}

const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)
const resourcesSchema = z.strictObject({ cpus: count, memMiB: count, diskGiB: count })
const idSchema = z.string().min(1).max(256)
const ledgerSchema = z.strictObject({
  version: z.literal(CAPACITY_LEDGER_VERSION),
  totals: z.record(z.string().min(1).max(64), resourcesSchema),
  holds: z.array(z.strictObject({
    id: idSchema,
    backend: z.string().min(1).max(64),
    resources: resourcesSchema,
    untilUnixSecs: count,
    state: z.enum(['reserved', 'committed'])
  }))
})

function badArgument (message: string): never {
  throw new ContractError('CONTRACT_BAD_ARGUMENT', `capacity: ${message}`)
}

/** Reads the three counts off anything that has them (an offer, a grant), ignoring other fields. */
function checkResources (r: Resources): Resources {
  const parsed = z.object({ cpus: count, memMiB: count, diskGiB: count }).safeParse(r)
  if (!parsed.success) badArgument('resources are non-negative integers {cpus, memMiB, diskGiB}')
  return { cpus: r.cpus, memMiB: r.memMiB, diskGiB: r.diskGiB }
}

function sameResources (a: Resources, b: Resources): boolean {
  return a.cpus === b.cpus && a.memMiB === b.memMiB && a.diskGiB === b.diskGiB
}

export function fits (want: Resources, free: Resources): boolean {
  return want.cpus <= free.cpus && want.memMiB <= free.memMiB && want.diskGiB <= free.diskGiB
}

/** Per-backend totals as the card declares them. */
export function capacityTotals (card: Pick<ProviderCard, 'backends'>): Record<string, Resources> {
  const totals: Record<string, Resources> = {}
  for (const b of card.backends) totals[b.name] = { cpus: b.maxCpu, memMiB: b.maxMemoryMiB, diskGiB: b.maxDiskGiB }
  return totals
}

export class CapacityLedger {
  private totals = new Map<string, Resources>()
  private readonly byId = new Map<string, Hold>()

  constructor (totals: Record<string, Resources>) {
    this.setTotals(totals)
  }

  static fromCard (card: Pick<ProviderCard, 'backends'>): CapacityLedger {
    return new CapacityLedger(capacityTotals(card))
  }

  /**
   * Replaces the totals (the card was republished). Holds stay: a shrunk backend may then hold
   * more than its new total, and `free` reports zero and `reserve` refuses until holds lapse.
   */
  setTotals (totals: Record<string, Resources>): void {
    const next = new Map<string, Resources>()
    for (const [name, r] of Object.entries(totals)) next.set(name, checkResources(r))
    this.totals = next
  }

  backends (): string[] {
    return [...this.totals.keys()].sort()
  }

  total (backend: string): Resources | undefined {
    const t = this.totals.get(backend)
    return t === undefined ? undefined : { ...t }
  }

  held (id: string): Hold | undefined {
    const h = this.byId.get(id)
    return h === undefined ? undefined : { ...h, resources: { ...h.resources } }
  }

  holds (): Hold[] {
    return [...this.byId.keys()].sort().map((id) => this.held(id) as Hold)
  }

  private used (backend: string, now?: number): Resources {
    const used = { cpus: 0, memMiB: 0, diskGiB: 0 }
    for (const h of this.byId.values()) {
      if (h.backend !== backend || (now !== undefined && h.untilUnixSecs <= now)) continue
      used.cpus += h.resources.cpus
      used.memMiB += h.resources.memMiB
      used.diskGiB += h.resources.diskGiB
    }
    return used
  }

  /** What is still free on `backend` at `now` (holds lapsed at `now` count as free); undefined for an unknown backend. */
  free (backend: string, now: number): Resources | undefined {
    const total = this.totals.get(backend)
    if (total === undefined) return undefined
    const used = this.used(backend, now)
    return {
      cpus: Math.max(0, total.cpus - used.cpus),
      memMiB: Math.max(0, total.memMiB - used.memMiB),
      diskGiB: Math.max(0, total.diskGiB - used.diskGiB)
    }
  }

  /**
   * Holds `resources` on `backend` for `id` until `untilUnixSecs`. With `now`, holds lapsed at
   * `now` are swept first (as `expire(now)`), so they make room; without it every present hold counts.
   */
  reserve (id: string, backend: string, resources: Resources, untilUnixSecs: number, now?: number): ReserveOutcome {
    if (!idSchema.safeParse(id).success) badArgument('a hold id is a non-empty string')
    const want = checkResources(resources)
    if (!count.safeParse(untilUnixSecs).success) badArgument('untilUnixSecs is a non-negative integer')
    if (now !== undefined) this.expire(now)
    const existing = this.byId.get(id)
    if (existing !== undefined) {
      return existing.backend === backend && sameResources(existing.resources, want) ? 'duplicate' : 'conflict'
    }
    const total = this.totals.get(backend)
    if (total === undefined) return 'unknown-backend'
    const used = this.used(backend)
    if (!fits({ cpus: used.cpus + want.cpus, memMiB: used.memMiB + want.memMiB, diskGiB: used.diskGiB + want.diskGiB }, total)) return 'no-capacity'
    this.byId.set(id, { id, backend, resources: want, untilUnixSecs, state: 'reserved' })
    return 'reserved'
  }

  /** The bid was accepted: hold until the contract's end. Committing again just moves the end. */
  commit (id: string, untilUnixSecs: number): CommitOutcome {
    if (!count.safeParse(untilUnixSecs).success) badArgument('untilUnixSecs is a non-negative integer')
    const h = this.byId.get(id)
    if (h === undefined) return 'unknown'
    h.state = 'committed'
    h.untilUnixSecs = untilUnixSecs
    return 'committed'
  }

  /** Drops the hold (not chosen, contract ended, provisioning failed); false when there was none. */
  release (id: string): boolean {
    return this.byId.delete(id)
  }

  /** Drops every hold whose time has come (`untilUnixSecs <= now`); returns their ids, sorted. */
  expire (now: number): string[] {
    const gone: string[] = []
    for (const [id, h] of this.byId) {
      if (h.untilUnixSecs <= now) {
        this.byId.delete(id)
        gone.push(id)
      }
    }
    return gone.sort()
  }

  toJSON (): CapacityLedgerJSON {
    const totals: Record<string, Resources> = {}
    for (const name of this.backends()) totals[name] = { ...(this.totals.get(name) as Resources) }
    return { version: CAPACITY_LEDGER_VERSION, totals, holds: this.holds() }
  }

  /** Rebuilds a ledger from `toJSON()` output (e.g. read back from disk); refuses anything else. */
  static fromJSON (json: unknown): CapacityLedger {
    const parsed = ledgerSchema.safeParse(json)
    if (!parsed.success) badArgument(`not a capacity ledger: ${parsed.error.issues[0]?.message ?? 'invalid'}`)
    const ledger = new CapacityLedger(parsed.data.totals)
    for (const h of parsed.data.holds) {
      if (ledger.byId.has(h.id)) badArgument(`hold ${h.id} appears twice`)
      ledger.byId.set(h.id, { id: h.id, backend: h.backend, resources: { ...h.resources }, untilUnixSecs: h.untilUnixSecs, state: h.state })
    }
    return ledger
  }
}
