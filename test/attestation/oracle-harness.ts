/**
 * Differential oracle: the project's verifier (full path, and the fast path over a warm cache)
 * against @phala/dcap-qvl alone, on real and simulated quotes and on deterministic mutations of
 * them (bit flips in the quote header/body/signatures/QE report/certificates, collateral byte and
 * JSON field changes, time shifts). dcap-qvl's refusals must all be ours too; where we refuse and
 * dcap-qvl accepts, the refusal must be one of STRICTER, each with its reason. The full path and
 * the fast path must reach the same verdict (code, status, advisories) on every input.
 * Shared by test/attestation/differential-oracle.test.ts and scripts/bench/oracle.ts.
 */
import dcap from '@phala/dcap-qvl'
import { verifyTdxQuote, type TdxVerification } from '../../src/attestation/tdx-verifier.js'
import { VerificationCache } from '../../src/attestation/verification-cache.js'
import { parseTdxQuote } from '../../src/attestation/quote.js'
import type { Collateral } from '../../src/attestation/collateral.js'
import { intelTrustAnchor, trustAnchorFromDer, type TrustAnchor } from '../../src/attestation/trust-anchor.js'
import { createCollateral, createQuote, createTestPki, testRootDer, type CollateralOptions, type TestPki } from '../../src/attestation/simulator.js'
import { fixture } from '../helpers/tdx.js'

/** A refusal of ours that dcap-qvl does not make, and why we make it. */
export interface StricterRefusal {
  codes: string[]
  /** When set, only refusals whose reason matches (a code can be stricter for one reason and not another). */
  reason?: RegExp
  why: string
}

