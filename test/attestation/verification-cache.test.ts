import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { verifyTdxQuote, type VerifyOptions } from '../../src/attestation/tdx-verifier.js'
import { collateralKey, sharedVerificationCache, VerificationCache } from '../../src/attestation/verification-cache.js'
import { BoundedLru } from '../../src/attestation/bounded-lru.js'
import { createCollateral, createQuote, createTestPki, issuePckLeaf, reissueCrls, testRootDer, type CrlOptions, type TestPki } from '../../src/attestation/simulator.js'
import { trustAnchorFromDer } from '../../src/attestation/trust-anchor.js'
import type { Collateral } from '../../src/attestation/collateral.js'

const DAY = 86_400

function under (pki: TestPki, cache: VerificationCache | false) {
  const anchor = trustAnchorFromDer(testRootDer(pki))
  const now = Math.floor(+pki.now / 1000)
  return async (quote: Uint8Array, collateral: Collateral, at = now, extra: Partial<VerifyOptions> = {}) =>
    await verifyTdxQuote(quote, collateral, { anchor, atUnixSecs: at, cache, ...extra })
}

describe('VerificationCache: a cached success never outlives what it was checked against', () => {
  it('a second quote under the same collateral and chain takes the fast path, with the full path\'s verdict', async () => {
    const pki = await createTestPki()
    const cache = new VerificationCache()
    const verify = under(pki, cache)
    const collateral = await createCollateral(pki)
    assert.equal((await verify(await createQuote(pki), collateral)).accepted, true)
    assert.deepEqual(cache.stats, { warm: 0, cold: 1 })
    const second = await createQuote(pki, { reportData: new Uint8Array(64).fill(3) })
    const fast = await verify(second, collateral)
    assert.deepEqual(cache.stats, { warm: 1, cold: 1 })
    assert.deepEqual(fast, await under(pki, false)(second, collateral))
  })

  it('a PCK leaf revoked by a newer CRL is refused although its chain is cached (issuer-aware, and dcap-qvl\'s any-CRL rule)', async () => {
    const pki = await createTestPki()
    const other = await issuePckLeaf(pki, { serialNumber: '77aa01' })
    const cache = new VerificationCache()
    const verify = under(pki, cache)
    const quote = await createQuote(pki)
    assert.equal((await verify(quote, await createCollateral(pki))).accepted, true)

    const cases: Array<[string, CrlOptions]> = [
      ['the PCK CRL lists the leaf', { revokedPckSerials: [pki.pckLeaf.serialNumber] }],
      ['the root CRL lists the leaf\'s serial (wrong issuer: only dcap-qvl\'s rule refuses it)', { revokedRootSerials: [pki.pckLeaf.serialNumber] }]
    ]
    for (const [what, crls] of cases) {
      const newer = await createCollateral(await reissueCrls(pki, crls))
      // Another platform's quote gets the newer collateral verified and cached too.
      assert.equal((await verify(await createQuote(other), newer)).accepted, true, what)
      const warm = cache.stats.warm
      const r = await verify(await createQuote(pki), newer)
      assert.equal(cache.stats.warm, warm + 1, `${what}: both cached, so the fast path decided`)
      assert.equal(r.code, 'PCK_REVOKED', `${what}: ${r.reason ?? 'accepted'}`)
      assert.equal((await under(pki, false)(quote, newer)).code, 'PCK_REVOKED', what)
    }
    // The older collateral still accepts the leaf: revocation follows the CRL at hand.
    assert.equal((await verify(quote, await createCollateral(pki))).accepted, true)
  })

  it('an expired CRL, an expired PCK leaf and expired TCB Info are refused after a cached success', async () => {
    const pki = await createTestPki({ crlValidForDays: 2, pckLeafValidForDays: 5 })
    const cache = new VerificationCache()
    const verify = under(pki, cache)
    const now = Math.floor(+pki.now / 1000)
    const quote = await createQuote(pki)
    const collateral = await createCollateral(pki, { validForDays: 30 })
    assert.equal((await verify(quote, collateral, now)).accepted, true)
    const day1 = await verify(quote, collateral, now + DAY)
    assert.equal(day1.accepted, true, day1.reason)
    assert.equal(cache.stats.warm, 1, 'a day later, inside every window: the fast path')

    const crlExpired = await verify(quote, collateral, now + 3 * DAY)
    assert.equal(crlExpired.code, 'COLLATERAL_EXPIRED', crlExpired.reason)
    assert.match(crlExpired.reason ?? '', /CRL is not current/)
    const beforeCrl = await verify(quote, collateral, now - 2 * DAY)
    assert.equal(beforeCrl.code, 'COLLATERAL_EXPIRED', beforeCrl.reason)
    assert.equal(cache.stats.warm, 1, 'outside the window, the full path decided')

    // A later CRL (current then) makes the same leaf and TCB Info verifiable, until the leaf expires.
    const later = await createCollateral(await reissueCrls(pki, { now: new Date(+pki.now + 4 * DAY) }), { validForDays: 30 })
    assert.equal((await verify(quote, later, now + 4 * DAY)).accepted, true)
    const leafExpired = await verify(quote, later, now + 6 * DAY)
    assert.equal(leafExpired.code, 'PCK_CHAIN', leafExpired.reason)
    assert.match(leafExpired.reason ?? '', /not valid at/)

    const shortTcb = await createCollateral(await reissueCrls(pki, { validForDays: 30 }), { validForDays: 1 })
    assert.equal((await verify(quote, shortTcb, now)).accepted, true)
    const tcbExpired = await verify(quote, shortTcb, now + 2 * DAY)
    assert.equal(tcbExpired.code, 'COLLATERAL_EXPIRED', tcbExpired.reason)
  })

  it('changed TCB Info (re-signed, same chains and CRLs) is judged on its own content, not on a cached match', async () => {
    const pki = await createTestPki()
    const cache = new VerificationCache()
    const verify = under(pki, cache)
    const quote = await createQuote(pki)
    const original = await createCollateral(pki)
    assert.equal((await verify(quote, original)).tcbStatus, 'UpToDate')
    assert.equal((await verify(quote, original)).accepted, true)
    assert.equal(cache.stats.warm, 1)

    const downgraded = await createCollateral(pki, { editTcbInfo: (t) => { t.tcbLevels[0].tcbStatus = 'OutOfDate'; t.tcbLevels[0].advisoryIDs = ['INTEL-SA-01234'] } })
    for (let i = 0; i < 2; i++) {
      const r = await verify(quote, downgraded)
      assert.equal(r.code, 'TCB_STATUS', r.reason)
      assert.equal(r.tcbStatus, 'OutOfDate')
      assert.deepEqual(r.advisoryIds, ['INTEL-SA-01234'])
    }
    assert.equal(cache.stats.warm, 2, 'the downgraded TCB Info was cached once verified, and its own match used')
    const revoked = await createCollateral(pki, { editTcbInfo: (t) => { t.tcbLevels[0].tcbStatus = 'Revoked' } })
    assert.equal((await verify(quote, revoked)).code, 'TCB_STATUS')
    assert.equal((await verify(quote, revoked)).code, 'TCB_STATUS')
    // The original TCB Info still gives UpToDate on the fast path: its match was not overwritten.
    assert.equal((await verify(quote, original)).tcbStatus, 'UpToDate')
    assert.equal(cache.stats.warm, 3)
  })

  it('is bounded: with room for one collateral, two alternating collaterals are each verified in full', async () => {
    const pki = await createTestPki()
    const cache = new VerificationCache({ collaterals: 1 })
    const verify = under(pki, cache)
    const quote = await createQuote(pki)
    const [a, b] = [await createCollateral(pki), await createCollateral(pki)] as [Collateral, Collateral]
    for (const c of [a, b, a, b]) assert.equal((await verify(quote, c)).accepted, true)
    assert.deepEqual(cache.stats, { warm: 0, cold: 4 })
    assert.equal((await verify(quote, b)).accepted, true)
    assert.deepEqual(cache.stats, { warm: 1, cold: 4 })

    const lru = new BoundedLru<string, number>(2)
    lru.set('x', 1)
    lru.set('y', 2)
    lru.get('x')
    lru.set('z', 3)
    assert.deepEqual([lru.get('x'), lru.get('y'), lru.get('z'), lru.size], [1, undefined, 3, 2])
    assert.throws(() => new BoundedLru(0), RangeError)
  })

  it('takes the full path with cache: false or a time that is not a whole second, and shares one cache by default', async () => {
    const pki = await createTestPki()
    const cache = new VerificationCache()
    const verify = under(pki, cache)
    const quote = await createQuote(pki)
    const collateral = await createCollateral(pki)
    const now = Math.floor(+pki.now / 1000)
    await verify(quote, collateral, now)
    assert.equal((await verify(quote, collateral, now + 0.5)).accepted, true)
    assert.deepEqual(cache.stats, { warm: 0, cold: 2 })

    const shared = { ...sharedVerificationCache.stats }
    const byDefault = async () => await verifyTdxQuote(quote, collateral, { anchor: trustAnchorFromDer(testRootDer(pki)), atUnixSecs: now })
    await byDefault()
    await byDefault()
    assert.equal(sharedVerificationCache.stats.warm - shared.warm, 1)
    assert.equal(sharedVerificationCache.stats.cold - shared.cold, 1)
  })

  it('keys collateral by every field\'s bytes and the anchor; a field that is not a well-formed string is never cached', async () => {
    const pki = await createTestPki()
    const other = await createTestPki()
    const anchor = trustAnchorFromDer(testRootDer(pki))
    const c = await createCollateral(pki)
    const key = collateralKey(anchor, c)
    assert.equal(typeof key, 'string')
    assert.equal(collateralKey(anchor, { ...c }), key)
    assert.notEqual(collateralKey(trustAnchorFromDer(testRootDer(other)), c), key)
    for (const field of Object.keys(c) as Array<keyof Collateral>) {
      assert.notEqual(collateralKey(anchor, { ...c, [field]: c[field] + ' ' }), key, field)
    }
    assert.equal(collateralKey(anchor, { ...c, tcb_info: 1 as unknown as string }), undefined)
    assert.equal(collateralKey(anchor, { ...c, qe_identity: c.qe_identity.slice(0, -1) + '\ud800' }), undefined)
  })
})
