/**
 * A small sample of `npm run fuzz` (scripts/fuzz/): every target, a few thousand structure-aware
 * mutants each (fewer for quote and collateral verification), in a few seconds. No untyped error,
 * no slow input and no accepted non-original of a signed format may appear.
 */
import '../../src/node/polyfills.js'
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { buildTargets } from '../../scripts/fuzz/targets.js'
import { formatSummary, runFuzz } from '../../scripts/fuzz/harness.js'

const COUNT = 2000
const VERIFY_COUNT = 60

describe('fuzz sample (scripts/fuzz)', () => {
  it(`${COUNT} mutants per decoder, ${VERIFY_COUNT} per verifier: only typed refusals, none slow, no forgery`, async (t) => {
    const targets = await buildTargets()
    const summary = await runFuzz(targets, { count: COUNT, expensiveCount: VERIFY_COUNT, seconds: 5, seed: 'cmesh-fuzz-sample' })
    const text = formatSummary(summary, `(in-process) count ${COUNT}, verify-count ${VERIFY_COUNT}, seed cmesh-fuzz-sample`)
    for (const line of text.split('\n').slice(0, targets.length + 4)) t.diagnostic(line)
    assert.ok(!summary.failed, text)
    for (const r of summary.reports) {
      assert.equal(r.crashes + r.slow + r.forgeries + r.seedRefused, 0, `${r.name}\n${text}`)
      assert.ok(r.inputs >= Math.min(r.name.endsWith('.verify') ? VERIFY_COUNT : COUNT, 200), `${r.name} ran only ${r.inputs} inputs`)
    }
    // The mutants reach every step of the record pipeline, not just the CBOR parser.
    const card = summary.reports.find((r) => r.name === 'card')
    for (const code of ['RECORD_MALFORMED', 'RECORD_NON_CANONICAL', 'RECORD_SCHEMA', 'RECORD_BAD_SIGNATURE', 'RECORD_UNKNOWN_TYPE', 'RECORD_UNSUPPORTED_VERSION']) {
      assert.ok((card?.refusals[code] ?? 0) > 0, `no card mutant reached ${code}`)
    }
  })
})
