/**
 * TEST-ONLY TDX quote simulator. Builds a PKI shaped like Intel's (root → PCK Platform CA → PCK
 * leaf carrying the SGX extension; root → TCB Signing; root CRL and PCK CRL), signed TCB Info and
 * QE Identity, and structurally genuine v4 quotes for any REPORTDATA and measurements, so the real
 * verifier path runs end to end without TDX hardware. Its root is never Intel's: everything it
 * produces verifies only under that test root and is labelled simulated.
 */
import 'reflect-metadata'
import { createHash, webcrypto } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import { p256 } from '@noble/curves/nist.js'
import type { Collateral } from './collateral.js'
import { INTEL_QE_VENDOR_ID } from './tdx-verifier.js'

x509.cryptoProvider.set(webcrypto as any)
const subtle = webcrypto.subtle
const EC = { name: 'ECDSA', namedCurve: 'P-256' }
const SIG = { name: 'ECDSA', hash: 'SHA-256' }
const DAY = 86_400_000
const SGX_OID = '1.2.840.113741.1.13.1'
export const TEST_QE_MRSIGNER = createHash('sha256').update('TEST-ONLY TD_QE signer').digest()
const TEST_MODULE_MRSIGNER = Buffer.alloc(48)

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest()

// --- minimal DER for the SGX extension (a SEQUENCE of {OID, value}); x509 has no model for it.
const derLength = (n: number) => {
  if (n < 0x80) return Buffer.from([n])
  const out: number[] = []
  for (let v = n; v > 0; v >>>= 8) out.unshift(v & 0xff)
  return Buffer.from([0x80 | out.length, ...out])
}
const der = (tag: number, body: Uint8Array) => Buffer.concat([Buffer.from([tag]), derLength(body.length), body])
const seq = (...items: Uint8Array[]) => der(0x30, Buffer.concat(items))
const octets = (b: Uint8Array) => der(0x04, b)
const uintTag = (tag: number, n: number) => {
  const out: number[] = []
  let v = n
  do { out.unshift(v & 0xff); v >>>= 8 } while (v > 0)
  if ((out[0] as number) & 0x80) out.unshift(0)
  return der(tag, Buffer.from(out))
}
function oid (dotted: string): Buffer {
  const parts = dotted.split('.').map(Number)
  const out = [40 * (parts[0] as number) + (parts[1] as number)]
  for (const v of parts.slice(2)) {
    const group: number[] = []
    let x = v
    do { group.unshift(x & 0x7f); x = Math.floor(x / 128) } while (x > 0)
    for (let i = 0; i < group.length - 1; i++) group[i] = (group[i] as number) | 0x80
    out.push(...group)
  }
  return der(0x06, Buffer.from(out))
}

function sgxExtension (o: { cpuSvn: Uint8Array, pceSvn: number, pceId: Uint8Array, fmspc: Uint8Array }): Buffer {
  const e = (sub: string, value: Uint8Array) => seq(oid(`${SGX_OID}.${sub}`), value)
  const tcb: Buffer[] = []
  for (let i = 0; i < 16; i++) tcb.push(e(`2.${i + 1}`, uintTag(0x02, o.cpuSvn[i] as number)))
  tcb.push(e('2.17', uintTag(0x02, o.pceSvn)), e('2.18', octets(o.cpuSvn)))
  return seq(
    e('1', octets(Buffer.alloc(16, 0xa5))), // PPID
    e('2', seq(...tcb)),
    e('3', octets(o.pceId)),
    e('4', octets(o.fmspc)),
    e('5', uintTag(0x0a, 1)) // SGX type: scalable
  )
}

type KeyPair = { publicKey: any, privateKey: any }

export interface TestPki {
  now: Date
  fmspc: Buffer
  pceId: Buffer
  cpuSvn: Buffer
  pceSvn: number
  root: x509.X509Certificate
  pckCa: x509.X509Certificate
  pckLeaf: x509.X509Certificate
  tcbSigner: x509.X509Certificate
  rootCrl: x509.X509Crl
  pckCrl: x509.X509Crl
  keys: { root: KeyPair, pckCa: KeyPair, pckLeaf: KeyPair, tcb: KeyPair }
}

