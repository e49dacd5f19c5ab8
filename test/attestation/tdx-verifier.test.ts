import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import { verifyTdxQuote } from '../../src/attestation/tdx-verifier.js'
import { parseTdxQuote } from '../../src/attestation/quote.js'
import { intelTrustAnchor, trustAnchorFromDer, INTEL_SGX_ROOT_CA_SHA256, type TrustAnchor } from '../../src/attestation/trust-anchor.js'
import { createTestPki, createCollateral, createQuote, testRootDer, type TestPki } from '../../src/attestation/simulator.js'
import { AttestationError } from '../../src/attestation/errors.js'
import { tcbPolicy } from '../../src/attestation/policy.js'
import type { Collateral } from '../../src/attestation/collateral.js'
import { fixture, flip, FIXTURES, needsFixtures } from '../helpers/tdx.js'

const intel = intelTrustAnchor()

describe('TDX verification: real Intel quotes', needsFixtures, () => {
  it('accepts the v4 fixture at its time: UpToDate, expected MRTD and REPORTDATA, not simulated', async () => {
    const { quote, collateral, at } = fixture('v4-uptodate')
    const r = await verifyTdxQuote(quote, collateral, { anchor: intel, atUnixSecs: at })
    assert.equal(r.accepted, true, r.reason)
    assert.equal(r.tcbStatus, 'UpToDate')
    assert.deepEqual(r.advisoryIds, [])
    assert.equal(r.simulated, false)
    assert.equal(r.rootSha256, INTEL_SGX_ROOT_CA_SHA256)
    assert.ok(r.measurements?.mrTd.startsWith('91eb2b44d141d4ec'))
    assert.ok(r.measurements?.reportData.startsWith('9a9d48e7f6799642'))
    assert.equal(r.quoteVersion, 4)
    assert.equal(r.fmspc, 'b0c06f000000')
  })

  it('refuses the v5 fixture: no TCB level matches', async () => {
    const { quote, collateral, at } = fixture('v5-out-of-tcb')
    const r = await verifyTdxQuote(quote, collateral, { anchor: intel, atUnixSecs: at })
    assert.equal(r.accepted, false)
    assert.equal(r.code, 'TCB_NO_MATCH')
    assert.equal(r.quoteVersion, 5)
    assert.equal(r.bodyType, 'td15')
  })

  it('refuses a flipped byte in REPORTDATA, MRTD or the quote signature', async () => {
    const { quote, collateral, at } = fixture('v4-uptodate')
    for (const [what, offset] of [['REPORTDATA', 568], ['MRTD', 184], ['signature', 636]] as const) {
      const r = await verifyTdxQuote(flip(quote, offset), collateral, { anchor: intel, atUnixSecs: at })
      assert.equal(r.code, 'QUOTE_SIGNATURE', `${what}: ${r.reason}`)
    }
  })

  it('refuses expired collateral (a day after the TCB Info nextUpdate)', async () => {
    const { quote, collateral } = fixture('v4-uptodate')
    const nextUpdate = Date.parse(JSON.parse(collateral.tcb_info).nextUpdate) / 1000
    const r = await verifyTdxQuote(quote, collateral, { anchor: intel, atUnixSecs: nextUpdate + 86400 })
    assert.equal(r.code, 'COLLATERAL_EXPIRED', r.reason)
  })

  it('refuses a CRL whose signature does not verify', async () => {
    const { quote, collateral, at } = fixture('v4-uptodate')
    const crl = Buffer.from(collateral.root_ca_crl, 'hex')
    crl[crl.length - 5] = (crl[crl.length - 5] as number) ^ 0x01 // inside the signature's s value
    const r = await verifyTdxQuote(quote, { ...collateral, root_ca_crl: crl.toString('hex') }, { anchor: intel, atUnixSecs: at })
    assert.equal(r.code, 'CRL_SIGNATURE', r.reason)
  })

  it('refuses a real quote under any other root', async () => {
    const pki = await createTestPki()
    const { quote, collateral, at } = fixture('v4-uptodate')
    const r = await verifyTdxQuote(quote, collateral, { anchor: trustAnchorFromDer(testRootDer(pki)), atUnixSecs: at })
    assert.equal(r.code, 'ROOT_MISMATCH', r.reason)
  })

  it('parses the parse-only quotes and refuses malformed input with typed codes', async () => {
    for (const name of ['quote-from-tappd-2024-11.hex', 'tdx-quote-2024-10.hex']) {
      const q = parseTdxQuote(Buffer.from(readFileSync(new URL(`parse-only/${name}`, FIXTURES), 'utf8').trim().replace(/^0x/, ''), 'hex'))
      assert.equal(q.version, 4)
      assert.ok(q.pckChainPem.includes('BEGIN CERTIFICATE'))
    }
    const { quote, collateral, at } = fixture('v4-uptodate')
    assert.equal(parseTdxQuote(quote).paddingBytes, 70)
    const check = async (bytes: Uint8Array, code: string) => {
      assert.equal((await verifyTdxQuote(bytes, collateral, { anchor: intel, atUnixSecs: at })).code, code)
    }
    await check(flip(quote, quote.length - 1), 'QUOTE_TRAILING_BYTES')
    await check(quote.subarray(0, 1000), 'QUOTE_MALFORMED')
    await check(new Uint8Array(70_000), 'QUOTE_TOO_LARGE')
    await check(flip(quote, 0), 'QUOTE_UNSUPPORTED')
  })

  it('never throws on mutated quotes: each is refused with a code (fast-check)', async () => {
    const { quote, collateral, at } = fixture('v4-uptodate')
    await fc.assert(fc.asyncProperty(fc.nat(quote.length - 1), fc.integer({ min: 1, max: 255 }), async (offset, xor) => {
      const bytes = Uint8Array.from(quote)
      bytes[offset] = (bytes[offset] as number) ^ xor
      const r = await verifyTdxQuote(bytes, collateral, { anchor: intel, atUnixSecs: at })
      // A flip inside the PEM's base64 line breaks can leave the chain decodable; anything accepted must be byte-identical in the signed part.
      if (r.accepted) assert.ok(offset >= 1258, `accepted a change at ${offset}`)
      else assert.ok(typeof r.code === 'string')
    }), { numRuns: 150, seed: 7 })
  })
})