export const STRICTER: StricterRefusal[] = [
  { codes: ['CRL_SIGNATURE'], why: 'our CRL checks: dcap-qvl never verifies a CRL\'s signature' },
  { codes: ['COLLATERAL_EXPIRED'], reason: /CRL is not current/, why: 'our CRL checks: dcap-qvl ignores CRL thisUpdate/nextUpdate' },
  { codes: ['COLLATERAL_MALFORMED'], reason: /CRL/, why: 'our CRL checks: a CRL that is not exactly one DER CRL is refused; dcap-qvl skips a CRL it cannot decode (it revokes nothing)' },
  { codes: ['CRL_ISSUER'], why: 'our CRL checks: the CRL must name (and be signed by) the CA of the chain; dcap-qvl checks no issuer' },
  { codes: ['PCK_CHAIN', 'PCK_CHAIN_SIGNATURE', 'ROOT_MISMATCH', 'COLLATERAL_MALFORMED'], reason: /^PCK CRL issuer chain:/, why: 'our CRL checks: the PCK CRL issuer chain is verified to the anchor; dcap-qvl never reads pck_crl_issuer_chain' },
  { codes: ['COLLATERAL_MALFORMED'], reason: /collateral (tcb_info|qe_identity):/, why: 'collateral schema: signed TCB Info / QE Identity fields must have Intel\'s shapes and documented statuses' },
  { codes: ['COLLATERAL_MALFORMED'], reason: /PEM|base64/, why: 'strict PEM in the collateral\'s issuer chains (dcap-qvl\'s decoder skips what it does not know)' },
  { codes: ['CERT_MALFORMED'], reason: /PEM|base64/, why: 'strict PEM in the quote\'s PCK chain (dcap-qvl\'s decoder skips what it does not know)' },
  { codes: ['QUOTE_TRAILING_BYTES'], why: 'bytes after the signature data must be zero padding; dcap-qvl ignores them' },
  { codes: ['QUOTE_MALFORMED'], reason: /does not end the signature data|does not fill its declared size/, why: 'the certification data must fill exactly its declared sizes; dcap-qvl reads past slack' },
  { codes: ['QUOTE_UNSUPPORTED'], reason: /^certification data type/, why: 'the outer certification data must be type 6 (QE report); dcap-qvl does not read its type' },
  { codes: ['QUOTE_UNSUPPORTED'], reason: /v5 body type/, why: 'the v5 body size must match the body type; dcap-qvl ignores the size' },
  { codes: ['QE_REPORT_DATA'], reason: /32 zero bytes/, why: 'the upper 32 bytes of QE REPORTDATA must be zero; dcap-qvl compares only the hash half' },
  { codes: ['PCEID'], why: 'the PCK certificate\'s PCE-ID must be the TCB Info\'s; dcap-qvl does not compare them' },
  { codes: ['TDX_MODULE'], why: 'TDX module identity (MRSIGNERSEAM, SEAMATTRIBUTES, module ISVSVN level): not checked by dcap-qvl' },
  { codes: ['TCB_STATUS'], reason: /is not accepted \(policy/, why: 'our TCB status policy (UpToDate only by default, worsened by the TDX module level); dcap-qvl accepts any non-revoked status' },
  { codes: ['SIGNING_CHAIN'], reason: /expected a chain of 2/, why: 'collateral issuer chains must be exactly signer + root' },
  { codes: ['PCK_CHAIN'], reason: /expected a chain of 3/, why: 'the PCK chain must be exactly leaf + CA + root' }
]

export interface Subject {
  name: string
  quote: Uint8Array
  collateral: Collateral
  anchor: TrustAnchor
  at: number
  /** Simulated subjects: collateral variants with edited JSON, validly re-signed. */
  resigned?: Array<{ what: string, collateral: Collateral }>
}

export interface Outcome {
  subject: string
  kind: string
  detail: string
  dcap: { accepted: boolean, message?: string }
  cold: TdxVerification
  warm: TdxVerification[]
  /** 'agree' | 'stricter' | an unexplained disagreement */
  verdict: 'agree-accept' | 'agree-refuse' | 'stricter' | 'UNEXPLAINED' | 'PATHS-DIFFER'
  stricter?: StricterRefusal
}

/** A real Intel fixture (../shared/fixtures/tdx, see test/helpers/tdx.ts) at its verify-at time. */
export function realSubject (dir: 'v4-uptodate' | 'v5-out-of-tcb'): Subject {
  return { name: `real ${dir}`, ...fixture(dir), anchor: intelTrustAnchor() }
}

/** JSON field edits, re-signed with the test TCB key: what collateral a signer could issue. */
const EDITS: Array<[string, CollateralOptions]> = [
  ['tcb level 0 OutOfDate', { editTcbInfo: (t) => { t.tcbLevels[0].tcbStatus = 'OutOfDate' } }],
  ['tcb level 0 Revoked', { editTcbInfo: (t) => { t.tcbLevels[0].tcbStatus = 'Revoked' } }],
  ['tcb level 0 SWHardeningNeeded + advisory', { editTcbInfo: (t) => { t.tcbLevels[0].tcbStatus = 'SWHardeningNeeded'; t.tcbLevels[0].advisoryIDs = ['INTEL-SA-00001'] } }],
  ['tcb level 0 unknown status', { editTcbInfo: (t) => { t.tcbLevels[0].tcbStatus = 'Bogus' } }],
  ['tcb level 0 pcesvn 12', { editTcbInfo: (t) => { t.tcbLevels[0].tcb.pcesvn = 12 } }],
  ['tcb levels all above the platform', { editTcbInfo: (t) => { for (const l of t.tcbLevels) l.tcb.sgxtcbcomponents[0].svn = 9 } }],
  ['tcb tdx component above the TD', { editTcbInfo: (t) => { t.tcbLevels[0].tcb.tdxtcbcomponents[0].svn = 7 } }],
  ['tcb fmspc', { editTcbInfo: (t) => { t.fmspc = '00906ED50000' } }],
  ['tcb pceId', { editTcbInfo: (t) => { t.pceId = '0001' } }],
  ['tcb version 2', { editTcbInfo: (t) => { t.version = 2 } }],
  ['tcb id SGX', { editTcbInfo: (t) => { t.id = 'SGX' } }],
  ['tcb issued in the future', { editTcbInfo: (t) => { t.issueDate = '2099-01-01T00:00:00Z' } }],
  ['tcb expired', { editTcbInfo: (t) => { t.nextUpdate = '2000-01-01T00:00:00Z' } }],
  ['tdx module signer', { editTcbInfo: (t) => { t.tdxModule.mrsigner = 'AB'.repeat(48); for (const m of t.tdxModuleIdentities) m.mrsigner = 'AB'.repeat(48) } }],
  ['tdx module identities removed', { editTcbInfo: (t) => { delete t.tdxModuleIdentities } }],
  ['tdx module TDX_01 OutOfDate', { editTcbInfo: (t) => { t.tdxModuleIdentities[0].tcbLevels[0].tcbStatus = 'OutOfDate' } }],
  ['tdx module attributes mask', { editTcbInfo: (t) => { t.tdxModule.attributes = '0100000000000000'; t.tdxModuleIdentities[0].attributes = '0100000000000000' } }],
  ['unknown extra field', { editTcbInfo: (t) => { t.extra = { note: 'unread' } } }],
  ['qe mrsigner', { editQeIdentity: (q) => { q.mrsigner = 'CD'.repeat(32) } }],
  ['qe isvprodid', { editQeIdentity: (q) => { q.isvprodid = 1 } }],
  ['qe isvsvn above the QE', { editQeIdentity: (q) => { q.tcbLevels[0].tcb.isvsvn = 7 } }],
  ['qe level OutOfDate', { editQeIdentity: (q) => { q.tcbLevels[0].tcbStatus = 'OutOfDate'; q.tcbLevels[0].advisoryIDs = ['INTEL-SA-00002'] } }],
  ['qe attributes', { editQeIdentity: (q) => { q.attributes = '15000000000000000000000000000000' } }],
  ['qe miscselect', { editQeIdentity: (q) => { q.miscselect = '00000001' } }],
  ['qe version 3', { editQeIdentity: (q) => { q.version = 3 } }],
  ['qe id QE', { editQeIdentity: (q) => { q.id = 'QE' } }],
  ['qe expired', { editQeIdentity: (q) => { q.nextUpdate = '2000-01-01T00:00:00Z' } }]
]

export async function simulatedSubjects (): Promise<Subject[]> {
  const pki: TestPki = await createTestPki()
  const anchor = trustAnchorFromDer(testRootDer(pki))
  const at = Math.floor(+pki.now / 1000)
  const resigned = await Promise.all(EDITS.map(async ([what, options]) => ({ what, collateral: await createCollateral(pki, options) })))
  const collateral = await createCollateral(pki)
  const out: Subject[] = [
    { name: 'simulated', quote: await createQuote(pki, { reportData: new Uint8Array(64).fill(7) }), collateral, anchor, at, resigned },
    { name: 'simulated v5 TD 1.5', quote: await createQuote(pki, { v5: 'td15' }), collateral, anchor, at, resigned }
  ]
  // A revoked leaf and a forged root CRL: refused by both, and by us only.
  const revoked = await createTestPki({ revokePckLeaf: true, now: pki.now })
  out.push({ name: 'simulated, PCK revoked', quote: await createQuote(revoked), collateral: await createCollateral(revoked), anchor: trustAnchorFromDer(testRootDer(revoked)), at })
  const forged = await createTestPki({ forgeRootCrlSignature: true, now: pki.now })
  out.push({ name: 'simulated, root CRL forged', quote: await createQuote(forged), collateral: await createCollateral(forged), anchor: trustAnchorFromDer(testRootDer(forged)), at })
  return out
}

/** mulberry32: small, seedable, good enough to pick mutations reproducibly. */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Mutant { kind: string, detail: string, quote: Uint8Array, collateral: Collateral, at: number }

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----([^-]*)-----END CERTIFICATE-----/g
const pemDers = (pem: string) => [...pem.matchAll(PEM_BLOCK)].map((m) => Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64'))
const toPem = (ders: Uint8Array[]) => ders.map((d) => `-----BEGIN CERTIFICATE-----\n${(Buffer.from(d).toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END CERTIFICATE-----\n`).join('')
const u16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b }
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b }

