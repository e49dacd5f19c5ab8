/**
 * The provider collection: a state-based LWW map `providerId → signed card | signed retirement`.
 *
 * Each provider's slot holds the greatest record received, ordered by (time, kind, digest) with a
 * retirement above a card of the same second. Merging is taking the maximum per key, so it is
 * commutative, associative and idempotent, and any delivery order of the same records converges.
 * Expiry never removes state (that would let an older card resurface); it only hides a card
 * from `cards(now)`. Only records that passed `decodeRecord` (signature checked against the
 * providerId) can enter.
 */
import { compareBytes, utf8 } from './bytes.js'
import { sha256Digest } from './cbor.js'
import type { Did } from './identity.js'
import { PROVIDER_CARD_NSID, ProviderCardType, type SignedProviderCard } from './provider-card.js'
import { RetirementType, type SignedRetirement } from './retirement.js'

export type CollectionRecord = SignedProviderCard | SignedRetirement

export type ChangeKind = 'added' | 'replaced' | 'retired' | 'expired'

export interface CollectionChange {
  kind: ChangeKind
  providerId: Did
  /** The card now shown (added / replaced). */
  card?: SignedProviderCard
  /** The card no longer shown (replaced / retired / expired). */
  previous?: SignedProviderCard
  retirement?: SignedRetirement
}

export type ApplyOutcome = 'added' | 'replaced' | 'retired' | 'expired' | 'stale' | 'duplicate' | 'full'

/** Default bound on provider slots: a flood of fresh identities stops here instead of in memory. */
export const DEFAULT_MAX_PROVIDERS = 100_000
/** The bytes of held records, bounded too: 100k cards at the 16 KiB cap would be ≈ 1.6 GB (and ≈ 4 GiB held in memory). */
export const DEFAULT_MAX_BYTES = 256 * 1024 * 1024

export const SUMMARY_BUCKETS = 256
const DIGEST_BYTES = 32

/** One entry of a summary bucket: enough to decide which side holds the greater record. */
export interface SummaryEntry {
  providerId: Did
  time: number
  retired: boolean
  digest: Uint8Array
}

export interface CollectionSummary {
  /** Number of provider slots (cards and retirements, expired or not). */
  count: number
  /** SUMMARY_BUCKETS × 32 bytes: XOR of record body digests per bucket of providerId. */
  buckets: Uint8Array
}

interface Slot {
  record: CollectionRecord
  time: number
  retired: boolean
  bucket: number
  /** The card was visible and has been announced as expired. */
  expiredAnnounced: boolean
}

export function isCard (record: CollectionRecord): record is SignedProviderCard {
  return record.type.nsid === PROVIDER_CARD_NSID
}

function recordTime (record: CollectionRecord): number {
  return isCard(record) ? record.value.committedAtUnixSecs : (record as SignedRetirement).value.retiredAtUnixSecs
}

/** Total order of records for one provider. */
export function compareEntries (a: Omit<SummaryEntry, 'providerId'>, b: Omit<SummaryEntry, 'providerId'>): number {
  if (a.time !== b.time) return a.time - b.time
  if (a.retired !== b.retired) return a.retired ? 1 : -1
  return compareBytes(a.digest, b.digest)
}

export function bucketOf (providerId: string): number {
  return sha256Digest(utf8(providerId))[0] as number
}

function isVisible (slot: Slot, now: number): slot is Slot & { record: SignedProviderCard } {
  return !slot.retired && (slot.record as SignedProviderCard).value.expiresAtUnixSecs > now
}

export class ProviderCollection {
  private readonly slots = new Map<Did, Slot>()
  private readonly buckets = new Uint8Array(SUMMARY_BUCKETS * DIGEST_BYTES)
  private readonly listeners = new Set<(change: CollectionChange) => void>()

  private held = 0

  /**
   * `maxProviders` bounds the slots and `maxBytes` the records' bytes: a new provider beyond
   * either is refused ('full'); known ones still update, unless a larger record would pass `maxBytes`.
   */
  constructor (private readonly maxProviders = DEFAULT_MAX_PROVIDERS, private readonly maxBytes = DEFAULT_MAX_BYTES) {}

  get size (): number {
    return this.slots.size
  }

  /** Bytes of the records held (cards and retirements, shown or not). */
  get heldBytes (): number {
    return this.held
  }