export interface TestPkiOptions {
  /** The time the PKI and its CRLs are valid around (certificates for years, CRLs for 30 days). */
  now?: Date
  /** List the PCK leaf in the PCK CRL. */
  revokePckLeaf?: boolean
  /** Sign the root CRL with a key that is not the root's (a CRL whose signature does not verify). */
  forgeRootCrlSignature?: boolean
  /** Derive the CA and signing keys from this seed (shared devnet PKI); fresh random keys otherwise. */
  seed?: string
  /** Days the CRLs stay current after `now` (default 30). */
  crlValidForDays?: number
  /** Days the PCK leaf stays valid after `now` (default 7 years, as the CAs). */
  pckLeafValidForDays?: number
}

/** The seed of the simulated devnet PKI every `npm start` node shares. TEST ONLY. */
export const DEVNET_TEST_PKI_SEED = 'cmesh devnet TEST-ONLY PKI v1'

const name = (cn: string) => `CN=${cn}, O=TEST ONLY - not Intel, C=ZZ`
const genKey = async () => await subtle.generateKey(EC, true, ['sign', 'verify']) as KeyPair

/**
 * A P-256 key pair derived from a seed and a label, so every node of a simulated devnet holds the
 * same test PKI keys (and so trusts the same test root) without shipping any key material.
 */
async function seededKey (seed: string, label: string): Promise<KeyPair> {
  let counter = 0
  let d: Uint8Array
  do {
    d = sha256(Buffer.from(`${seed}\0${label}\0${counter++}`))
  } while (!p256.utils.isValidSecretKey(d))
  const point = p256.getPublicKey(d, false) // 0x04 ‖ X ‖ Y
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url')
  const jwk = { kty: 'EC', crv: 'P-256', x: b64(point.subarray(1, 33)), y: b64(point.subarray(33, 65)) }
  return {
    privateKey: await subtle.importKey('jwk', { ...jwk, d: b64(d) }, EC, true, ['sign']),
    publicKey: await subtle.importKey('jwk', jwk, EC, true, ['verify'])
  }
}

export async function createTestPki (options: TestPkiOptions = {}): Promise<TestPki> {
  const now = options.now ?? new Date()
  const fmspc = Buffer.from('b0c06f000000', 'hex')
  const pceId = Buffer.from('0000', 'hex')
  const cpuSvn = Buffer.from([3, 3, 2, 2, 4, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0])
  const pceSvn = 11
  const key = async (label: string) => options.seed === undefined ? await genKey() : await seededKey(options.seed, label)
  const [rootK, caK, leafK, tcbK, strayK] = await Promise.all([key('root'), key('pck-ca'), key('pck-leaf'), key('tcb'), genKey()])
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: name('TEST ONLY SGX Root CA'),
    keys: rootK as any,
    signingAlgorithm: SIG,
    notBefore: new Date(+now - 365 * DAY),
    notAfter: new Date(+now + 20 * 365 * DAY),
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)
    ]
  })
  const pckCa = await issueCert(now, '02', 'TEST ONLY SGX PCK Platform CA', caK, root, rootK.privateKey, true)
  const tcbSigner = await issueCert(now, '03', 'TEST ONLY SGX TCB Signing', tcbK, root, rootK.privateKey, false)
  const pckLeaf = await issueCert(now, PCK_LEAF_SERIAL, 'TEST ONLY SGX PCK Certificate', leafK, pckCa, caK.privateKey, false,
    [new x509.Extension(SGX_OID, false, sgxExtension({ cpuSvn, pceSvn, pceId, fmspc }))], options.pckLeafValidForDays)
  const pki = { now, fmspc, pceId, cpuSvn, pceSvn, root, pckCa, pckLeaf, tcbSigner, keys: { root: rootK, pckCa: caK, pckLeaf: leafK, tcb: tcbK } }
  return {
    ...pki,
    ...await issueCrls(pki, {
      revokedPckSerials: options.revokePckLeaf === true ? [PCK_LEAF_SERIAL] : [],
      ...(options.crlValidForDays !== undefined ? { validForDays: options.crlValidForDays } : {}),
      ...(options.forgeRootCrlSignature === true ? { rootCrlKey: strayK.privateKey } : {})
    })
  }
}

const PCK_LEAF_SERIAL = '3c16ed54eacbb4ce'

