import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import { verifyTdxQuote } from '../../src/attestation/tdx-verifier.js'
import { VerificationCache } from '../../src/attestation/verification-cache.js'
import { explain, formatReport, judge, mutate, prng, realSubject, runOracle, simulatedSubjects, STRICTER, type Subject } from './oracle-harness.js'
import { needsFixtures } from '../helpers/tdx.js'

// A small deterministic sample; scripts/bench/oracle.ts runs the same harness with --count 10000.
const SAMPLE = 120

describe('differential oracle: the project verifier against @phala/dcap-qvl alone', () => {
  let simulated: Subject[]
  before(async () => { simulated = await simulatedSubjects() })

  it('real fixtures unmutated: the v4 quote accepted by both, the v5 refused by both', needsFixtures, async () => {
    for (const [dir, accepted] of [['v4-uptodate', true], ['v5-out-of-tcb', false]] as const) {
      const s = realSubject(dir)
      const o = await judge(s, { kind: 'unmutated', detail: '', quote: s.quote, collateral: s.collateral, at: s.at }, new VerificationCache())
      assert.equal(o.dcap.accepted, accepted, `${dir}: dcap-qvl ${o.dcap.message ?? ''}`)
      assert.equal(o.cold.accepted, accepted, `${dir}: ${o.cold.reason ?? ''}`)
      assert.equal(o.verdict, accepted ? 'agree-accept' : 'agree-refuse')
    }
  })

  it('simulated quotes (v4 and v5 TD 1.5) under their test root: accepted by both, and the fast path reached', async () => {
    for (const s of simulated.slice(0, 2)) {
      const cache = new VerificationCache()
      const o = await judge(s, { kind: 'unmutated', detail: '', quote: s.quote, collateral: s.collateral, at: s.at }, cache)
      assert.equal(o.verdict, 'agree-accept', `${s.name}: dcap ${o.dcap.message ?? 'accepts'}; ours ${o.cold.reason ?? 'accepts'}`)
      assert.equal(cache.stats.warm, 1, `${s.name}: the second verification takes the fast path`)
    }
  })

  it('a forged root CRL is refused by us only, for the listed reason', async () => {
    const s = simulated.find((x) => x.name.includes('forged')) as Subject
    const o = await judge(s, { kind: 'unmutated', detail: '', quote: s.quote, collateral: s.collateral, at: s.at }, new VerificationCache())
    assert.equal(o.verdict, 'stricter')
    assert.deepEqual(o.stricter?.codes, ['CRL_SIGNATURE'])
  })

  it('an unexplained refusal is reported as such (the oracle can fail)', () => {
    assert.equal(explain({ accepted: false, code: 'QUOTE_SIGNATURE', reason: 'x', simulated: true, rootSha256: '', verifiedAtUnixSecs: 0, advisoryIds: [] }), undefined)
    assert.ok(STRICTER.every((x) => x.why.length > 0))
  })

  it('mutations are deterministic for a seed', async () => {
    const s = simulated[0] as Subject
    const a = prng(5)
    const b = prng(5)
    for (let i = 0; i < 20; i++) {
      const x = mutate(s, a)
      const y = mutate(s, b)
      assert.equal(`${x.kind} ${x.detail}`, `${y.kind} ${y.detail}`)
      assert.deepEqual(x.quote, y.quote)
    }
  })

  it(`${SAMPLE} seeded mutations: same accept/refuse as dcap-qvl or a listed stricter refusal; the fast path gives the full path's verdict`, async () => {
    const subjects = [...('skip' in needsFixtures ? [] : [realSubject('v4-uptodate'), realSubject('v5-out-of-tcb')]), ...simulated]
    const report = await runOracle(subjects, { count: SAMPLE, seed: 1 })
    assert.equal(report.failures.length, 0, formatReport(report))
    assert.ok(report.warmHits > 0, 'some mutations went through the fast path')
    let agree = 0
    for (const row of report.table.values()) agree += row.agreeAccept + row.agreeRefuse
    assert.ok(agree > SAMPLE / 2, formatReport(report))
  })

  it('the fast path verdict equals the full path verdict field by field on an accepted quote', needsFixtures, async () => {
    const s = realSubject('v4-uptodate')
    const cache = new VerificationCache()
    const options = { anchor: s.anchor, atUnixSecs: s.at }
    const full = await verifyTdxQuote(s.quote, s.collateral, { ...options, cache: false })
    await verifyTdxQuote(s.quote, s.collateral, { ...options, cache })
    const fast = await verifyTdxQuote(s.quote, s.collateral, { ...options, cache })
    assert.equal(cache.stats.warm, 1)
    assert.deepEqual(fast, full)
  })
})
