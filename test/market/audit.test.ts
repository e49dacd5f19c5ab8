import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import {
  levelMix, rankByFee, committeeReport, capacityReport, isOverClaim, AuditError, type AttestationLevel
} from '../../src/market/index.js'
import { cardAt, testIdentity, T0 } from '../helpers/cards.js'

const cards = [
  cardAt(testIdentity(1), T0, 'Software', 30n),
  cardAt(testIdentity(2), T0, 'TdxRemote', 10n),
  cardAt(testIdentity(3), T0, 'TdxRemote', 20n),
  cardAt(testIdentity(4), T0, 'TdxPlusReproducibleBuild', 40n)
].map((c) => c.value)
// Evidence proved TdxRemote for providers 2 and 4; 3 claims TdxRemote but proved nothing.
const verified = new Map<string, AttestationLevel>([[testIdentity(2).did, 'TdxRemote'], [testIdentity(4).did, 'TdxRemote']])

describe('consumer audit', () => {
  it('counts claimed and verified levels side by side and flags over-claims', () => {
    const mix = Object.fromEntries(levelMix(cards, verified).map((r) => [r.level, [r.claimed, r.verified]]))
    assert.deepEqual(mix, {
      Software: [1, 2], TdxLocal: [0, 0], TdxRemote: [2, 2], TdxRaTlsBidirectional: [0, 0], TdxPlusReproducibleBuild: [1, 0]
    })
    assert.deepEqual(cards.map((c) => isOverClaim(c, verified)), [false, false, true, true])
  })

  it('ranks eligible providers by fee using the verified level', () => {
    assert.deepEqual(rankByFee(cards, verified, { floor: 'TdxRemote' }).map((c) => c.feePerPartialWei), [10n, 40n])
    assert.deepEqual(rankByFee(cards, verified, { floor: 'Software' }).map((c) => c.feePerPartialWei), [10n, 20n, 30n, 40n])
    assert.deepEqual(rankByFee(cards, verified, { floor: 'Software', scheme: 'frost-ed25519' }), [])
  })

  it('forecasts threshold × mean(fee) and says how many committee members are missing', () => {
    const r = committeeReport(cards, verified, { floor: 'TdxRemote' }, 2, 3)
    assert.equal(r.eligible, 2)
    assert.equal(r.missing, 1)
    assert.equal(r.meanFeeWei, 25n)
    assert.equal(r.forecastWei, 50n)
    assert.deepEqual(r.cheapest, [testIdentity(2).did, testIdentity(4).did])
    const all = committeeReport(cards, verified, { floor: 'Software' }, 3, 4)
    assert.equal(all.missing, 0)
    assert.equal(all.forecastWei, 75n)
    const none = committeeReport(cards, verified, { floor: 'TdxPlusReproducibleBuild' }, 1, 1)
    assert.equal(none.forecastWei, undefined)
    assert.throws(() => committeeReport(cards, verified, { floor: 'Software' }, 4, 3), AuditError)
  })

  it('sums capacity against a burst', () => {
    assert.deepEqual(capacityReport(cards, verified, { floor: 'TdxRemote' }, 25), { burstPerSecond: 25, capacityPerSecond: 20, sufficient: false, shortfall: 5 })
    assert.equal(capacityReport(cards, verified, { floor: 'Software' }, 40).sufficient, true)
  })
})