/** The quote with another PCK chain text (the chain is outside every signature), padding kept. */
function withChain (quote: Uint8Array, pem: string): Uint8Array {
  const q = parseTdxQuote(quote)
  const chain = Buffer.concat([Buffer.from(pem, 'latin1'), Buffer.from([0])])
  const certData = Buffer.concat([q.qeReportBytes, q.qeReportSignature, u16(q.qeAuthData.length), q.qeAuthData, u16(5), u32(chain.length), chain])
  const sigData = Buffer.concat([q.signature, q.attestationKey, u16(6), u32(certData.length), certData])
  return Buffer.concat([q.signedBytes, u32(sigData.length), sigData, Buffer.alloc(q.paddingBytes)])
}

/** Byte ranges of a quote's parts, from its own parse. */
function quoteRegions (quote: Uint8Array): Array<[string, number, number]> {
  const q = parseTdxQuote(quote)
  const signed = q.signedBytes.length
  const bodyStart = q.version === 5 ? 54 : 48
  const sd = signed + 4
  const qe = sd + 64 + 64 + 6
  const auth = qe + 384 + 64 + 2
  const chainStart = auth + q.qeAuthData.length + 6
  const chainEnd = quote.length - q.paddingBytes
  return [
    ['quote header', 0, bodyStart],
    ['report body', bodyStart, signed],
    ['quote signature', sd, sd + 64],
    ['attestation key', sd + 64, sd + 128],
    ['certification data header', sd + 128, qe],
    ['QE report', qe, qe + 384],
    ['QE report signature', qe + 384, qe + 448],
    ['QE auth data', auth - 2, auth + q.qeAuthData.length],
    ['PCK chain text', chainStart - 6, chainEnd],
    ...(q.paddingBytes > 0 ? [['padding', chainEnd, quote.length] as [string, number, number]] : [])
  ]
}