  /** Observe changes (added / replaced / retired / expired); returns an unsubscribe function. */
  subscribe (listener: (change: CollectionChange) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Admits a verified record if it is greater than what the provider's slot holds. */
  apply (record: CollectionRecord, now: number): ApplyOutcome {
    const providerId = record.value.providerId
    const incoming = { time: recordTime(record), retired: !isCard(record), digest: record.digest }
    const slot = this.slots.get(providerId)
    if (slot !== undefined) {
      const order = compareEntries(incoming, { time: slot.time, retired: slot.retired, digest: slot.record.digest })
      if (order === 0) return 'duplicate'
      if (order < 0) return 'stale'
    } else if (this.slots.size >= this.maxProviders) {
      return 'full'
    }
    const grows = record.bytes.length - (slot?.record.bytes.length ?? 0)
    if (grows > 0 && this.held + grows > this.maxBytes) return 'full'
    this.held += grows
    const wasVisible = slot !== undefined && isVisible(slot, now)
    const previous = wasVisible ? slot.record as SignedProviderCard : undefined
    const next: Slot = { record, ...incoming, bucket: slot?.bucket ?? bucketOf(providerId), expiredAnnounced: false }
    if (slot !== undefined) this.xorIntoBucket(slot.bucket, slot.record)
    this.xorIntoBucket(next.bucket, record)
    this.slots.set(providerId, next)

    let outcome: ApplyOutcome
    if (next.retired) {
      outcome = 'retired'
      this.emit({ kind: 'retired', providerId, previous, retirement: record as SignedRetirement })
    } else if (!isVisible(next, now)) {
      // A newer card that is already past its expiry still supersedes; the provider is gone.
      next.expiredAnnounced = true
      outcome = 'expired'
      if (previous !== undefined) this.emit({ kind: 'expired', providerId, previous })
    } else {
      outcome = previous === undefined ? 'added' : 'replaced'
      this.emit({ kind: outcome, providerId, card: record as SignedProviderCard, previous })
    }
    return outcome
  }

  /** Joins another replica into this one. */
  merge (other: ProviderCollection, now: number): void {
    for (const slot of other.slots.values()) this.apply(slot.record, now)
  }

  /** Announces cards whose expiry has passed; they stay in state but are no longer shown. */
  expire (now: number): CollectionChange[] {
    const changes: CollectionChange[] = []
    for (const [providerId, slot] of this.slots) {
      if (slot.retired || slot.expiredAnnounced || isVisible(slot, now)) continue
      slot.expiredAnnounced = true
      const change: CollectionChange = { kind: 'expired', providerId, previous: slot.record as SignedProviderCard }
      changes.push(change)
      this.emit(change)
    }
    return changes
  }

  /**
   * Forgets retirements and expired cards older than `now - retentionSecs`. This trades strict
   * convergence for bounded memory: a replica still holding an older card could re-admit it.
   * Returns the providers forgotten (so the store can forget them too).
   */
  prune (now: number, retentionSecs: number): string[] {
    const removed: string[] = []
    for (const [providerId, slot] of this.slots) {
      const endedAt = slot.retired ? slot.time : (slot.record as SignedProviderCard).value.expiresAtUnixSecs
      if (!isVisible(slot, now) && endedAt < now - retentionSecs) {
        this.xorIntoBucket(slot.bucket, slot.record)
        this.slots.delete(providerId)
        this.held -= slot.record.bytes.length
        removed.push(providerId)
      }
    }
    return removed
  }

  /** The card shown for a provider at `now`, if any. */
  get (providerId: string, now: number): SignedProviderCard | undefined {
    const slot = this.slots.get(providerId as Did)
    return slot !== undefined && isVisible(slot, now) ? slot.record : undefined
  }

  /** The greatest record held for a provider, shown or not (what sync exchanges). */
  record (providerId: string): CollectionRecord | undefined {
    return this.slots.get(providerId as Did)?.record
  }

  /** Cards shown at `now`, ordered by providerId. */
  cards (now: number): SignedProviderCard[] {
    const out: SignedProviderCard[] = []
    for (const slot of this.slots.values()) if (isVisible(slot, now)) out.push(slot.record)
    return out.sort((a, b) => (a.value.providerId < b.value.providerId ? -1 : a.value.providerId > b.value.providerId ? 1 : 0))
  }

  /** Every record held: the state to persist or hand to another replica. */
  * records (): IterableIterator<CollectionRecord> {
    for (const slot of this.slots.values()) yield slot.record
  }

  summary (): CollectionSummary {
    return { count: this.slots.size, buckets: Uint8Array.from(this.buckets) }
  }

  /** Summary entries of the given buckets, for the other replica to reconcile against. */
  entries (buckets: Iterable<number>): SummaryEntry[] {
    const wanted = new Set(buckets)
    const out: SummaryEntry[] = []
    for (const [providerId, slot] of this.slots) {
      if (wanted.has(slot.bucket)) out.push({ providerId, time: slot.time, retired: slot.retired, digest: slot.record.digest })
    }
    return out
  }

  /**
   * Given the other replica's entries for `buckets`, what each side lacks: `want` are providers whose
   * remote record is greater (fetch them), `offer` those whose local record is greater or unknown there.
   */
  reconcile (remote: SummaryEntry[], buckets: Iterable<number>): { want: Did[], offer: Did[] } {
    const want: Did[] = []
    const remoteById = new Map<string, SummaryEntry>()
    for (const entry of remote) {
      remoteById.set(entry.providerId, entry)
      const slot = this.slots.get(entry.providerId)
      if (slot === undefined || compareEntries(entry, { time: slot.time, retired: slot.retired, digest: slot.record.digest }) > 0) {
        want.push(entry.providerId)
      }
    }
    const offer: Did[] = []
    for (const local of this.entries(buckets)) {
      const theirs = remoteById.get(local.providerId)
      if (theirs === undefined || compareEntries(local, theirs) > 0) offer.push(local.providerId)
    }
    return { want, offer }
  }

  private xorIntoBucket (bucket: number, record: CollectionRecord): void {
    // The body digest, not the CID: the order already treats two signatures over one body as the
    // same record, and the summary must too, or replicas holding either copy would differ forever.
    const digest = record.digest
    const base = bucket * DIGEST_BYTES
    for (let i = 0; i < DIGEST_BYTES; i++) this.buckets[base + i] = (this.buckets[base + i] as number) ^ (digest[i] as number)
  }

  private emit (change: CollectionChange): void {
    for (const listener of this.listeners) listener(change)
  }
}

/** Bucket indices whose hashes differ: the only ones two replicas need to compare entry by entry. */
export function differingBuckets (a: CollectionSummary, b: CollectionSummary): number[] {
  const out: number[] = []
  for (let i = 0; i < SUMMARY_BUCKETS; i++) {
    const base = i * DIGEST_BYTES
    for (let j = 0; j < DIGEST_BYTES; j++) {
      if (a.buckets[base + j] !== b.buckets[base + j]) {
        out.push(i)
        break
      }
    }
  }
  return out
}

/** The record types a collection holds, for decodeRecord. */
export const COLLECTION_RECORD_TYPES = [ProviderCardType, RetirementType] as const
