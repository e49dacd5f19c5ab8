import { describe, it, before } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { webcrypto, X509Certificate } from 'node:crypto'
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import fc from 'fast-check'
import { verifyTdxQuote } from '../../src/attestation/tdx-verifier.js'
import { parseTdxQuote } from '../../src/attestation/quote.js'
import { intelTrustAnchor, trustAnchorFromDer, INTEL_SGX_ROOT_CA_SHA256, type TrustAnchor } from '../../src/attestation/trust-anchor.js'
import { createTestPki, createCollateral, createQuote, testRootDer, type TestPki } from '../../src/attestation/simulator.js'
import { AttestationError } from '../../src/attestation/errors.js'
import { tcbPolicy } from '../../src/attestation/policy.js'
import { parseCollateral, type Collateral } from '../../src/attestation/collateral.js'
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

// --- Codes that say what failed (hardening issue): collateral, chain signatures, certificate encoding.

const u16le = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b }
const u32le = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b }

/** The quote with another PEM chain in its certification data (the chain is not under any signature). */
function withPckChain (quote: Uint8Array, pem: string): Uint8Array {
  const q = parseTdxQuote(quote)
  const chain = Buffer.concat([Buffer.from(pem, 'latin1'), Buffer.from([0])])
  const certData = Buffer.concat([q.qeReportBytes, q.qeReportSignature, u16le(q.qeAuthData.length), q.qeAuthData, u16le(5), u32le(chain.length), chain])
  const sigData = Buffer.concat([q.signature, q.attestationKey, u16le(6), u32le(certData.length), certData])
  return Buffer.concat([q.signedBytes, u32le(sigData.length), sigData])
}

const pemBlocks = (pem: string): Uint8Array[] => [...pem.matchAll(/-----BEGIN CERTIFICATE-----\n?([^-]*)-----END CERTIFICATE-----/g)].map((m) => Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64'))
const toPem = (ders: Uint8Array[]) => ders.map((d) => `-----BEGIN CERTIFICATE-----\n${(Buffer.from(d).toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END CERTIFICATE-----\n`).join('')
const chainOf = (quote: Uint8Array) => pemBlocks(parseTdxQuote(quote).pckChainPem)

/** A DER certificate with one byte of its signature value (the last byte of s) flipped: still DER, no longer a valid signature. */
const badSignature = (der: Uint8Array) => flip(der, der.length - 1)

/** A DER certificate with its public key's last coordinate byte flipped: parses, but the point is off the curve. */
function badPublicKey (der: Uint8Array): Uint8Array {
  const spki = new X509Certificate(der).publicKey.export({ type: 'spki', format: 'der' })
  return flip(der, Buffer.from(der).indexOf(spki) + spki.length - 1)
}

/** Re-issues `cert` (same names, key, validity and extensions) signed by `key` instead of its issuer. */
async function resigned (cert: x509.X509Certificate, key: webcrypto.CryptoKey): Promise<x509.X509Certificate> {
  return await x509.X509CertificateGenerator.create({
    serialNumber: cert.serialNumber,
    subject: cert.subjectName,
    issuer: cert.issuerName,
    publicKey: cert.publicKey,
    signingKey: key,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    extensions: cert.extensions
  })
}

const strayKey = async () => (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])).privateKey
const signJson = async (pki: TestPki, text: string) => Buffer.from(await webcrypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, pki.keys.tcb.privateKey, Buffer.from(text))).toString('hex')
const certPem = (...certs: x509.X509Certificate[]) => certs.map((c) => c.toString('pem')).join('\n') + '\n'