async function issueCert (now: Date, serialNumber: string, cn: string, keys: KeyPair, issuer: x509.X509Certificate, issuerKey: any, ca: boolean, extra: x509.Extension[] = [], validForDays = 7 * 365): Promise<x509.X509Certificate> {
  return await x509.X509CertificateGenerator.create({
    serialNumber,
    subject: name(cn),
    issuer: issuer.subjectName,
    publicKey: keys.publicKey,
    signingKey: issuerKey,
    signingAlgorithm: SIG,
    notBefore: new Date(+now - 30 * DAY),
    notAfter: new Date(+now + validForDays * DAY),
    extensions: [
      new x509.BasicConstraintsExtension(ca, ca ? 0 : undefined, true),
      new x509.KeyUsagesExtension(ca ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign : x509.KeyUsageFlags.digitalSignature, true),
      ...extra
    ]
  })
}

export interface CrlOptions {
  /** Serials (hex) the PCK CRL lists besides its standing unrelated entry. */
  revokedPckSerials?: string[]
  /** Serials (hex) the root CA CRL lists (a PCK leaf's serial here is listed by the wrong issuer). */
  revokedRootSerials?: string[]
  /** The time the CRLs are current around (default the PKI's `now`). */
  now?: Date
  /** Days the CRLs stay current after `now` (default 30). */
  validForDays?: number
  /** Sign the root CRL with this key instead of the root's. */
  rootCrlKey?: any
}

async function issueCrls (pki: Omit<TestPki, 'rootCrl' | 'pckCrl'>, options: CrlOptions = {}): Promise<Pick<TestPki, 'rootCrl' | 'pckCrl'>> {
  const now = options.now ?? pki.now
  const window = { thisUpdate: new Date(+now - DAY), nextUpdate: new Date(+now + (options.validForDays ?? 30) * DAY) }
  const rootCrl = await x509.X509CrlGenerator.create({
    issuer: pki.root.subjectName,
    ...window,
    signingKey: options.rootCrlKey ?? pki.keys.root.privateKey,
    signingAlgorithm: SIG,
    entries: (options.revokedRootSerials ?? []).map((serialNumber) => ({ serialNumber, revocationDate: new Date(+now - DAY) }))
  })
  const pckCrl = await x509.X509CrlGenerator.create({
    issuer: pki.pckCa.subjectName,
    ...window,
    signingKey: pki.keys.pckCa.privateKey,
    signingAlgorithm: SIG,
    entries: [
      { serialNumber: 'abcdef0123', revocationDate: new Date(+now - 2 * DAY) },
      ...(options.revokedPckSerials ?? []).map((serialNumber) => ({ serialNumber, revocationDate: new Date(+now - DAY) }))
    ]
  })
  return { rootCrl, pckCrl }
}

/** The same PKI with newly issued CRLs (same keys): a later CRL that revokes a PCK leaf, or one current at another time. */
export async function reissueCrls (pki: TestPki, options: CrlOptions = {}): Promise<TestPki> {
  return { ...pki, ...await issueCrls(pki, options) }
}

/** The same PKI with another PCK leaf (another platform of the same FMSPC) under the same platform CA. */
export async function issuePckLeaf (pki: TestPki, { serialNumber, validForDays }: { serialNumber: string, validForDays?: number }): Promise<TestPki> {
  const key = await genKey()
  const pckLeaf = await issueCert(pki.now, serialNumber, `TEST ONLY SGX PCK Certificate ${serialNumber}`, key, pki.pckCa, pki.keys.pckCa.privateKey, false,
    [new x509.Extension(SGX_OID, false, sgxExtension(pki))], validForDays)
  return { ...pki, pckLeaf, keys: { ...pki.keys, pckLeaf: key } }
}

const pem = (...certs: x509.X509Certificate[]) => certs.map((c) => c.toString('pem')).join('\n') + '\n'
const signRaw = async (key: any, data: Uint8Array) => Buffer.from(await subtle.sign(SIG, key, data)) // WebCrypto ECDSA is r‖s

export interface CollateralOptions {
  validForDays?: number
  /** Edit the TCB Info or QE Identity object before it is serialised and signed (variants for tests). */
  editTcbInfo?: (tcbInfo: Record<string, any>) => void
  editQeIdentity?: (qeIdentity: Record<string, any>) => void
}