const COLLATERAL_CHAINS = ['pck_crl_issuer_chain', 'tcb_info_issuer_chain', 'qe_identity_issuer_chain'] as const
const COLLATERAL_CRLS = ['root_ca_crl', 'pck_crl'] as const
const DAY = 86_400

/** One mutation of `s`, picked by `rand`. */
export function mutate (s: Subject, rand: () => number): Mutant {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T
  const flipBit = (bytes: Uint8Array, at: number) => { const out = Uint8Array.from(bytes); out[at] = (out[at] as number) ^ (1 << Math.floor(rand() * 8)); return out }
  const base = { quote: s.quote, collateral: s.collateral, at: s.at }
  const kinds = ['quote bytes', 'quote bytes', 'quote bytes', 'PCK certificate DER', 'collateral CRL DER', 'collateral chain DER', 'collateral text', 'collateral JSON field', 'time shift']
  const kind = pick(kinds)
  switch (kind) {
    case 'quote bytes': {
      const [region, from, to] = pick(quoteRegions(s.quote))
      const at = from + Math.floor(rand() * (to - from))
      return { ...base, kind: region, detail: `bit flip at ${at}`, quote: flipBit(s.quote, at) }
    }
    case 'PCK certificate DER': {
      const ders = pemDers(parseTdxQuote(s.quote).pckChainPem)
      const i = Math.floor(rand() * ders.length)
      const at = Math.floor(rand() * (ders[i] as Uint8Array).length)
      ders[i] = Buffer.from(flipBit(ders[i] as Uint8Array, at))
      return { ...base, kind, detail: `certificate ${i} byte ${at}`, quote: withChain(s.quote, toPem(ders)) }
    }
    case 'collateral CRL DER': {
      const field = pick(COLLATERAL_CRLS)
      const der = Buffer.from(s.collateral[field], 'hex')
      const at = Math.floor(rand() * der.length)
      return { ...base, kind, detail: `${field} byte ${at}`, collateral: { ...s.collateral, [field]: Buffer.from(flipBit(der, at)).toString('hex') } }
    }
    case 'collateral chain DER': {
      const field = pick(COLLATERAL_CHAINS)
      const ders = pemDers(s.collateral[field])
      const i = Math.floor(rand() * ders.length)
      const at = Math.floor(rand() * (ders[i] as Uint8Array).length)
      ders[i] = Buffer.from(flipBit(ders[i] as Uint8Array, at))
      return { ...base, kind, detail: `${field} certificate ${i} byte ${at}`, collateral: { ...s.collateral, [field]: toPem(ders) } }
    }
    case 'collateral text': {
      // Signed JSON, signatures and PEM text: one character changed.
      const field = pick(['tcb_info', 'qe_identity', 'tcb_info_signature', 'qe_identity_signature', ...COLLATERAL_CHAINS] as const)
      const text = s.collateral[field]
      const at = Math.floor(rand() * text.length)
      const ch = field.endsWith('signature') ? pick([...'0123456789abcdef']) : String.fromCharCode(text.charCodeAt(at) ^ (1 << Math.floor(rand() * 7)))
      return { ...base, kind, detail: `${field} char ${at}`, collateral: { ...s.collateral, [field]: text.slice(0, at) + ch + text.slice(at + 1) } }
    }
    case 'collateral JSON field': {
      if (s.resigned !== undefined && s.resigned.length > 0) {
        const v = pick(s.resigned)
        return { ...base, kind: 'collateral JSON field (re-signed)', detail: v.what, collateral: v.collateral }
      }
      // Real collateral cannot be re-signed: the edit must break its signature.
      const field = pick(['tcb_info', 'qe_identity'] as const)
      const value = JSON.parse(s.collateral[field])
      const key = pick(field === 'tcb_info' ? ['fmspc', 'pceId', 'nextUpdate', 'tcbEvaluationDataNumber'] : ['mrsigner', 'isvprodid', 'nextUpdate', 'miscselect'])
      value[key] = typeof value[key] === 'number' ? value[key] + 1 : key.endsWith('Update') ? '2099-01-01T00:00:00Z' : String(value[key]).replace(/^./, (c) => c === '0' ? '1' : '0')
      return { ...base, kind: 'collateral JSON field (signature kept)', detail: `${field}.${key}`, collateral: { ...s.collateral, [field]: JSON.stringify(value) } }
    }
    default: {
      const shift = pick([-400 * DAY, -40 * DAY, -16 * DAY, -3 * DAY, -1 * DAY, -3600, -1, 1, 3600, DAY, 3 * DAY, 10 * DAY, 16 * DAY, 40 * DAY, 400 * DAY, 20 * 365 * DAY])
      return { ...base, kind: 'time shift', detail: `${shift >= 0 ? '+' : ''}${shift} s`, at: s.at + shift }
    }
  }
}

