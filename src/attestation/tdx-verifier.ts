/**
 * TDX quote verification: @phala/dcap-qvl for the DCAP core (TCB Info and QE Identity signatures
 * and windows, QE report signature and hash, quote signature, QE identity policy, FMSPC, TCB level
 * match, TD attribute rules), wrapped with what it lacks: strict chains and CRLs (signature, issuer,
 * validity) to a trust anchor, QE REPORTDATA zero tail, PCE-ID, TDX module identity and TCB,
 * our TCB status policy, measurement policy and the expected REPORTDATA. The verification time is a
 * parameter. The result is a verdict with a stable code, never an exception for a refusal.
 *
 * Once a full verification has accepted a collateral and a PCK chain, later quotes under them take
 * a fast path (quote-checks.ts): the quote's own two signatures and checks, plus everything that
 * joins chain and collateral, giving the same verdict codes. See verification-cache.ts.
 */
import { createHash, X509Certificate } from 'node:crypto'
import dcap from '@phala/dcap-qvl'
import { bytesEqual, toHex } from '../market/bytes.js'
import { AttestationError, type AttestationErrorCode } from './errors.js'
import { parseTdxQuote, type TdxQuote, type TdReportBody } from './quote.js'
import { assertNotRevoked, narrowValidity, openValidity, splitPemChain, verifyChain, verifyCrl, type ChainCodes, type CheckedCrl, type Validity } from './pki.js'
import { checkCollateral, type CheckedCollateral, type Collateral, type TcbInfo } from './collateral.js'
import type { TrustAnchor } from './trust-anchor.js'
import { tcbPolicy, worseStatus, type TcbStatus, type VerificationPolicy } from './policy.js'
import { chainKey, collateralKey, once, qvlCrlSerials, qvlSerial, sharedVerificationCache, type VerificationCache } from './verification-cache.js'
import { checkQuoteAgainstVerified, type DcapReport } from './quote-checks.js'

export const INTEL_QE_VENDOR_ID = '939a7233f79c4ca9940a0db3957f0607'
const SGX_EXTENSION_OID = '1.2.840.113741.1.13.1'
const SGX_EXTENSION_OID_DER = Buffer.from('06092a864886f84d010d01', 'hex')
const PCK_CHAIN_CODES: ChainCodes = { chain: 'PCK_CHAIN', signature: 'PCK_CHAIN_SIGNATURE', malformed: 'CERT_MALFORMED', name: 'PCK chain' }
const CRL_ISSUER_CHAIN_CODES: ChainCodes = { chain: 'PCK_CHAIN', signature: 'PCK_CHAIN_SIGNATURE', malformed: 'COLLATERAL_MALFORMED', name: 'PCK CRL issuer chain' }
const SIGNING_CHAIN_CODES: ChainCodes = { chain: 'SIGNING_CHAIN', signature: 'SIGNING_CHAIN_SIGNATURE', malformed: 'COLLATERAL_MALFORMED' }
const TD_ATTR_DEBUG = 0x01
const TD_ATTR_SEPT_VE_DISABLE_BYTE = 3
const TD_ATTR_SEPT_VE_DISABLE_BIT = 0x10

export interface TdxMeasurements {
  teeTcbSvn: string
  mrSeam: string
  mrSignerSeam: string
  seamAttributes: string
  tdAttributes: string
  xfam: string
  mrTd: string
  mrConfigId: string
  mrOwner: string
  mrOwnerConfig: string
  rtmr: [string, string, string, string]
  reportData: string
  teeTcbSvn2?: string
  mrServiceTd?: string
}

export interface TdxVerification {
  accepted: boolean
  code?: AttestationErrorCode
  reason?: string
  /** Verified under a root other than Intel's: test evidence, never production. */
  simulated: boolean
  rootSha256: string
  verifiedAtUnixSecs: number
  quoteVersion?: number
  bodyType?: 'td10' | 'td15'
  tcbStatus?: string
  advisoryIds: string[]
  tdxModuleStatus?: string
  fmspc?: string
  measurements?: TdxMeasurements
}

export interface VerifyOptions {
  anchor: TrustAnchor
  atUnixSecs: number
  policy?: VerificationPolicy
  /**
   * Verified collateral and PCK chains to reuse and to add to. Default: one bounded cache shared
   * by the process; `false` verifies everything afresh and remembers nothing.
   */
  cache?: VerificationCache | false
}

