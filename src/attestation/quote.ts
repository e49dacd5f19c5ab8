/**
 * TDX DCAP quote parsing, v4 (TD 1.0 body) and v5 (TD 1.0 or TD 1.5 body), strict about every
 * length: header, report body, signature data (quote signature, attestation key, type-6 QE report
 * certification data wrapping the QE report, its signature, QE auth data and the type-5 PCK
 * chain). Bytes after the signature data may only be zero padding. All integers little-endian.
 */
import { AttestationError } from './errors.js'

export const MAX_QUOTE_BYTES = 64 * 1024
const HEADER_BYTES = 48
const TD10_BODY_BYTES = 584
const TD15_BODY_BYTES = 648
const SGX_REPORT_BYTES = 384
const TEE_TYPE_TDX = 0x81
const ATT_KEY_ECDSA_P256 = 2
const CERT_DATA_QE_REPORT = 6
const CERT_DATA_PCK_CHAIN = 5

export interface TdReportBody {
  teeTcbSvn: Uint8Array
  mrSeam: Uint8Array
  mrSignerSeam: Uint8Array
  seamAttributes: Uint8Array
  tdAttributes: Uint8Array
  xfam: Uint8Array
  mrTd: Uint8Array
  mrConfigId: Uint8Array
  mrOwner: Uint8Array
  mrOwnerConfig: Uint8Array
  rtmr: [Uint8Array, Uint8Array, Uint8Array, Uint8Array]
  reportData: Uint8Array
  /** TD 1.5 only. */
  teeTcbSvn2?: Uint8Array
  mrServiceTd?: Uint8Array
}

export interface QeReport {
  cpuSvn: Uint8Array
  miscSelect: number
  attributes: Uint8Array
  mrEnclave: Uint8Array
  mrSigner: Uint8Array
  isvProdId: number
  isvSvn: number
  reportData: Uint8Array
}

export interface TdxQuote {
  version: 4 | 5
  bodyType: 'td10' | 'td15'
  qeVendorId: Uint8Array
  body: TdReportBody
  /** header ‖ (v5 body descriptor) ‖ body: what the attestation key signed. */
  signedBytes: Uint8Array
  signature: Uint8Array
  attestationKey: Uint8Array
  qeReportBytes: Uint8Array
  qeReport: QeReport
  qeReportSignature: Uint8Array
  qeAuthData: Uint8Array
  /** PEM text of leaf, intermediate CA and root, as shipped in the quote. */
  pckChainPem: string
  /** Zero bytes after the signature data (the v4 fixture carries 70). */
  paddingBytes: number
}

function fail (message: string): never {
  throw new AttestationError('QUOTE_MALFORMED', message)
}

class Reader {
  private readonly view: DataView
  constructor (readonly bytes: Uint8Array, public at = 0) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  take (n: number, what: string): Uint8Array {
    if (n < 0 || this.at + n > this.bytes.length) fail(`quote truncated reading ${what} (need ${this.at + n}, have ${this.bytes.length})`)
    const out = this.bytes.subarray(this.at, this.at + n)
    this.at += n
    return out
  }

  u16 (what: string): number {
    const v = this.take(2, what)
    return v[0]! | (v[1]! << 8)
  }

  u32 (what: string): number {
    this.take(4, what)
    return this.view.getUint32(this.at - 4, true)
  }
}

function parseBody (r: Reader, td15: boolean): TdReportBody {
  const f = (n: number, what: string) => r.take(n, what)
  const body: TdReportBody = {
    teeTcbSvn: f(16, 'TEE_TCB_SVN'),
    mrSeam: f(48, 'MRSEAM'),
    mrSignerSeam: f(48, 'MRSIGNERSEAM'),
    seamAttributes: f(8, 'SEAMATTRIBUTES'),
    tdAttributes: f(8, 'TDATTRIBUTES'),
    xfam: f(8, 'XFAM'),
    mrTd: f(48, 'MRTD'),
    mrConfigId: f(48, 'MRCONFIGID'),
    mrOwner: f(48, 'MROWNER'),
    mrOwnerConfig: f(48, 'MROWNERCONFIG'),
    rtmr: [f(48, 'RTMR0'), f(48, 'RTMR1'), f(48, 'RTMR2'), f(48, 'RTMR3')],
    reportData: f(64, 'REPORTDATA')
  }
  if (td15) {
    body.teeTcbSvn2 = f(16, 'TEE_TCB_SVN2')
    body.mrServiceTd = f(48, 'MRSERVICETD')
  }
  return body
}

