import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { sha256 } from '@noble/hashes/sha2.js'
import {
  choose, trustView, isMember, REFUSAL_CODES, POLICY_MODES, ContractError, utf8,
  type BidCandidate, type Did, type SignedTrust, type Identity, type AttestationLevel, type PolicyMode, type RequesterPolicy
} from '../../src/market/index.js'
import { testIdentity, T0 } from '../helpers/cards.js'
import { denounce, makeCcb, makeRfp, vouch } from './contract-fixtures.js'

const [me, a, b, c, d, e] = [20, 21, 22, 23, 24, 25].map(testIdentity) as [Identity, Identity, Identity, Identity, Identity, Identity]
const rfp = makeRfp()
const NOW = T0 + 40
const M1 = sha256(utf8('m1'))

function bid (who: Identity, cost: bigint, opts: Partial<BidCandidate> & { expires?: number } = {}): BidCandidate {
  const { expires, ...rest } = opts
  return {
    ccb: makeCcb(rfp, { bid: { cost, currency: 'wei', frequency: 'one-time', prepay: false, x402: { base_url: '' } }, ...(expires !== undefined ? { cmesh: { expiresAtUnixSecs: expires } as any } : {}) }, who),
    verifiedLevel: 'Software',
    simulated: false,
    ...rest
  }
}

const open = (over: Partial<RequesterPolicy> = {}): RequesterPolicy => ({ mode: 'open', floor: 'Software', ...over })

// me → a, me → b, b → me, a → c, c → d; e is a stranger.
const graph: SignedTrust[] = [vouch(me, a), vouch(me, b), vouch(b, me), vouch(a, c), vouch(c, d)]

