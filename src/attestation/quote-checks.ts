/**
 * The per-quote part of DCAP verification, for a quote whose collateral and PCK chain a full
 * verification has already accepted: what @phala/dcap-qvl checks of the quote itself, in its order
 * and with its semantics, so the verdict code is the one the full path gives. Revocation and
 * everything that joins the chain to this collateral are checked here every time. Signatures go
 * through node:crypto (OpenSSL) with keys imported once.
 */
import { createHash, verify, type KeyObject } from 'node:crypto'
import { bytesEqual } from '../market/bytes.js'
import { AttestationError, type AttestationErrorCode } from './errors.js'
import { assertNotRevoked } from './pki.js'
import { TCB_STATUSES } from './policy.js'
import type { TdxQuote } from './quote.js'
import type { TcbMatch, VerificationCache, VerifiedChain, VerifiedCollateral } from './verification-cache.js'

/** What the DCAP core concluded: the merged platform/QE TCB status and advisories. */
export interface DcapReport {
  status: string
  advisoryIds: string[]
}

// dcap-qvl's order of severity; any other status is the worst.
const SEVERITY: readonly string[] = [...TCB_STATUSES, 'Revoked']
const severity = (s: string) => SEVERITY.includes(s) ? SEVERITY.indexOf(s) : 100

function merge (a: DcapReport, b: DcapReport): DcapReport {
  return {
    status: severity(b.status) > severity(a.status) ? b.status : a.status,
    advisoryIds: [...a.advisoryIds, ...b.advisoryIds.filter((id, i, all) => !a.advisoryIds.includes(id) && all.indexOf(id) === i)]
  }
}

const fail = (code: AttestationErrorCode, message: string): never => { throw new AttestationError(code, message) }

function ecdsaP256Sha256 (key: KeyObject, data: Uint8Array, rs: Uint8Array): boolean {
  try {
    return verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, rs)
  } catch {
    return false
  }
}

const atLeast = (actual: Uint8Array, required: number[]) => actual.length === required.length && required.every((r, i) => (actual[i] as number) >= r)

/** The first TCB level whose PCESVN, SGX and TDX components the platform meets (Intel's order: best first). */
export function matchTcbLevel (tcbInfo: VerifiedCollateral['tcbInfo'], cpuSvn: Uint8Array, pceSvn: number, teeTcbSvn: Uint8Array): TcbMatch {
  for (const level of tcbInfo.tcbLevels) {
    if (pceSvn < level.tcb.pcesvn) continue
    if (!atLeast(cpuSvn, level.tcb.sgxtcbcomponents.map((c) => c.svn))) continue
    if (!atLeast(teeTcbSvn, level.tcb.tdxtcbcomponents.map((c) => c.svn))) continue
    return { status: level.tcbStatus, advisoryIds: [...(level.advisoryIDs ?? [])] }
  }
  return { noMatch: true }
}

/** The QE report against the QE Identity: signer, product, debug, MISCSELECT, ATTRIBUTES, then its TCB level. */
function qeIdentityStatus (quote: TdxQuote, qe: VerifiedCollateral['qeIdentity']): DcapReport {
  const r = quote.qeReport
  if (!bytesEqual(r.mrSigner, Buffer.from(qe.mrsigner, 'hex'))) fail('QE_IDENTITY', 'QE MRSIGNER is not the QE Identity\'s')
  if (r.isvProdId !== qe.isvprodid) fail('QE_IDENTITY', `QE ISVPRODID ${r.isvProdId} is not the QE Identity's ${qe.isvprodid}`)
  // dcap-qvl reports a debug QE as "Debug mode is enabled", which the full path maps to TD_ATTRIBUTES.
  if (((r.attributes[0] as number) & 0x02) !== 0) fail('TD_ATTRIBUTES', 'the QE runs in debug mode')
  const mask = Buffer.from(qe.miscselectMask, 'hex').readUInt32LE(0)
  if ((r.miscSelect & mask) !== (Buffer.from(qe.miscselect, 'hex').readUInt32LE(0) & mask)) fail('QE_IDENTITY', 'QE MISCSELECT does not match the QE Identity')
  const want = Buffer.from(qe.attributes, 'hex')
  const attrMask = Buffer.from(qe.attributesMask, 'hex')
  for (let i = 0; i < 16; i++) {
    if ((((r.attributes[i] as number) ^ (want[i] as number)) & (attrMask[i] as number)) !== 0) fail('QE_IDENTITY', `QE ATTRIBUTES byte ${i} does not match the QE Identity`)
  }
  const level = qe.tcbLevels.find((l) => r.isvSvn >= l.tcb.isvsvn)
  if (level === undefined) return fail('QE_IDENTITY', `QE ISVSVN ${r.isvSvn} is below every level of the QE Identity`)
  return { status: level.tcbStatus, advisoryIds: [...(level.advisoryIDs ?? [])] }
}

