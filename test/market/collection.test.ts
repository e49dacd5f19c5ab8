import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import * as dagCbor from '@ipld/dag-cbor'
import {
  ProviderCollection, differingBuckets, decodeRecord, encodeCanonical, COLLECTION_RECORD_TYPES, RecordError,
  type CollectionChange, type CollectionRecord
} from '../../src/market/index.js'
import { cardAt, makeCard, makeRetirement, testIdentity, T0 } from '../helpers/cards.js'

const NOW = T0 + 10

/** Canonical view of a replica: every slot's record CID, and which cards are shown at NOW. */
function snapshot (c: ProviderCollection): string {
  const held = [...c.records()].map((r) => `${r.value.providerId}=${r.cid.toString()}`).sort()
  const shown = c.cards(NOW).map((r) => r.cid.toString())
  return JSON.stringify({ held, shown })
}

function build (records: readonly CollectionRecord[], now = NOW): ProviderCollection {
  const c = new ProviderCollection()
  for (const r of records) c.apply(r, now)
  return c
}

// A pool of competing records for a few providers: several cards at different and equal times,
// retirements, and cards that are already expired at NOW.
const ids = [1, 2, 3, 4].map(testIdentity)
const pool: CollectionRecord[] = []
for (const [i, id] of ids.entries()) {
  pool.push(cardAt(id, T0 - 100), cardAt(id, T0), cardAt(id, T0, 'TdxLocal'), cardAt(id, T0 + 5, 'Software', 5n))
  pool.push(makeCard(id, { committedAtUnixSecs: T0 - 50, expiresAtUnixSecs: T0 - 1 }))
  if (i % 2 === 0) pool.push(makeRetirement(id, T0 + 2), makeRetirement(id, T0, testIdentity(9)))
}

const recordsArb = fc.array(fc.constantFrom(...pool), { maxLength: 24 })

describe('provider collection: CRDT laws (fast-check)', () => {
  it('merge is commutative', () => {
    fc.assert(fc.property(recordsArb, recordsArb, (a, b) => {
      const ab = build(a); ab.merge(build(b), NOW)
      const ba = build(b); ba.merge(build(a), NOW)
      assert.equal(snapshot(ab), snapshot(ba))
    }), { numRuns: 300 })
  })

  it('merge is associative', () => {
    fc.assert(fc.property(recordsArb, recordsArb, recordsArb, (a, b, c) => {
      const left = build(a); left.merge(build(b), NOW); left.merge(build(c), NOW)
      const bc = build(b); bc.merge(build(c), NOW)
      const right = build(a); right.merge(bc, NOW)
      assert.equal(snapshot(left), snapshot(right))
    }), { numRuns: 300 })
  })

  it('merge is idempotent', () => {
    fc.assert(fc.property(recordsArb, (a) => {
      const x = build(a)
      const before = snapshot(x)
      x.merge(build(a), NOW)
      x.merge(x, NOW)
      assert.equal(snapshot(x), before)
    }), { numRuns: 300 })
  })

  it('any delivery order, duplication or partition of the same records converges', () => {
    fc.assert(fc.property(
      fc.shuffledSubarray(pool, { minLength: 1 }),
      fc.array(fc.nat(), { maxLength: 30 }),
      fc.integer({ min: 1, max: 5 }),
      fc.array(fc.nat(4), { maxLength: 64 }),
      (records, dupes, parts, assignment) => {
        const reference = build(records)
        // One replica gets every record in a different order with duplicates.
        const noisy = [...records, ...dupes.map((d) => records[d % records.length] as CollectionRecord)].reverse()
        assert.equal(snapshot(build(noisy)), snapshot(reference))
        // Partitioned replicas each see a share, then heal by merging in a chain.
        const replicas = Array.from({ length: parts }, () => new ProviderCollection())
        records.forEach((r, i) => (replicas[(assignment[i] ?? i) % parts] as ProviderCollection).apply(r, NOW))
        const healed = new ProviderCollection()
        for (const r of replicas.reverse()) healed.merge(r, NOW)
        assert.equal(snapshot(healed), snapshot(reference))
      }), { numRuns: 300 })
  })

  it('never admits a card signed by someone other than its providerId', () => {
    fc.assert(fc.property(fc.nat(3), fc.integer({ min: 5, max: 8 }), (victim, forger) => {
      const genuine = cardAt(ids[victim] as any, T0)
      const { sig: _s, ...body } = dagCbor.decode(genuine.bytes) as Record<string, unknown>
      const forged = encodeCanonical({ ...body, committedAtUnixSecs: T0 + 99, sig: testIdentity(forger).sign(encodeCanonical(body)) })
      const c = new ProviderCollection()
      assert.throws(() => c.apply(decodeRecord(forged, COLLECTION_RECORD_TYPES), NOW), RecordError)
      assert.equal(c.size, 0)
    }), { numRuns: 50 })
  })
})

