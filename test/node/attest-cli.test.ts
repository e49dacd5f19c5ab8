import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runCli } from '../helpers/cli.js'
import { FIXTURES, needsFixtures } from '../helpers/tdx.js'

const fx = (p: string) => fileURLToPath(new URL(p, FIXTURES))

describe('cmesh attest verify / simulate', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'cmesh-attest-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('accepts the real v4 quote at its time (exit 0) and prints status and measurements', needsFixtures, async () => {
    const r = await runCli(['attest', 'verify', fx('v4-uptodate/quote.bin'), '--collateral', fx('v4-uptodate/collateral.json'), '--at', '1751624655'], dir)
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /verdict:\s+ACCEPTED\n/)
    assert.match(r.stdout, /TCB status:\s+UpToDate/)
    assert.match(r.stdout, /MRTD\s+91eb2b44d141d4ec/)
    assert.doesNotMatch(r.stdout, /SIMULATED/)
  })

  it('refuses the v5 quote (exit 1) with its code, in JSON too', needsFixtures, async () => {
    const r = await runCli(['attest', 'verify', fx('v5-out-of-tcb/quote.bin'), '--collateral', fx('v5-out-of-tcb/collateral.json'), '--at', '1772707833', '--json'], dir)
    assert.equal(r.code, 1)
    const out = JSON.parse(r.stdout)
    assert.equal(out.accepted, false)
    assert.equal(out.code, 'TCB_NO_MATCH')
  })

  it('simulate writes a quote that verifies only under its test root, labelled simulated; production refuses that root', async () => {
    const out = join(dir, 'sim')
    const s = await runCli(['attest', 'simulate', '--out', out, '--report-data', 'ab'.repeat(64)], dir)
    assert.equal(s.code, 0, s.stderr)
    const args = [join(out, 'quote.bin'), '--collateral', join(out, 'collateral.json')]
    const ok = await runCli(['attest', 'verify', ...args, '--root', join(out, 'test-root.pem'), '--json'], dir)
    assert.equal(ok.code, 0, ok.stdout + ok.stderr)
    const verdict = JSON.parse(ok.stdout)
    assert.equal(verdict.simulated, true)
    assert.equal(verdict.measurements.reportData, 'ab'.repeat(64))
    const intel = await runCli(['attest', 'verify', ...args], dir)
    assert.equal(intel.code, 1)
    assert.match(intel.stdout, /REFUSED \(ROOT_MISMATCH\)/)
    const prod = await runCli(['attest', 'verify', ...args, '--root', join(out, 'test-root.pem'), '--production'], dir)
    assert.equal(prod.code, 1)
    assert.match(prod.stderr, /ROOT_NOT_INTEL/)
  })
})