/** TD attributes as dcap-qvl reads them: no debug, no reserved bits, SEPT_VE_DISABLE; TD 1.5 without a service TD. */
function checkTdAttributes (quote: TdxQuote): void {
  if (quote.body.mrServiceTd?.some((b) => b !== 0) === true) fail('TD_ATTRIBUTES', 'MRSERVICETD is not zero')
  const a = quote.body.tdAttributes
  const b = (i: number) => a[i] as number
  if (b(0) !== 0) fail('TD_ATTRIBUTES', 'the TD runs in DEBUG mode (TUD bits set)')
  if (b(1) !== 0 || b(2) !== 0 || (b(3) & 0x2f) !== 0 || b(4) !== 0 || b(5) !== 0 || b(6) !== 0 || (b(7) & 0x7f) !== 0) fail('TD_ATTRIBUTES', 'reserved TD attribute bits are set')
  if ((b(3) & 0x10) === 0) fail('TD_ATTRIBUTES', 'SEPT_VE_DISABLE is not set')
}

/**
 * The checks between a cached collateral/chain and this quote, in the order the full path makes
 * them (our PKI checks, then dcap-qvl's), throwing AttestationError with the full path's codes.
 */
export function checkQuoteAgainstVerified (quote: TdxQuote, c: VerifiedCollateral, chain: VerifiedChain, cache: VerificationCache, qvlCode: (message: string) => AttestationErrorCode): DcapReport {
  // Ours: the PCK CRL must come from the chain's CA; the current CRLs, issuer-aware.
  if (!Buffer.from((chain.path[1] as { raw: Buffer }).raw).equals(c.pckCrlIssuer)) fail('CRL_ISSUER', 'the PCK CRL is not issued by the CA that issued the PCK certificate')
  assertNotRevoked(chain.path, c.crls)
  // dcap-qvl: any listed serial revokes, whichever CRL lists it.
  if (chain.qvlSerials().some((s) => c.qvlRevokedSerials().has(s))) fail('PCK_REVOKED', 'a certificate of the PCK chain has a serial listed in a CRL')

  if (!ecdsaP256Sha256(chain.leafKey, quote.qeReportBytes, quote.qeReportSignature)) fail('QE_REPORT_SIGNATURE', 'the QE report signature does not verify under the PCK key')
  const qeHash = createHash('sha256').update(quote.attestationKey).update(quote.qeAuthData).digest()
  if (!bytesEqual(qeHash, quote.qeReport.reportData.subarray(0, 32))) fail('QE_REPORT_DATA', 'QE report hash mismatch')
  const qeStatus = qeIdentityStatus(quote, c.qeIdentity)

  let key: KeyObject
  try {
    key = cache.attestationKey(quote.attestationKey)
  } catch (err) {
    throw new AttestationError(qvlCode((err as Error).message), `attestation key: ${(err as Error).message}`, {}, { cause: err })
  }
  if (!ecdsaP256Sha256(key, quote.signedBytes, quote.signature)) fail('QUOTE_SIGNATURE', 'the quote signature does not verify under the attestation key')

  if (!chain.fmspc.equals(Buffer.from(c.tcbInfo.fmspc, 'hex'))) fail('FMSPC', 'the PCK certificate\'s FMSPC is not the TCB Info\'s')
  const teeTcbSvn = quote.body.teeTcbSvn
  const matchKey = `${chain.fmspc.toString('hex')}:${Buffer.from(chain.cpuSvn).toString('hex')}:${chain.pceSvn}:${Buffer.from(teeTcbSvn).toString('hex')}:${c.tcbInfoHash}`
  const match = cache.tcbMatch(matchKey, () => matchTcbLevel(c.tcbInfo, chain.cpuSvn, chain.pceSvn, teeTcbSvn))
  if ('noMatch' in match) return fail('TCB_NO_MATCH', 'No matching TCB level found')
  const report = merge({ status: match.status, advisoryIds: [...match.advisoryIds] }, qeStatus)
  if (report.status === 'Revoked' || severity(report.status) === 100) fail('TCB_STATUS', `TCB status is invalid: ${report.status}`)
  checkTdAttributes(quote)
  return report
}