describe('TDX verification: verdict codes say what failed', () => {
  let pki: TestPki
  let collateral: Collateral
  let anchor: TrustAnchor
  let quote: Uint8Array
  const now = () => Math.floor(Date.now() / 1000)
  const verify = async (q: Uint8Array, c: unknown = collateral) => await verifyTdxQuote(q, c as Collateral, { anchor, atUnixSecs: now() })
  before(async () => {
    pki = await createTestPki()
    collateral = await createCollateral(pki)
    anchor = trustAnchorFromDer(testRootDer(pki))
    quote = await createQuote(pki)
  })

  it('collateral that does not parse, or is of the wrong shape, is COLLATERAL_MALFORMED (never QUOTE_MALFORMED or VERIFIER_FAILED)', async () => {
    const malformed = (e: unknown) => e instanceof AttestationError && e.code === 'COLLATERAL_MALFORMED'
    assert.throws(() => parseCollateral('{"pck_crl_issuer_chain":'), malformed)
    assert.throws(() => parseCollateral({ ...collateral, tcb_info: '{"id":"TDX",' }), malformed)
    assert.throws(() => parseCollateral({ ...collateral, qe_identity: JSON.stringify({ id: 'TD_QE' }) }), malformed)

    // Objects built by the caller get the same checks: TCB Info / QE Identity that are not JSON, a missing CRL.
    assert.equal((await verify(quote, { ...collateral, tcb_info: '{"id":"TDX",' })).code, 'COLLATERAL_MALFORMED')
    assert.equal((await verify(quote, { ...collateral, qe_identity: 'not json' })).code, 'COLLATERAL_MALFORMED')
    assert.equal((await verify(quote, { ...collateral, pck_crl: undefined })).code, 'COLLATERAL_MALFORMED')

    // Validly signed, wrong shape: a TDX module identity without its signer, QE Identity levels that are not a list.
    const tcbInfo = JSON.parse(collateral.tcb_info)
    delete tcbInfo.tdxModuleIdentities[0].mrsigner
    const tcbText = JSON.stringify(tcbInfo)
    const noSigner = await verify(quote, { ...collateral, tcb_info: tcbText, tcb_info_signature: await signJson(pki, tcbText) })
    assert.equal(noSigner.code, 'COLLATERAL_MALFORMED', noSigner.reason)
    const qeText = JSON.stringify({ ...JSON.parse(collateral.qe_identity), tcbLevels: { isvsvn: 4 } })
    const badLevels = await verify(quote, { ...collateral, qe_identity: qeText, qe_identity_signature: await signJson(pki, qeText) })
    assert.equal(badLevels.code, 'COLLATERAL_MALFORMED', badLevels.reason)

    // A PEM block in the collateral that does not decode is the collateral's fault, not the quote's.
    const signing = collateral.tcb_info_issuer_chain.replace(/(-----BEGIN CERTIFICATE-----\n)MII/, '$1AAA')
    assert.equal((await verify(quote, { ...collateral, tcb_info_issuer_chain: signing })).code, 'COLLATERAL_MALFORMED')
  })

  it('a certificate whose signature does not verify under its (correctly named) issuer is *_CHAIN_SIGNATURE, not ROOT_MISMATCH', async () => {
    // The PCK leaf re-signed by a stray key; the platform CA re-signed by a stray key: names, keys and extensions unchanged.
    const leafForged = await verify(await createQuote({ ...pki, pckLeaf: await resigned(pki.pckLeaf, await strayKey()) }))
    assert.equal(leafForged.code, 'PCK_CHAIN_SIGNATURE', leafForged.reason)
    const caForged = await verify(await createQuote({ ...pki, pckCa: await resigned(pki.pckCa, await strayKey()) }))
    assert.equal(caForged.code, 'PCK_CHAIN_SIGNATURE', caForged.reason)
    // The TCB signing certificate of the collateral, re-signed.
    const signer = certPem(await resigned(pki.tcbSigner, await strayKey()), pki.root)
    const signingForged = await verify(quote, { ...collateral, tcb_info_issuer_chain: signer, qe_identity_issuer_chain: signer })
    assert.equal(signingForged.code, 'SIGNING_CHAIN_SIGNATURE', signingForged.reason)

    // ROOT_MISMATCH keeps its meaning: the chain's top is not the anchor (a shipped root, or the issuer of its top CA).
    const [leaf, ca] = chainOf(quote) as [Uint8Array, Uint8Array]
    const underIntel = await verifyTdxQuote(withPckChain(quote, toPem([leaf, ca])), collateral, { anchor: intel, atUnixSecs: now() })
    assert.equal(underIntel.code, 'ROOT_MISMATCH', underIntel.reason)
  })

  it('real quote: a bad signature on the platform CA or on the PCK leaf is PCK_CHAIN_SIGNATURE', needsFixtures, async () => {
    const { quote: real, collateral: realCollateral, at } = fixture('v4-uptodate')
    const [leaf, ca, root] = chainOf(real) as [Uint8Array, Uint8Array, Uint8Array]
    for (const [what, chain] of [['platform CA', [leaf, badSignature(ca), root]], ['PCK leaf', [badSignature(leaf), ca, root]]] as const) {
      const r = await verifyTdxQuote(withPckChain(real, toPem([...chain])), realCollateral, { anchor: intel, atUnixSecs: at })
      assert.equal(r.code, 'PCK_CHAIN_SIGNATURE', `${what}: ${r.reason}`)
    }
    const unchanged = await verifyTdxQuote(withPckChain(real, toPem([leaf, ca, root])), realCollateral, { anchor: intel, atUnixSecs: at })
    assert.equal(unchanged.accepted, true, unchanged.reason)
  })

  it('certificates in the quote that do not decode (PEM, base64, DER, public key) are CERT_MALFORMED', needsFixtures, async () => {
    const { quote: real, collateral: realCollateral, at } = fixture('v4-uptodate')
    const pem = parseTdxQuote(real).pckChainPem
    const [leaf, ca, root] = chainOf(real) as [Uint8Array, Uint8Array, Uint8Array]
    const second = pem.indexOf('-----BEGIN CERTIFICATE-----', 10) + 200
    const cases: Array<[string, string]> = [
      ['a character of a base64 body corrupted', pem.slice(0, second) + '*' + pem.slice(second + 1)],
      ['a base64 body that is not DER', toPem([leaf, Buffer.from('30820100' + 'ab'.repeat(256), 'hex'), root])],
      ['a certificate with bytes after it', toPem([leaf, Buffer.concat([ca, Buffer.from([0])]), root])],
      ['the shipped root with a public key off the curve', toPem([leaf, ca, badPublicKey(root)])],
      ['text between the PEM blocks', toPem([leaf, ca]) + 'garbage\n' + toPem([root])]
    ]
    for (const [what, chain] of cases) {
      const r = await verifyTdxQuote(withPckChain(real, chain), realCollateral, { anchor: intel, atUnixSecs: at })
      assert.equal(r.code, 'CERT_MALFORMED', `${what}: ${r.code ?? 'accepted'} ${r.reason ?? ''}`)
    }
  })

  it('2000 random byte flips over the certification data of a simulated quote: never VERIFIER_FAILED, never a throw', async () => {
    const q = parseTdxQuote(quote)
    const start = q.signedBytes.length + 4 + 64 + 64 + 6
    const original = chainOf(quote).map((d) => Buffer.from(d).toString('hex')).join()
    const seen = new Map<string, number>()
    await fc.assert(fc.asyncProperty(fc.integer({ min: start, max: quote.length - 1 }), fc.integer({ min: 1, max: 255 }), async (offset, xor) => {
      const bytes = Uint8Array.from(quote)
      bytes[offset] = (bytes[offset] as number) ^ xor
      const r = await verify(bytes)
      seen.set(r.code ?? 'ACCEPTED', (seen.get(r.code ?? 'ACCEPTED') ?? 0) + 1)
      assert.notEqual(r.code, 'VERIFIER_FAILED', `offset ${offset} ^ ${xor}: ${r.reason}`)
      // Only whitespace between PEM blocks is unsigned and free: what is accepted carries the same certificates.
      if (r.accepted) assert.equal(chainOf(bytes).map((d) => Buffer.from(d).toString('hex')).join(), original, `accepted a change at ${offset}`)
    }), { numRuns: 2000, seed: 11 })
    for (const code of ['CERT_MALFORMED', 'PCK_CHAIN_SIGNATURE', 'QE_REPORT_SIGNATURE']) assert.ok((seen.get(code) ?? 0) > 0, `no ${code} among ${JSON.stringify([...seen])}`)
  })
})