/** TDX TCB Info (v3) and TD_QE identity shaped like Intel's, signed by the test TCB signing key. */
export async function createCollateral (pki: TestPki, { validForDays = 30, editTcbInfo, editQeIdentity }: CollateralOptions = {}): Promise<Collateral> {
  const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z')
  const issueDate = iso(new Date(+pki.now - 3_600_000))
  const nextUpdate = iso(new Date(+pki.now + validForDays * DAY))
  const pad16 = (a: number[]) => [...a, ...Array(16 - a.length).fill(0)].map((svn) => ({ svn }))
  const signer = TEST_MODULE_MRSIGNER.toString('hex').toUpperCase()
  const moduleIdentity = (id: string, levels: Array<[number, string]>) => ({
    id,
    mrsigner: signer,
    attributes: '0000000000000000',
    attributesMask: 'FFFFFFFFFFFFFFFF',
    tcbLevels: levels.map(([isvsvn, tcbStatus]) => ({ tcb: { isvsvn }, tcbDate: '2024-03-13T00:00:00Z', tcbStatus }))
  })
  const tcbInfo = {
    id: 'TDX',
    version: 3,
    issueDate,
    nextUpdate,
    fmspc: pki.fmspc.toString('hex').toUpperCase(),
    pceId: pki.pceId.toString('hex').toUpperCase(),
    tcbType: 0,
    tcbEvaluationDataNumber: 17,
    tdxModule: { mrsigner: signer, attributes: '0000000000000000', attributesMask: 'FFFFFFFFFFFFFFFF' },
    tdxModuleIdentities: [moduleIdentity('TDX_01', [[6, 'UpToDate'], [4, 'OutOfDate']]), moduleIdentity('TDX_03', [[3, 'UpToDate']])],
    tcbLevels: [
      { tcb: { sgxtcbcomponents: pad16([2, 2, 2, 2, 3, 1, 0, 5]), pcesvn: 11, tdxtcbcomponents: pad16([5, 0, 2]) }, tcbDate: '2024-03-13T00:00:00Z', tcbStatus: 'UpToDate' },
      { tcb: { sgxtcbcomponents: pad16([2, 2, 2, 2, 3, 1, 0, 3]), pcesvn: 11, tdxtcbcomponents: pad16([3, 0, 2]) }, tcbDate: '2023-08-09T00:00:00Z', tcbStatus: 'OutOfDate', advisoryIDs: ['INTEL-SA-00960'] }
    ]
  }
  const qeIdentity = {
    id: 'TD_QE',
    version: 2,
    issueDate,
    nextUpdate,
    tcbEvaluationDataNumber: 17,
    miscselect: '00000000',
    miscselectMask: 'FFFFFFFF',
    attributes: '11000000000000000000000000000000',
    attributesMask: 'FBFFFFFFFFFFFFFF0000000000000000',
    mrsigner: TEST_QE_MRSIGNER.toString('hex').toUpperCase(),
    isvprodid: 2,
    tcbLevels: [{ tcb: { isvsvn: 4 }, tcbDate: '2024-03-13T00:00:00Z', tcbStatus: 'UpToDate' }]
  }
  editTcbInfo?.(tcbInfo)
  editQeIdentity?.(qeIdentity)
  const tcbInfoText = JSON.stringify(tcbInfo)
  const qeText = JSON.stringify(qeIdentity)
  const signingChain = pem(pki.tcbSigner, pki.root)
  return {
    pck_crl_issuer_chain: pem(pki.pckCa, pki.root),
    root_ca_crl: Buffer.from(pki.rootCrl.rawData).toString('hex'),
    pck_crl: Buffer.from(pki.pckCrl.rawData).toString('hex'),
    tcb_info_issuer_chain: signingChain,
    tcb_info: tcbInfoText,
    tcb_info_signature: (await signRaw(pki.keys.tcb.privateKey, Buffer.from(tcbInfoText))).toString('hex'),
    qe_identity_issuer_chain: signingChain,
    qe_identity: qeText,
    qe_identity_signature: (await signRaw(pki.keys.tcb.privateKey, Buffer.from(qeText))).toString('hex')
  }
}