describe('requester policy: trust graph', () => {
  it('each mode\'s membership on a small graph', () => {
    const members = (mode: PolicyMode, depth = 2, trust = graph) => {
      const view = trustView(me.did, trust, depth)
      return [me, a, b, c, d, e].filter((x) => isMember(view, me.did, mode, x.did)).map((x) => ({ [me.did]: 'me', [a.did]: 'a', [b.did]: 'b', [c.did]: 'c', [d.did]: 'd', [e.did]: 'e' })[x.did])
    }
    assert.deepEqual(members('open'), ['me', 'a', 'b', 'c', 'd', 'e'])
    assert.deepEqual(members('only-me'), ['me', 'a', 'b'])
    assert.deepEqual(members('only-me', 3), ['me', 'a', 'b'], 'only-me ignores depth')
    assert.deepEqual(members('vouched', 1), ['me', 'a', 'b'])
    assert.deepEqual(members('vouched'), ['me', 'a', 'b', 'c'])
    assert.deepEqual(members('vouched', 3), ['me', 'a', 'b', 'c', 'd'])
    assert.deepEqual(members('mutuals'), ['me', 'b'])
    // A denounced voucher extends no trust: c is reached only through a.
    assert.deepEqual(members('vouched', 2, [...graph, denounce(me, a)]), ['me', 'b'])
  })

  it('denouncements count from me and from my vouched set within depth, never from strangers', () => {
    const view = (trust: SignedTrust[], depth = 2) => [...trustView(me.did, trust, depth).denounced]
    assert.deepEqual(view([...graph, denounce(c, e)]), [e.did], 'c is within depth 2')
    assert.deepEqual(view([...graph, denounce(c, e)], 1), [], 'c is beyond depth 1')
    assert.deepEqual(view([...graph, denounce(d, e)]), [], 'd is beyond depth 2')
    assert.deepEqual(view([...graph, denounce(e, a)]), [], 'a stranger\'s denouncement counts for nothing')
    assert.deepEqual(view([...graph, denounce(me, e)], 1), [e.did])
  })

  it('a denounced provider is refused (DENOUNCED) in every mode, even when cheapest', () => {
    for (const mode of POLICY_MODES) {
      const r = choose({ me: me.did, bids: [bid(a, 1n), bid(b, 100n)], trust: [...graph, vouch(a, me), denounce(c, a)], policy: { mode, floor: 'Software' }, now: NOW })
      assert.equal(r.chosen?.ccb.value.provider, b.did, mode)
      assert.deepEqual(r.refused.map((x) => [x.provider, x.code]), [[a.did, 'DENOUNCED']], mode)
    }
  })

  it('never chooses a denounced provider, whatever the graph, prices, mode and depth (fast-check)', () => {
    const people = [me, a, b, c, d, e]
    const vouches = new Map<string, SignedTrust>()
    const denouncements = new Map<string, SignedTrust>()
    for (const [i, x] of people.entries()) {
      for (const [j, y] of people.entries()) {
        if (i === j) continue
        vouches.set(`${i}>${j}`, vouch(x, y))
        denouncements.set(`${i}>${j}`, denounce(x, y))
      }
    }
    const bids = new Map<string, BidCandidate>()
    for (const [i, x] of people.entries()) for (let k = 0; k < 4; k++) bids.set(`${i}:${k}`, bid(x, BigInt(1 + k * 1000)))
    const edge = fc.tuple(fc.nat(5), fc.nat(5)).filter(([i, j]) => i !== j).map(([i, j]) => `${i}>${j}`)
    fc.assert(fc.property(
      fc.uniqueArray(edge, { maxLength: 14 }), fc.uniqueArray(edge, { minLength: 1, maxLength: 4 }),
      fc.uniqueArray(fc.tuple(fc.nat(5), fc.nat(3)).map(([i, k]) => `${i}:${k}`), { minLength: 1, maxLength: 10 }),
      fc.constantFrom(...POLICY_MODES), fc.integer({ min: 1, max: 3 }),
      (vs, ds, bs, mode, depth) => {
        const trust = [...vs.map((k) => vouches.get(k) as SignedTrust), ...ds.map((k) => denouncements.get(k) as SignedTrust)]
        // Oracle: who I reach through vouches within depth, and whom they (or I) denounce.
        const reach = new Set<number>([0])
        let frontier = [0]
        for (let h = 0; h < depth; h++) {
          frontier = vs.map((k) => k.split('>').map(Number) as [number, number]).filter(([i, j]) => frontier.includes(i) && !reach.has(j)).map(([, j]) => j)
          for (const j of frontier) reach.add(j)
        }
        const denounced = new Set(ds.map((k) => k.split('>').map(Number) as [number, number]).filter(([i]) => reach.has(i)).map(([, j]) => people[j]?.did))
        const r = choose({ me: me.did, bids: bs.map((k) => bids.get(k) as BidCandidate), trust, policy: { mode, depth, floor: 'Software' }, now: NOW })
        if (r.chosen !== undefined) assert.ok(!denounced.has(r.chosen.ccb.value.provider))
        for (const x of r.ranked) assert.ok(!denounced.has(x.ccb.value.provider))
        for (const x of r.refused) assert.equal(x.code === 'DENOUNCED', denounced.has(x.provider))
        assert.equal(r.ranked.length + r.refused.length, bs.length)
      }
    ), { numRuns: 400 })
  })
})