function measurementsOf (b: TdReportBody): TdxMeasurements {
  return {
    teeTcbSvn: toHex(b.teeTcbSvn),
    mrSeam: toHex(b.mrSeam),
    mrSignerSeam: toHex(b.mrSignerSeam),
    seamAttributes: toHex(b.seamAttributes),
    tdAttributes: toHex(b.tdAttributes),
    xfam: toHex(b.xfam),
    mrTd: toHex(b.mrTd),
    mrConfigId: toHex(b.mrConfigId),
    mrOwner: toHex(b.mrOwner),
    mrOwnerConfig: toHex(b.mrOwnerConfig),
    rtmr: b.rtmr.map(toHex) as [string, string, string, string],
    reportData: toHex(b.reportData),
    ...(b.teeTcbSvn2 !== undefined ? { teeTcbSvn2: toHex(b.teeTcbSvn2) } : {}),
    ...(b.mrServiceTd !== undefined ? { mrServiceTd: toHex(b.mrServiceTd) } : {})
  }
}

/**
 * dcap-qvl throws plain Errors; their messages are mapped onto our codes. Our own checks run first
 * (collateral shape, strict chains, the SGX extension), so most of these are a second line.
 */
const QVL_ERRORS: Array<[RegExp, AttestationErrorCode]> = [
  [/ISV enclave report signature/i, 'QUOTE_SIGNATURE'],
  [/invalid for qe_report/i, 'QE_REPORT_SIGNATURE'],
  [/QE report hash mismatch/i, 'QE_REPORT_DATA'],
  [/invalid for (tcb_info|qe_identity)/i, 'COLLATERAL_SIGNATURE'],
  [/decode (TcbInfo|QeIdentity)|QE Identity id\/version|non-(TDX|SGX) TCB info|No (SGX|TDX) components|No TCB levels/i, 'COLLATERAL_MALFORMED'],
  [/too short for (TCB Info|QE Identity)/i, 'SIGNING_CHAIN'],
  [/(TCBInfo|QE Identity) expired|issue date is in the future/i, 'COLLATERAL_EXPIRED'],
  [/Certificate is revoked/i, 'PCK_REVOKED'],
  [/No matching TCB level/i, 'TCB_NO_MATCH'],
  [/TCB status is invalid/i, 'TCB_STATUS'],
  [/Fmspc mismatch/i, 'FMSPC'],
  [/QE (MRSIGNER|ISVPRODID|ISVSVN|MISCSELECT|ATTRIBUTES)|QE Identity/i, 'QE_IDENTITY'],
  [/Debug mode|SEPT_VE_DISABLE|Reserved bits|mr service td/i, 'TD_ATTRIBUTES'],
  [/certificate chain - (leaf|intermediate) signature/i, 'PCK_CHAIN_SIGNATURE'],
  [/certificate chain|PCK certificates|Certificate is expired|CaUsedAsEndEntity|Intel extension|OID .* is missing|(Fmspc|CpuSvn|PceSvn) length/i, 'PCK_CHAIN'],
  [/PCK cert format|Unsupported|must have version/i, 'QUOTE_UNSUPPORTED'],
  [/decode quote|TD10 report|Key length/i, 'QUOTE_MALFORMED'],
  // An attestation key that is not a P-256 point: node:crypto refuses to import it.
  [/Invalid JWK EC key/i, 'QUOTE_MALFORMED']
]

export function qvlCode (message: string): AttestationErrorCode {
  return QVL_ERRORS.find(([re]) => re.test(message))?.[1] ?? 'VERIFIER_FAILED'
}

/** What the PCK leaf's SGX extension says about the platform. */
interface PckPlatform {
  pceId: Buffer
  cpuSvn: Uint8Array
  pceSvn: number
  fmspc: Buffer
}

/**
 * The PCK leaf's SGX extension, read as dcap-qvl reads it (CPUSVN, PCESVN, FMSPC outside any
 * try; its parsePckExtension is not used: it fails on every real PCK certificate, see
 * docs/upstream/), plus the PCE-ID.
 */
function pckPlatform (leaf: X509Certificate): PckPlatform {
  const der = Buffer.from(leaf.raw)
  try {
    if (!der.includes(SGX_EXTENSION_OID_DER)) throw new Error('no SGX extension')
    const ext = dcap.utils.getIntelExtension(der)
    const cpuSvn = Uint8Array.from(dcap.utils.getCpuSvn(ext))
    const pceSvn = dcap.utils.getPceSvn(ext)
    const fmspc = Buffer.from(dcap.utils.getFmspc(ext))
    const pceId = Buffer.from((dcap.utils as any).findExtension([`${SGX_EXTENSION_OID}.3`], ext))
    if (pceId.length !== 2) throw new Error(`PCE-ID of ${pceId.length} bytes`)
    return { pceId, cpuSvn, pceSvn, fmspc }
  } catch (err) {
    throw new AttestationError('PCK_CHAIN', `PCK certificate lacks a valid SGX extension: ${(err as Error).message}`)
  }
}