export interface SimulatedTd {
  reportData?: Uint8Array
  mrTd?: Uint8Array
  rtmr?: Array<Uint8Array | undefined>
  mrConfigId?: Uint8Array
  mrOwner?: Uint8Array
  /** Default 06 01 03: module ISVSVN 6, major version 1, microcode 3 (matches the UpToDate level). */
  teeTcbSvn?: Uint8Array
  /** Default: SEPT_VE_DISABLE set, DEBUG clear. */
  tdAttributes?: Uint8Array
  /** A v5 quote with a TD 1.0 or TD 1.5 body instead of v4 (TD 1.5: TEE_TCB_SVN2 and a zero MRSERVICETD). */
  v5?: 'td10' | 'td15'
}

const fixed = (value: Uint8Array | undefined, length: number) => {
  const out = Buffer.alloc(length)
  if (value !== undefined) Buffer.from(value).copy(out, 0, 0, length)
  return out
}
const u16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b }
const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b }

/** A v4 TDX quote (TD 1.0 body), or v5 when asked, under the test PKI, with a fresh attestation key. */
export async function createQuote (pki: TestPki, td: SimulatedTd = {}): Promise<Uint8Array> {
  const att = await genKey()
  const attPublic = Buffer.from(await subtle.exportKey('raw', att.publicKey)).subarray(1) // X‖Y without 0x04
  const header = Buffer.alloc(48)
  header.writeUInt16LE(td.v5 !== undefined ? 5 : 4, 0)
  header.writeUInt16LE(2, 2)
  header.writeUInt32LE(0x81, 4)
  Buffer.from(INTEL_QE_VENDOR_ID, 'hex').copy(header, 12)
  Buffer.alloc(16, 0x11).copy(header, 28)
  const rtmr = td.rtmr ?? []
  const body = Buffer.concat([
    fixed(td.teeTcbSvn ?? Uint8Array.from([6, 1, 3]), 16),
    fixed(sha256(Buffer.from('TEST ONLY mrseam')), 48),
    fixed(TEST_MODULE_MRSIGNER, 48),
    fixed(undefined, 8),
    fixed(td.tdAttributes ?? Buffer.from('0000001000000000', 'hex'), 8),
    fixed(Buffer.from('e702060000000000', 'hex'), 8),
    fixed(td.mrTd, 48),
    fixed(td.mrConfigId, 48),
    fixed(td.mrOwner, 48),
    fixed(undefined, 48),
    fixed(rtmr[0], 48), fixed(rtmr[1], 48), fixed(rtmr[2], 48), fixed(rtmr[3], 48),
    fixed(td.reportData, 64),
    ...(td.v5 === 'td15' ? [fixed(td.teeTcbSvn ?? Uint8Array.from([6, 1, 3]), 16), fixed(undefined, 48)] : [])
  ])
  // v5 puts a body descriptor (type 2 = TD 1.0, 3 = TD 1.5; size) between header and body.
  const descriptor = td.v5 === undefined ? Buffer.alloc(0) : Buffer.concat([u16(td.v5 === 'td15' ? 3 : 2), u32(body.length)])
  const signed = Buffer.concat([header, descriptor, body])
  const quoteSignature = await signRaw(att.privateKey, signed)
  const qeAuthData = Buffer.from(Array.from({ length: 32 }, (_, i) => i))
  const qe = Buffer.alloc(384)
  pki.cpuSvn.copy(qe, 0)
  Buffer.from('1500000000000000e700000000000000', 'hex').copy(qe, 48)
  sha256(Buffer.from('TEST ONLY TD_QE mrenclave')).copy(qe, 64)
  TEST_QE_MRSIGNER.copy(qe, 128)
  qe.writeUInt16LE(2, 256)
  qe.writeUInt16LE(6, 258)
  sha256(Buffer.concat([attPublic, qeAuthData])).copy(qe, 320)
  const qeSignature = await signRaw(pki.keys.pckLeaf.privateKey, qe)
  const chain = Buffer.concat([Buffer.from(pem(pki.pckLeaf, pki.pckCa, pki.root), 'latin1'), Buffer.from([0])])
  const certData = Buffer.concat([qe, qeSignature, u16(qeAuthData.length), qeAuthData, u16(5), u32(chain.length), chain])
  const sigData = Buffer.concat([quoteSignature, attPublic, u16(6), u32(certData.length), certData])
  return Buffer.concat([signed, u32(sigData.length), sigData])
}

/** The test root's DER, to build the trust anchor simulated results verify under. */
export function testRootDer (pki: TestPki): Uint8Array {
  return new Uint8Array(pki.root.rawData)
}