describe('provider collection: behaviour', () => {
  const alice = testIdentity(1)

  it('reports added, replaced (republish), stale, duplicate, retired and expired', () => {
    const c = new ProviderCollection()
    const events: CollectionChange[] = []
    c.subscribe((e) => events.push(e))
    const first = cardAt(alice, T0)
    const second = cardAt(alice, T0 + 1, 'Software', 7n)
    assert.equal(c.apply(first, NOW), 'added')
    assert.equal(c.apply(first, NOW), 'duplicate')
    assert.equal(c.apply(second, NOW), 'replaced')
    assert.equal(c.apply(first, NOW), 'stale')
    assert.deepEqual(events.map((e) => e.kind), ['added', 'replaced'])
    assert.equal(events[1]?.previous?.cid.toString(), first.cid.toString())
    assert.equal(c.get(alice.did, NOW)?.value.feePerPartialWei, 7n)

    assert.deepEqual(c.expire(T0 + 3600).map((e) => e.kind), []) // second expires at T0 + 3601
    const expired = c.expire(T0 + 3601)
    assert.deepEqual(expired.map((e) => e.kind), ['expired'])
    assert.deepEqual(c.expire(T0 + 4000), [], 'expiry is announced once')
    assert.equal(c.get(alice.did, T0 + 3601), undefined)
    assert.equal(c.apply(first, T0 + 3601), 'stale', 'an older card does not resurface after expiry')

    const retire = makeRetirement(alice, T0 + 3700, testIdentity(2))
    assert.equal(c.apply(retire, T0 + 3701), 'retired')
    assert.equal(events.at(-1)?.kind, 'retired')
    assert.equal(events.at(-1)?.retirement?.value.successor, testIdentity(2).did)
  })

  it('a retirement beats a card of the same second; a later card revives the provider', () => {
    const c = new ProviderCollection()
    c.apply(makeRetirement(alice, T0), NOW)
    assert.equal(c.apply(cardAt(alice, T0), NOW), 'stale')
    assert.equal(c.apply(cardAt(alice, T0 + 1), NOW), 'added')
    assert.equal(c.cards(NOW).length, 1)
  })

  it('is bounded: a new provider beyond the cap is refused, known ones still update', () => {
    const c = new ProviderCollection(2)
    assert.equal(c.apply(cardAt(testIdentity(1), T0), NOW), 'added')
    assert.equal(c.apply(cardAt(testIdentity(2), T0), NOW), 'added')
    assert.equal(c.apply(cardAt(testIdentity(3), T0), NOW), 'full')
    assert.equal(c.apply(cardAt(testIdentity(1), T0 + 1), NOW), 'replaced')
    assert.equal(c.size, 2)
  })

  it('is bounded in bytes too: a new provider past the budget is refused, a known one may not grow past it', () => {
    const one = cardAt(testIdentity(1), T0)
    const c = new ProviderCollection(100, 2 * one.bytes.length + 10)
    assert.equal(c.apply(one, NOW), 'added')
    assert.equal(c.apply(cardAt(testIdentity(2), T0), NOW), 'added')
    assert.equal(c.heldBytes, one.bytes.length + cardAt(testIdentity(2), T0).bytes.length)
    assert.equal(c.apply(cardAt(testIdentity(3), T0), NOW), 'full')
    const bigger = makeCard(testIdentity(1), { committedAtUnixSecs: T0 + 1, expiresAtUnixSecs: T0 + 3600, schemesSupported: ['vm.ssh', 'x'.repeat(64)] })
    assert.equal(c.apply(bigger, NOW), 'full')
    assert.equal(c.apply(cardAt(testIdentity(1), T0 + 1), NOW), 'replaced', 'an update of the same size still lands')
    assert.equal(c.size, 2)
  })

  it('prune forgets long-ended slots only', () => {
    const c = build([cardAt(alice, T0), cardAt(testIdentity(2), T0 + 5000)], T0)
    assert.deepEqual(c.prune(T0 + 3600 + 600, 600), [], 'ended exactly at the horizon: kept')
    assert.equal(c.prune(T0 + 3600 + 601, 600).length, 1)
    assert.equal(c.size, 1)
  })

  it('summaries find exactly the buckets where replicas differ, and reconcile says who lacks what', () => {
    const many = Array.from({ length: 40 }, (_, i) => cardAt(testIdentity(100 + i), T0))
    const a = build(many)
    const b = build(many.slice(0, 30))
    const newer = cardAt(testIdentity(100), T0 + 1)
    b.apply(newer, NOW)
    assert.deepEqual(differingBuckets(a.summary(), a.summary()), [])
    const buckets = differingBuckets(a.summary(), b.summary())
    assert.ok(buckets.length > 0 && buckets.length <= 11)
    const fromB = b.entries(buckets)
    const { want, offer } = a.reconcile(fromB, buckets)
    assert.deepEqual(want, [testIdentity(100).did])
    assert.deepEqual(new Set(offer), new Set(many.slice(30).map((r) => r.value.providerId)))
    // Apply what each side lacked: the replicas converge and the summaries agree.
    for (const id of want) a.apply(b.record(id) as CollectionRecord, NOW)
    for (const id of offer) b.apply(a.record(id) as CollectionRecord, NOW)
    assert.deepEqual(differingBuckets(a.summary(), b.summary()), [])
    assert.equal(snapshot(a), snapshot(b))
  })
})