describe('TDX verification: the simulator and its TEST-ONLY root', () => {
  let pki: TestPki
  let collateral: Collateral
  let anchor: TrustAnchor
  const now = () => Math.floor(Date.now() / 1000)
  before(async () => {
    pki = await createTestPki()
    collateral = await createCollateral(pki)
    anchor = trustAnchorFromDer(testRootDer(pki))
  })

  it('a simulated quote verifies under its test root, labelled simulated, carrying the REPORTDATA asked for', async () => {
    const reportData = new Uint8Array(64).fill(0x42)
    const r = await verifyTdxQuote(await createQuote(pki, { reportData }), collateral, { anchor, atUnixSecs: now() })
    assert.equal(r.accepted, true, r.reason)
    assert.equal(r.simulated, true)
    assert.equal(r.measurements?.reportData, '42'.repeat(64))
  })

  it('is refused under the Intel root, and production mode refuses the test root outright', async () => {
    const r = await verifyTdxQuote(await createQuote(pki), collateral, { anchor: intel, atUnixSecs: now() })
    assert.equal(r.code, 'ROOT_MISMATCH', r.reason)
    assert.throws(() => trustAnchorFromDer(testRootDer(pki), { production: true }), (e: unknown) => e instanceof AttestationError && e.code === 'ROOT_NOT_INTEL')
    assert.equal(trustAnchorFromDer(intel.der, { production: true }).simulated, false)
  })

  it('refuses a revoked PCK certificate', async () => {
    const revoked = await createTestPki({ revokePckLeaf: true })
    const r = await verifyTdxQuote(await createQuote(revoked), await createCollateral(revoked), { anchor: trustAnchorFromDer(testRootDer(revoked)), atUnixSecs: now() })
    assert.equal(r.code, 'PCK_REVOKED', r.reason)
  })

  it('refuses a root CRL signed by the wrong key (the check dcap-qvl lacks)', async () => {
    const forged = await createTestPki({ forgeRootCrlSignature: true })
    const r = await verifyTdxQuote(await createQuote(forged), await createCollateral(forged), { anchor: trustAnchorFromDer(testRootDer(forged)), atUnixSecs: now() })
    assert.equal(r.code, 'CRL_SIGNATURE', r.reason)
  })

  it('applies the TCB policy (UpToDate only by default) and the TDX module levels', async () => {
    // Module ISVSVN 5 of TDX_01 is OutOfDate in the test TCB Info while the platform level is UpToDate.
    const quote = await createQuote(pki, { teeTcbSvn: Uint8Array.from([5, 1, 3]) })
    const r = await verifyTdxQuote(quote, collateral, { anchor, atUnixSecs: now() })
    assert.equal(r.code, 'TCB_STATUS', r.reason)
    assert.equal(r.tdxModuleStatus, 'OutOfDate')
    const lenient = await verifyTdxQuote(quote, collateral, { anchor, atUnixSecs: now(), policy: { acceptedTcbStatuses: ['UpToDate', 'OutOfDate'] } })
    assert.equal(lenient.accepted, true, lenient.reason)
    assert.deepEqual(tcbPolicy({ allowSwHardeningNeeded: true }).acceptedTcbStatuses, ['UpToDate', 'SWHardeningNeeded'])
  })

  it('refuses DEBUG TDs, unexpected measurements and an unexpected REPORTDATA', async () => {
    const debug = await createQuote(pki, { tdAttributes: Buffer.from('0100001000000000', 'hex') })
    assert.equal((await verifyTdxQuote(debug, collateral, { anchor, atUnixSecs: now() })).code, 'TD_ATTRIBUTES')
    const mrTd = new Uint8Array(48).fill(1)
    const quote = await createQuote(pki, { mrTd, reportData: new Uint8Array(64).fill(2) })
    const ok = await verifyTdxQuote(quote, collateral, { anchor, atUnixSecs: now(), policy: { ...tcbPolicy(), expected: { mrTd }, reportData: new Uint8Array(64).fill(2) } })
    assert.equal(ok.accepted, true, ok.reason)
    const wrongMr = await verifyTdxQuote(quote, collateral, { anchor, atUnixSecs: now(), policy: { ...tcbPolicy(), expected: { mrTd: new Uint8Array(48) } } })
    assert.equal(wrongMr.code, 'MEASUREMENT_MISMATCH')
    const wrongRd = await verifyTdxQuote(quote, collateral, { anchor, atUnixSecs: now(), policy: { ...tcbPolicy(), reportData: new Uint8Array(64) } })
    assert.equal(wrongRd.code, 'REPORT_DATA_MISMATCH')
  })
})