function dcapAlone (s: Pick<Subject, 'anchor'>, m: Pick<Mutant, 'quote' | 'collateral' | 'at'>): { accepted: boolean, message?: string } {
  try {
    dcap.QuoteVerifier.newWithRootCa(Buffer.from(s.anchor.der)).verify(Buffer.from(m.quote), m.collateral as any, m.at)
    return { accepted: true }
  } catch (err) {
    return { accepted: false, message: (err as Error).message }
  }
}

const sameVerdict = (a: TdxVerification, b: TdxVerification) =>
  a.accepted === b.accepted && a.code === b.code && a.tcbStatus === b.tcbStatus && a.tdxModuleStatus === b.tdxModuleStatus && a.fmspc === b.fmspc && a.advisoryIds.join() === b.advisoryIds.join()

export function explain (r: TdxVerification): StricterRefusal | undefined {
  return STRICTER.find((x) => x.codes.includes(r.code ?? '') && (x.reason === undefined || x.reason.test(r.reason ?? '')))
}

/**
 * Runs one input through dcap-qvl alone, the project's full path (no cache) and the project's
 * path over `warm` (twice: the first run may remember what the second reuses).
 */
export async function judge (s: Subject, m: Mutant, warm: VerificationCache): Promise<Outcome> {
  const dcapVerdict = dcapAlone(s, m)
  const options = { anchor: s.anchor, atUnixSecs: m.at }
  const cold = await verifyTdxQuote(m.quote, m.collateral, { ...options, cache: false })
  const warmRuns = [await verifyTdxQuote(m.quote, m.collateral, { ...options, cache: warm }), await verifyTdxQuote(m.quote, m.collateral, { ...options, cache: warm })]
  const out: Outcome = { subject: s.name, kind: m.kind, detail: m.detail, dcap: dcapVerdict, cold, warm: warmRuns, verdict: 'agree-refuse' }
  if (!warmRuns.every((w) => sameVerdict(w, cold))) out.verdict = 'PATHS-DIFFER'
  else if (cold.accepted && dcapVerdict.accepted) out.verdict = 'agree-accept'
  else if (!cold.accepted && !dcapVerdict.accepted) out.verdict = 'agree-refuse'
  else if (cold.accepted) out.verdict = 'UNEXPLAINED' // we accept what dcap-qvl refuses: never allowed
  else {
    const why = explain(cold)
    out.verdict = why === undefined ? 'UNEXPLAINED' : 'stricter'
    if (why !== undefined) out.stricter = why
  }
  return out
}