/** Intel's TDX module check: identity TDX_<TEE_TCB_SVN[1]> (or tdxModule for 0), MRSIGNERSEAM, SEAMATTRIBUTES, ISVSVN level. */
function tdxModuleStatus (body: TdReportBody, tcbInfo: TcbInfo): TcbStatus {
  const major = body.teeTcbSvn[1] as number
  const isvsvn = body.teeTcbSvn[0] as number
  const id = `TDX_${major.toString(16).padStart(2, '0').toUpperCase()}`
  const identity = major === 0 ? undefined : (tcbInfo.tdxModuleIdentities ?? []).find((x) => x.id.toUpperCase() === id)
  const signer = major === 0 ? tcbInfo.tdxModule : identity
  if (signer === undefined) throw new AttestationError('TDX_MODULE', `TCB Info has no identity for TDX module ${id}`)
  if (!bytesEqual(Buffer.from(signer.mrsigner, 'hex'), body.mrSignerSeam)) throw new AttestationError('TDX_MODULE', 'MRSIGNERSEAM is not the TDX module signer')
  const want = Buffer.from(signer.attributes, 'hex')
  const mask = Buffer.from(signer.attributesMask, 'hex')
  if (body.seamAttributes.some((v, i) => (v & (mask[i] ?? 0)) !== ((want[i] ?? 0) & (mask[i] ?? 0)))) throw new AttestationError('TDX_MODULE', 'SEAMATTRIBUTES do not match the TDX module identity')
  if (identity === undefined) return 'UpToDate'
  const level = identity.tcbLevels.find((l) => isvsvn >= l.tcb.isvsvn)
  if (level === undefined) throw new AttestationError('TDX_MODULE', `TDX module ISVSVN ${isvsvn} is below every level of ${id}`)
  if (level.tcbStatus === 'Revoked') throw new AttestationError('TDX_MODULE', `TDX module ${id} ISVSVN ${isvsvn} is revoked`)
  return level.tcbStatus
}

interface CheckedPki {
  platform: PckPlatform
  pckPath: X509Certificate[]
  pckCrlIssuer: X509Certificate
  pckCrl: CheckedCrl
  rootCrl: CheckedCrl
  /** Where every time check of the PCK chain holds, and where those of the collateral's chains and CRLs do. */
  chainValidity: Validity
  collateralValidity: Validity
}

/** Chains and CRLs to the anchor; returns what the PCK leaf says of the platform, and what a cache keeps. */
async function checkPki (quote: TdxQuote, c: Collateral, anchor: TrustAnchor, at: Date): Promise<CheckedPki> {
  const chainValidity = openValidity()
  const collateralValidity = openValidity()
  // Chains first, so a quote under another root is refused as such (ROOT_MISMATCH), then CRLs.
  const pckPath = verifyChain(quote.pckChainPem, anchor, at, PCK_CHAIN_CODES, { length: 3, validity: chainValidity })
  const crlIssuerPath = verifyChain(c.pck_crl_issuer_chain, anchor, at, CRL_ISSUER_CHAIN_CODES, { leafIsCa: true, length: 2, validity: collateralValidity })
  const signingPaths = ([['TCB Info issuer chain', c.tcb_info_issuer_chain], ['QE Identity issuer chain', c.qe_identity_issuer_chain]] as const)
    .map(([name, chain]) => verifyChain(chain, anchor, at, { ...SIGNING_CHAIN_CODES, name }, { length: 2, validity: collateralValidity }))
  if (!Buffer.from((pckPath[1] as X509Certificate).raw).equals(Buffer.from((crlIssuerPath[0] as X509Certificate).raw))) {
    throw new AttestationError('CRL_ISSUER', 'the PCK CRL is not issued by the CA that issued the PCK certificate')
  }
  const platform = pckPlatform(pckPath[0] as X509Certificate)
  for (const path of signingPaths) {
    if (Buffer.from((path[0] as X509Certificate).raw).includes(SGX_EXTENSION_OID_DER)) throw new AttestationError('SIGNING_CHAIN', 'collateral is signed by a PCK certificate')
  }
  const rootCrl = await verifyCrl(c.root_ca_crl, pckPath[pckPath.length - 1] as X509Certificate, at, 'root CA CRL')
  const pckCrl = await verifyCrl(c.pck_crl, crlIssuerPath[0] as X509Certificate, at, 'PCK CRL')
  assertNotRevoked(pckPath, [pckCrl, rootCrl])
  for (const path of signingPaths) assertNotRevoked(path, [rootCrl])
  for (const crl of [rootCrl, pckCrl]) narrowValidity(collateralValidity, crl.thisUpdate, crl.nextUpdate)
  return { platform, pckPath, pckCrlIssuer: crlIssuerPath[0] as X509Certificate, pckCrl, rootCrl, chainValidity, collateralValidity }
}