function parseQeReport (bytes: Uint8Array): QeReport {
  const u16 = (o: number) => bytes[o]! | (bytes[o + 1]! << 8)
  return {
    cpuSvn: bytes.subarray(0, 16),
    miscSelect: new DataView(bytes.buffer, bytes.byteOffset).getUint32(16, true),
    attributes: bytes.subarray(48, 64),
    mrEnclave: bytes.subarray(64, 96),
    mrSigner: bytes.subarray(128, 160),
    isvProdId: u16(256),
    isvSvn: u16(258),
    reportData: bytes.subarray(320, 384)
  }
}

export function parseTdxQuote (bytes: Uint8Array): TdxQuote {
  if (bytes.length > MAX_QUOTE_BYTES) throw new AttestationError('QUOTE_TOO_LARGE', `quote of ${bytes.length} bytes exceeds ${MAX_QUOTE_BYTES}`)
  const r = new Reader(bytes)
  const version = r.u16('version')
  const attKeyType = r.u16('attestation key type')
  const teeType = r.u32('TEE type')
  r.take(4, 'reserved')
  const qeVendorId = r.take(16, 'QE vendor id')
  r.take(20, 'user data')
  if (version !== 4 && version !== 5) throw new AttestationError('QUOTE_UNSUPPORTED', `quote version ${version} (only 4 and 5)`)
  if (teeType !== TEE_TYPE_TDX) throw new AttestationError('QUOTE_UNSUPPORTED', `TEE type 0x${teeType.toString(16)} is not TDX`)
  if (attKeyType !== ATT_KEY_ECDSA_P256) throw new AttestationError('QUOTE_UNSUPPORTED', `attestation key type ${attKeyType} (only ECDSA P-256)`)
  let td15 = false
  if (version === 5) {
    const bodyType = r.u16('body type')
    const bodySize = r.u32('body size')
    if (bodyType === 2 && bodySize === TD10_BODY_BYTES) td15 = false
    else if (bodyType === 3 && bodySize === TD15_BODY_BYTES) td15 = true
    else throw new AttestationError('QUOTE_UNSUPPORTED', `v5 body type ${bodyType} of ${bodySize} bytes is not a TD report`)
  }
  const body = parseBody(r, td15)
  const signedBytes = bytes.subarray(0, r.at)
  const sigDataLength = r.u32('signature data length')
  const sigDataEnd = r.at + sigDataLength
  if (sigDataEnd > bytes.length) fail(`signature data runs past the quote (${sigDataEnd} > ${bytes.length})`)
  const signature = r.take(64, 'quote signature')
  const attestationKey = r.take(64, 'attestation key')
  const certType = r.u16('certification data type')
  const certSize = r.u32('certification data size')
  if (certType !== CERT_DATA_QE_REPORT) throw new AttestationError('QUOTE_UNSUPPORTED', `certification data type ${certType} (need 6, QE report)`)
  const certEnd = r.at + certSize
  if (certEnd !== sigDataEnd) fail(`certification data size ${certSize} does not end the signature data`)
  const qeReportBytes = r.take(SGX_REPORT_BYTES, 'QE report')
  const qeReportSignature = r.take(64, 'QE report signature')
  const qeAuthData = r.take(r.u16('QE auth data length'), 'QE auth data')
  const innerType = r.u16('inner certification data type')
  const innerSize = r.u32('inner certification data size')
  if (innerType !== CERT_DATA_PCK_CHAIN) throw new AttestationError('QUOTE_UNSUPPORTED', `inner certification data type ${innerType} (need 5, PCK chain)`)
  const chain = r.take(innerSize, 'PCK chain')
  if (r.at !== sigDataEnd) fail('QE certification data does not fill its declared size')
  const padding = bytes.subarray(sigDataEnd)
  if (padding.some((b) => b !== 0)) throw new AttestationError('QUOTE_TRAILING_BYTES', `${padding.length} bytes after the signature data are not zero padding`)
  return {
    version,
    bodyType: td15 ? 'td15' : 'td10',
    qeVendorId,
    body,
    signedBytes,
    signature,
    attestationKey,
    qeReportBytes,
    qeReport: parseQeReport(qeReportBytes),
    qeReportSignature,
    qeAuthData,
    // Real quotes end the PEM chain with a NUL byte.
    pckChainPem: new TextDecoder('latin1').decode(chain).replace(/\0+$/, ''),
    paddingBytes: padding.length
  }
}
