import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { CapacityLedger, ContractError, type Hold, type Resources } from '../../src/market/index.js'
import { cardFields, testIdentity, T0 } from '../helpers/cards.js'

const TOTALS: Record<string, Resources> = { a: { cpus: 8, memMiB: 16384, diskGiB: 100 }, b: { cpus: 2, memMiB: 2048, diskGiB: 10 } }
const r = (cpus: number, memMiB = 0, diskGiB = 0): Resources => ({ cpus, memMiB, diskGiB })

function sumOn (holds: Hold[], backend: string, live: (h: Hold) => boolean = () => true): Resources {
  const s = r(0)
  for (const h of holds) {
    if (h.backend !== backend || !live(h)) continue
    s.cpus += h.resources.cpus; s.memMiB += h.resources.memMiB; s.diskGiB += h.resources.diskGiB
  }
  return s
}

describe('capacity ledger', () => {
  it('takes per-backend totals from the card', () => {
    const ledger = CapacityLedger.fromCard(cardFields(testIdentity(1)))
    assert.deepEqual(ledger.backends(), ['aws', 'local'])
    assert.deepEqual(ledger.total('local'), { cpus: 4, memMiB: 8192, diskGiB: 50 })
    assert.deepEqual(ledger.free('aws', T0), { cpus: 64, memMiB: 262144, diskGiB: 2000 })
    assert.equal(ledger.free('ghost', T0), undefined)
  })

  it('reserves, refuses over-commit, commits, releases and expires', () => {
    const l = new CapacityLedger(TOTALS)
    assert.equal(l.reserve('x', 'b', r(2, 1024, 5), T0 + 60), 'reserved')
    assert.deepEqual(l.free('b', T0), r(0, 1024, 5))
    assert.equal(l.reserve('y', 'b', r(1), T0 + 60), 'no-capacity')
    assert.equal(l.reserve('x', 'b', r(2, 1024, 5), T0 + 90), 'duplicate', 'idempotent per id')
    assert.equal(l.reserve('x', 'b', r(1), T0 + 60), 'conflict')
    assert.equal(l.reserve('x', 'a', r(2, 1024, 5), T0 + 60), 'conflict')
    assert.equal(l.reserve('z', 'ghost', r(1), T0 + 60), 'unknown-backend')
    assert.equal(l.holds().length, 1)
    // Lapsed at now: free says so, and reserve with now sweeps it first.
    assert.deepEqual(l.free('b', T0 + 60), TOTALS.b)
    assert.equal(l.reserve('y', 'b', r(1), T0 + 120), 'no-capacity', 'without now, every present hold counts')
    assert.equal(l.reserve('y', 'b', r(1), T0 + 120, T0 + 60), 'reserved')
    assert.equal(l.held('x'), undefined)
    // Commit holds until the contract's end.
    assert.equal(l.commit('y', T0 + 3600), 'committed')
    assert.equal(l.commit('y', T0 + 3600), 'committed')
    assert.equal(l.held('y')?.state, 'committed')
    assert.deepEqual(l.expire(T0 + 3599), [])
    assert.equal(l.commit('nope', T0), 'unknown')
    assert.equal(l.release('y'), true)
    assert.equal(l.release('y'), false)
    assert.equal(l.reserve('w', 'a', r(1), T0 + 10), 'reserved')
    assert.deepEqual(l.expire(T0 + 10), ['w'])
    assert.deepEqual(l.holds(), [])
  })

  it('refuses nonsense arguments with CONTRACT_BAD_ARGUMENT', () => {
    const l = new CapacityLedger(TOTALS)
    const bad = (e: unknown) => e instanceof ContractError && e.code === 'CONTRACT_BAD_ARGUMENT'
    assert.throws(() => l.reserve('x', 'a', r(-1), T0), bad)
    assert.throws(() => l.reserve('x', 'a', r(1.5), T0), bad)
    assert.throws(() => l.reserve('', 'a', r(1), T0), bad)
    assert.throws(() => l.reserve('x', 'a', r(1), -1), bad)
    assert.throws(() => new CapacityLedger({ a: r(-1) }), bad)
  })

  it('serialises: fromJSON(toJSON()) is the same ledger, and junk is refused', () => {
    const l = new CapacityLedger(TOTALS)
    l.reserve('x', 'a', r(1, 2, 3), T0 + 60)
    l.reserve('y', 'b', r(1), T0 + 60)
    l.commit('y', T0 + 999)
    const json = JSON.parse(JSON.stringify(l))
    const back = CapacityLedger.fromJSON(json)
    assert.deepEqual(back.toJSON(), l.toJSON())
    assert.deepEqual(back.free('a', T0), l.free('a', T0))
    const bad = (e: unknown) => e instanceof ContractError && e.code === 'CONTRACT_BAD_ARGUMENT'
    for (const junk of [null, {}, { ...json, version: 2 }, { ...json, holds: [...json.holds, json.holds[0]] }, { ...json, holds: [{ ...json.holds[0], state: 'maybe' }] }, { ...json, extra: 1 }]) {
      assert.throws(() => CapacityLedger.fromJSON(junk), bad)
    }
  })

  it('never over-commits, matches a simple model, is idempotent per id and round-trips JSON (fast-check)', () => {
    const resources = fc.record({ cpus: fc.nat(5), memMiB: fc.nat(6000), diskGiB: fc.nat(40) })
    const id = fc.constantFrom('p', 'q', 'r', 's', 't', 'u')
    const time = fc.integer({ min: 0, max: 100 })
    const op = fc.oneof(
      fc.record({ kind: fc.constant('reserve' as const), id, backend: fc.constantFrom('a', 'b', 'ghost'), resources, until: time, now: fc.option(time, { nil: undefined }) }),
      fc.record({ kind: fc.constant('commit' as const), id, until: time }),
      fc.record({ kind: fc.constant('release' as const), id }),
      fc.record({ kind: fc.constant('expire' as const), now: time })
    )
    fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const l = new CapacityLedger(TOTALS)
      const model = new Map<string, Hold>()
      const sweep = (now: number) => { for (const [k, h] of model) if (h.untilUnixSecs <= now) model.delete(k) }
      for (const o of ops) {
        switch (o.kind) {
          case 'reserve': {
            if (o.now !== undefined) sweep(o.now)
            const existing = model.get(o.id)
            let expected: string
            if (existing !== undefined) {
              const same = existing.backend === o.backend && JSON.stringify(existing.resources) === JSON.stringify(o.resources)
              expected = same ? 'duplicate' : 'conflict'
            } else if (TOTALS[o.backend] === undefined) {
              expected = 'unknown-backend'
            } else {
              const used = sumOn([...model.values()], o.backend)
              const t = TOTALS[o.backend] as Resources
              const fits = used.cpus + o.resources.cpus <= t.cpus && used.memMiB + o.resources.memMiB <= t.memMiB && used.diskGiB + o.resources.diskGiB <= t.diskGiB
              expected = fits ? 'reserved' : 'no-capacity'
              if (fits) model.set(o.id, { id: o.id, backend: o.backend, resources: { ...o.resources }, untilUnixSecs: o.until, state: 'reserved' })
            }
            assert.equal(l.reserve(o.id, o.backend, o.resources, o.until, o.now), expected)
            if (expected === 'reserved') assert.equal(l.reserve(o.id, o.backend, o.resources, o.until), 'duplicate')
            break
          }
          case 'commit': {
            const h = model.get(o.id)
            if (h !== undefined) { h.state = 'committed'; h.untilUnixSecs = o.until }
            assert.equal(l.commit(o.id, o.until), h === undefined ? 'unknown' : 'committed')
            break
          }
          case 'release':
            assert.equal(l.release(o.id), model.delete(o.id))
            break
          case 'expire': {
            const gone = [...model.values()].filter((h) => h.untilUnixSecs <= o.now).map((h) => h.id).sort()
            sweep(o.now)
            assert.deepEqual(l.expire(o.now), gone)
            break
          }
        }
        const holds = l.holds()
        assert.deepEqual(holds, [...model.values()].sort((x, y) => x.id < y.id ? -1 : 1))
        for (const [name, total] of Object.entries(TOTALS)) {
          const used = sumOn(holds, name)
          assert.ok(used.cpus <= total.cpus && used.memMiB <= total.memMiB && used.diskGiB <= total.diskGiB, `over-committed ${name}`)
          for (const t of [0, 50, 100]) {
            const live = sumOn(holds, name, (h) => h.untilUnixSecs > t)
            assert.deepEqual(l.free(name, t), { cpus: total.cpus - live.cpus, memMiB: total.memMiB - live.memMiB, diskGiB: total.diskGiB - live.diskGiB })
          }
        }
        assert.deepEqual(CapacityLedger.fromJSON(JSON.parse(JSON.stringify(l))).toJSON(), l.toJSON())
      }
    }), { numRuns: 300 })
  })
})