/** The full path: our collateral and PKI checks, then dcap-qvl over everything. */
async function verifyCold (quoteBytes: Uint8Array, quote: TdxQuote, collateral: Collateral, anchor: TrustAnchor, atUnixSecs: number): Promise<{ checked: CheckedCollateral, pki: CheckedPki, report: DcapReport }> {
  // Callers may build collateral objects themselves: the same checks as parseCollateral, plus the signed JSON.
  const checked = checkCollateral(collateral)
  const pki = await checkPki(quote, checked.collateral, anchor, new Date(atUnixSecs * 1000))
  let report
  try {
    report = dcap.QuoteVerifier.newWithRootCa(Buffer.from(anchor.der)).verify(Buffer.from(quoteBytes), checked.collateral as any, atUnixSecs)
  } catch (err) {
    const message = (err as Error).message
    throw new AttestationError(qvlCode(message), message, {}, { cause: err })
  }
  return { checked, pki, report: { status: report.status, advisoryIds: report.advisory_ids } }
}

/** After a full path accepted both (dcap-qvl included), keeps the collateral and the chain for the fast path. */
function remember (cache: VerificationCache, keys: { collateral: string, chain: string }, quote: TdxQuote, anchor: TrustAnchor, { checked, pki }: { checked: CheckedCollateral, pki: CheckedPki }): void {
  if (!cache.hasCollateral(keys.collateral)) {
    const { tcbInfo, qeIdentity, collateral: c } = checked
    // dcap-qvl's own windows for TCB Info and QE Identity, on top of our chains and CRLs.
    const validity = { ...pki.collateralValidity }
    for (const signed of [tcbInfo, qeIdentity]) narrowValidity(validity, Date.parse(signed.issueDate), Date.parse(signed.nextUpdate))
    cache.rememberCollateral(keys.collateral, {
      validity,
      tcbInfo,
      qeIdentity,
      tcbInfoHash: createHash('sha256').update(c.tcb_info).digest('hex'),
      pckCrlIssuer: Buffer.from(pki.pckCrlIssuer.raw),
      crls: [pki.pckCrl, pki.rootCrl],
      qvlRevokedSerials: once(() => new Set([...qvlCrlSerials(Buffer.from(c.root_ca_crl, 'hex')), ...qvlCrlSerials(Buffer.from(c.pck_crl, 'hex'))]))
    })
  }
  if (!cache.hasChain(keys.chain)) {
    const pem = quote.pckChainPem
    cache.rememberChain(keys.chain, {
      validity: { ...pki.chainValidity },
      path: pki.pckPath,
      leafKey: (pki.pckPath[0] as X509Certificate).publicKey,
      ...pki.platform,
      // dcap-qvl checks the chain as shipped (a root copy included) and the anchor against the CRLs.
      qvlSerials: once(() => [...splitPemChain(pem), anchor.der].map(qvlSerial))
    })
  }
}

function checkPolicy (body: TdReportBody, policy: VerificationPolicy): void {
  const e = policy.expected
  if (e?.mrTd !== undefined && !bytesEqual(e.mrTd, body.mrTd)) throw new AttestationError('MEASUREMENT_MISMATCH', 'MRTD differs from the expected one')
  if (e?.mrConfigId !== undefined && !bytesEqual(e.mrConfigId, body.mrConfigId)) throw new AttestationError('MEASUREMENT_MISMATCH', 'MRCONFIGID differs from the expected one')
  e?.rtmr?.forEach((want, i) => {
    if (want !== undefined && !bytesEqual(want, body.rtmr[i] as Uint8Array)) throw new AttestationError('MEASUREMENT_MISMATCH', `RTMR${i} differs from the expected one`)
  })
  if (policy.reportData !== undefined && !bytesEqual(policy.reportData, body.reportData)) throw new AttestationError('REPORT_DATA_MISMATCH', 'REPORTDATA is not the expected binding')
}