describe('requester policy: checks and ranking', () => {
  it('has the stable refusal code list, in check order', () => {
    assert.deepEqual([...REFUSAL_CODES], ['DENOUNCED', 'NOT_TRUSTED', 'CONTRACT_INVALID', 'BELOW_FLOOR', 'PRICE_OVER_CAP', 'MEASUREMENTS_MISMATCH', 'EXPIRED'])
  })

  it('refuses with each code', () => {
    const strayRfp = makeRfp({ createdAtUnixSecs: T0 + 1 })
    const cases: Array<[string, BidCandidate, Partial<RequesterPolicy>, SignedTrust[]]> = [
      ['DENOUNCED', bid(e, 1n), {}, [denounce(me, e)]],
      ['NOT_TRUSTED', bid(e, 1n), { mode: 'vouched' }, graph],
      ['CONTRACT_INVALID', { ...bid(a, 1n), ccb: makeCcb(strayRfp, {}, a) }, {}, []],
      ['BELOW_FLOOR', bid(a, 1n, { verifiedLevel: 'TdxLocal', ccb: makeCcb(rfp, { cmesh: { level: 'TdxRemote' } as any }, a) }), { floor: 'TdxRemote' }, []],
      ['BELOW_FLOOR', bid(a, 1n, { verifiedLevel: 'TdxRemote', simulated: true }), { floor: 'TdxLocal' }, []],
      ['PRICE_OVER_CAP', bid(a, 10n ** 15n + 1n), {}, []],
      ['PRICE_OVER_CAP', bid(a, 11n), { priceCapWei: 10n }, []],
      ['MEASUREMENTS_MISMATCH', bid(a, 1n), { expectedMeasurements: M1 }, []],
      ['MEASUREMENTS_MISMATCH', bid(a, 1n, { measurements: sha256(utf8('m2')) }), { expectedMeasurements: M1 }, []],
      ['EXPIRED', bid(a, 1n, { expires: NOW }), {}, []]
    ]
    for (const [code, x, over, trust] of cases) {
      const r = choose({ me: me.did, bids: [x], trust, policy: open(over), now: NOW, rfp })
      assert.equal(r.chosen, undefined, code)
      assert.equal(r.refused[0]?.code, code, `${code}: ${r.refused[0]?.detail}`)
      assert.equal(r.refused[0]?.uri, x.ccb.uri)
    }
    // The passing counterparts.
    const pass = (x: BidCandidate, over: Partial<RequesterPolicy> = {}) => choose({ me: me.did, bids: [x], trust: [], policy: open(over), now: NOW, rfp }).chosen
    assert.ok(pass(bid(a, 1n, { verifiedLevel: 'TdxRemote', simulated: true }), { floor: 'TdxLocal', allowSimulated: true }))
    assert.ok(pass(bid(a, 1n, { measurements: M1 }), { expectedMeasurements: M1 }))
    assert.ok(pass(bid(a, 10n ** 15n)))
    assert.ok(pass(bid(a, 1n, { expires: NOW + 1 })))
    // The RFP's own expected measurements apply when the policy names none.
    const pinned = makeRfp({ cmesh: { expectedMeasurements: M1 } as any })
    const pinnedBid = { ...bid(a, 1n), ccb: makeCcb(pinned, {}, a) }
    assert.equal(choose({ me: me.did, bids: [pinnedBid], trust: [], policy: open(), now: NOW, rfp: pinned }).refused[0]?.code, 'MEASUREMENTS_MISMATCH')
  })

  it('ranks by price, then verified level, then free capacity, then provider id', () => {
    const ranked = choose({
      me: me.did,
      bids: [
        bid(a, 300n),
        bid(b, 200n, { verifiedLevel: 'TdxLocal' }),
        bid(c, 200n, { verifiedLevel: 'TdxRemote' }),
        bid(d, 200n, { verifiedLevel: 'TdxLocal', freeCapacity: 5 }),
        bid(e, 100n, { verifiedLevel: 'Software' }),
        bid(me, 300n)
      ],
      trust: [],
      policy: open(),
      now: NOW
    }).ranked.map((x) => x.ccb.value.provider)
    const [first, second, third, fourth, ...last] = ranked
    assert.deepEqual([first, second, third, fourth], [e.did, c.did, d.did, b.did])
    assert.deepEqual(last, [a.did, me.did].sort(), 'equal in all else: by provider id')
    // Simulated evidence ranks as Software unless allowed.
    const sim = (allowSimulated: boolean) => choose({ me: me.did, bids: [bid(a, 1n), bid(b, 1n, { verifiedLevel: 'TdxRemote', simulated: true })], trust: [], policy: open({ allowSimulated }), now: NOW }).chosen?.ccb.value.provider
    assert.equal(sim(true), b.did)
    assert.equal(sim(false), [a.did, b.did].sort()[0])
  })

  it('refuses a bad policy with CONTRACT_BAD_ARGUMENT', () => {
    const bad = (e: unknown) => e instanceof ContractError && e.code === 'CONTRACT_BAD_ARGUMENT'
    assert.throws(() => choose({ me: me.did, bids: [], trust: [], policy: open({ depth: 0 }), now: NOW }), bad)
    assert.throws(() => choose({ me: me.did, bids: [], trust: [], policy: open({ mode: 'friends' as PolicyMode }), now: NOW }), bad)
    assert.throws(() => choose({ me: me.did, bids: [], trust: [], policy: open({ floor: 'Tdx' as AttestationLevel }), now: NOW }), bad)
    assert.deepEqual(choose({ me: me.did as Did, bids: [], trust: [], policy: open(), now: NOW }), { ranked: [], refused: [] })
  })
})