export interface OracleReport {
  outcomes: number
  table: Map<string, { agreeAccept: number, agreeRefuse: number, stricter: number, unexplained: number, pathsDiffer: number }>
  stricter: Map<string, number>
  failures: Outcome[]
  /** How many warm runs took the fast path. */
  warmHits: number
}

/**
 * Every subject unmutated, then `count` mutations spread over the subjects (seeded), each judged.
 * The warm cache of each subject is primed with the unmutated input first.
 */
export async function runOracle (subjects: Subject[], { count, seed = 1, onProgress }: { count: number, seed?: number, onProgress?: (done: number) => void }): Promise<OracleReport> {
  const rand = prng(seed)
  const report: OracleReport = { outcomes: 0, table: new Map(), stricter: new Map(), failures: [], warmHits: 0 }
  const caches = new Map<Subject, VerificationCache>()
  for (const s of subjects) {
    const cache = new VerificationCache()
    await verifyTdxQuote(s.quote, s.collateral, { anchor: s.anchor, atUnixSecs: s.at, cache })
    caches.set(s, cache)
  }
  const record = (o: Outcome) => {
    report.outcomes++
    const row = report.table.get(`${o.subject} | ${o.kind}`) ?? { agreeAccept: 0, agreeRefuse: 0, stricter: 0, unexplained: 0, pathsDiffer: 0 }
    if (o.verdict === 'agree-accept') row.agreeAccept++
    else if (o.verdict === 'agree-refuse') row.agreeRefuse++
    else if (o.verdict === 'stricter') row.stricter++
    else if (o.verdict === 'UNEXPLAINED') row.unexplained++
    else row.pathsDiffer++
    report.table.set(`${o.subject} | ${o.kind}`, row)
    if (o.stricter !== undefined) {
      report.stricter.set(stricterKey(o.stricter), (report.stricter.get(stricterKey(o.stricter)) ?? 0) + 1)
    }
    if (o.verdict === 'UNEXPLAINED' || o.verdict === 'PATHS-DIFFER') report.failures.push(o)
  }
  for (const s of subjects) record(await judge(s, { kind: 'unmutated', detail: '', quote: s.quote, collateral: s.collateral, at: s.at }, caches.get(s) as VerificationCache))
  for (let i = 0; i < count; i++) {
    const s = subjects[i % subjects.length] as Subject
    record(await judge(s, mutate(s, rand), caches.get(s) as VerificationCache))
    onProgress?.(i + 1)
  }
  for (const c of caches.values()) report.warmHits += c.stats.warm
  return report
}

export const stricterKey = (x: StricterRefusal) => `${x.codes.join('/')}${x.reason !== undefined ? ` /${x.reason.source}/` : ''}`

export function formatReport (r: OracleReport): string {
  const lines = ['| subject | input | both accept | both refuse | ours stricter (explained) | unexplained | fast ≠ full path |', '|---|---|---|---|---|---|---|']
  for (const [key, row] of [...r.table].sort(([a], [b]) => a.localeCompare(b))) {
    lines.push(`| ${key} | ${row.agreeAccept} | ${row.agreeRefuse} | ${row.stricter} | ${row.unexplained} | ${row.pathsDiffer} |`)
  }
  lines.push('', '| stricter refusal (code, reason) | count | why |', '|---|---|---|')
  for (const x of STRICTER) lines.push(`| ${stricterKey(x).replace(/\|/g, '\\|')} | ${r.stricter.get(stricterKey(x)) ?? 0} | ${x.why} |`)
  lines.push('', `inputs: ${r.outcomes}; warm verifications on the fast path: ${r.warmHits}; unexplained or path differences: ${r.failures.length}`)
  for (const f of r.failures.slice(0, 20)) {
    lines.push(`  ${f.verdict}: ${f.subject} | ${f.kind} | ${f.detail}: dcap ${f.dcap.accepted ? 'accepts' : `refuses (${f.dcap.message ?? ''})`}; full path ${f.cold.code ?? 'accepts'} ${f.cold.reason ?? ''}; warm ${f.warm.map((w) => w.code ?? 'accepts').join(', ')}`)
  }
  return lines.join('\n')
}