export async function verifyTdxQuote (quoteBytes: Uint8Array, collateral: Collateral, options: VerifyOptions): Promise<TdxVerification> {
  const { anchor, atUnixSecs } = options
  const policy = options.policy ?? tcbPolicy()
  const cache = options.cache === undefined ? sharedVerificationCache : options.cache === false ? undefined : options.cache
  const result: TdxVerification = { accepted: false, simulated: anchor.simulated, rootSha256: anchor.sha256, verifiedAtUnixSecs: atUnixSecs, advisoryIds: [] }
  try {
    const quote = parseTdxQuote(quoteBytes)
    result.quoteVersion = quote.version
    result.bodyType = quote.bodyType
    result.measurements = measurementsOf(quote.body)
    if (toHex(quote.qeVendorId) !== INTEL_QE_VENDOR_ID) throw new AttestationError('QE_VENDOR', `QE vendor id ${toHex(quote.qeVendorId)} is not Intel's`)

    // Windows are compared in whole milliseconds, so only whole seconds take the fast path.
    const atMs = atUnixSecs * 1000
    const collKey = cache !== undefined && Number.isSafeInteger(atUnixSecs) ? collateralKey(anchor, collateral) : undefined
    const keys = collKey !== undefined ? { collateral: collKey, chain: chainKey(anchor, quote.pckChainPem) } : undefined
    const verified = cache !== undefined && keys !== undefined ? cache.collateral(keys.collateral, atMs) : undefined
    const verifiedChain = cache !== undefined && keys !== undefined && verified !== undefined ? cache.chain(keys.chain, atMs) : undefined
    let tcbInfo: TcbInfo
    let pceId: Buffer
    let report: DcapReport
    if (cache !== undefined && verified !== undefined && verifiedChain !== undefined) {
      cache.stats.warm++
      report = checkQuoteAgainstVerified(quote, verified, verifiedChain, cache, qvlCode)
      tcbInfo = verified.tcbInfo
      pceId = verifiedChain.pceId
    } else {
      if (cache !== undefined) cache.stats.cold++
      const cold = await verifyCold(quoteBytes, quote, collateral, anchor, atUnixSecs)
      if (cache !== undefined && keys !== undefined) remember(cache, keys, quote, anchor, cold)
      report = cold.report
      tcbInfo = cold.checked.tcbInfo
      pceId = cold.pki.platform.pceId
    }
    result.fmspc = tcbInfo.fmspc.toLowerCase()

    const qeReportData = quote.qeReport.reportData
    const expectedHash = createHash('sha256').update(quote.attestationKey).update(quote.qeAuthData).digest()
    if (!bytesEqual(expectedHash, qeReportData.subarray(0, 32)) || qeReportData.subarray(32).some((b) => b !== 0)) {
      throw new AttestationError('QE_REPORT_DATA', 'QE REPORTDATA is not sha256(attestation key ‖ QE auth data) ‖ 32 zero bytes')
    }
    if (pceId.toString('hex') !== tcbInfo.pceId.toLowerCase()) throw new AttestationError('PCEID', `PCK PCE-ID ${pceId.toString('hex')} is not the TCB Info's ${tcbInfo.pceId}`)
    const attrs = quote.body.tdAttributes
    if (((attrs[0] as number) & TD_ATTR_DEBUG) !== 0) throw new AttestationError('TD_ATTRIBUTES', 'the TD runs in DEBUG mode')
    if (((attrs[TD_ATTR_SEPT_VE_DISABLE_BYTE] as number) & TD_ATTR_SEPT_VE_DISABLE_BIT) === 0) throw new AttestationError('TD_ATTRIBUTES', 'SEPT_VE_DISABLE is not set')

    const moduleStatus = tdxModuleStatus(quote.body, tcbInfo)
    result.tdxModuleStatus = moduleStatus
    const status = worseStatus(report.status as TcbStatus, moduleStatus)
    result.tcbStatus = status
    result.advisoryIds = report.advisoryIds
    if (!policy.acceptedTcbStatuses.includes(status)) {
      throw new AttestationError('TCB_STATUS', `TCB status ${status} is not accepted (policy: ${policy.acceptedTcbStatuses.join(', ')})${report.advisoryIds.length > 0 ? `; advisories ${report.advisoryIds.join(', ')}` : ''}`)
    }
    checkPolicy(quote.body, policy)
    result.accepted = true
  } catch (err) {
    if (err instanceof AttestationError) {
      result.code = err.code
      result.reason = err.message
    } else {
      // Only a bug of ours or of a dependency lands here; every refusal above has its own code.
      result.code = 'VERIFIER_FAILED'
      result.reason = (err as Error)?.message ?? String(err)
    }
  }
  return result
}
