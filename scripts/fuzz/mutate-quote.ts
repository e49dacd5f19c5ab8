/**
 * TDX quote mutations that know the layout (src/attestation/quote.ts): each length and type field
 * gets boundary values, each region its own bit flips, and the PCK chain, QE auth data and body
 * can change while every enclosing length is rewritten to stay consistent, so mutants get past
 * the parser into the PKI and signature checks. Raw damage on top now and then.
 */
import { parseTdxQuote } from '../../src/attestation/quote.js'
import { mutateRaw } from './mutate-raw.js'
import { copy } from './copy.js'
import type { Mutant } from './mutate-cbor.js'
import type { Rng } from './rng.js'

interface QuoteParts {
  header: Uint8Array
  /** v5 only: body type and size. */
  descriptor?: { type: number, size: number }
  body: Uint8Array
  signature: Uint8Array
  attestationKey: Uint8Array
  certType: number
  qeReport: Uint8Array
  qeReportSignature: Uint8Array
  qeAuthData: Uint8Array
  innerType: number
  chain: Uint8Array
  padding: Uint8Array
  /** Length fields to write instead of the true ones. */
  lie?: Partial<Record<'sigData' | 'cert' | 'auth' | 'inner' | 'bodySize', number>>
}

export function quoteParts (bytes: Uint8Array): QuoteParts {
  const q = parseTdxQuote(bytes)
  const bodyStart = q.version === 5 ? 54 : 48
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const sigStart = q.signedBytes.length + 4
  const certTypeAt = sigStart + 128
  const authLenAt = certTypeAt + 6 + 384 + 64
  const innerAt = authLenAt + 2 + q.qeAuthData.length
  const chainLength = dv.getUint32(innerAt + 2, true)
  const chainAt = innerAt + 6
  return {
    header: copy(bytes, 0, 48),
    ...(q.version === 5 ? { descriptor: { type: dv.getUint16(48, true), size: dv.getUint32(50, true) } } : {}),
    body: copy(bytes, bodyStart, q.signedBytes.length),
    signature: copy(q.signature),
    attestationKey: copy(q.attestationKey),
    certType: dv.getUint16(certTypeAt, true),
    qeReport: copy(q.qeReportBytes),
    qeReportSignature: copy(q.qeReportSignature),
    qeAuthData: copy(q.qeAuthData),
    innerType: dv.getUint16(innerAt, true),
    chain: copy(bytes, chainAt, chainAt + chainLength),
    padding: copy(bytes, chainAt + chainLength)
  }
}

const u16 = (n: number): Uint8Array => { const b = new Uint8Array(2); new DataView(b.buffer).setUint16(0, n & 0xffff, true); return b }
const u32 = (n: number): Uint8Array => { const b = new Uint8Array(4); new DataView(b.buffer).setUint32(0, n >>> 0, true); return b }
const cat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.length }
  return out
}

export function buildQuote (p: QuoteParts): Uint8Array {
  const lie = p.lie ?? {}
  const inner = cat(u16(p.innerType), u32(lie.inner ?? p.chain.length), p.chain)
  const cert = cat(p.qeReport, p.qeReportSignature, u16(lie.auth ?? p.qeAuthData.length), p.qeAuthData, inner)
  const sigData = cat(p.signature, p.attestationKey, u16(p.certType), u32(lie.cert ?? cert.length), cert)
  const descriptor = p.descriptor !== undefined ? cat(u16(p.descriptor.type), u32(lie.bodySize ?? p.descriptor.size)) : new Uint8Array(0)
  return cat(p.header, descriptor, p.body, u32(lie.sigData ?? sigData.length), sigData, p.padding)
}

const LENGTHS = [0, 1, 2, 63, 64, 383, 384, 0xffff, 0x10000, 0x7fffffff, 0xffffffff]
const TYPES = [0, 1, 2, 3, 4, 5, 6, 7, 0x81, 0xffff]

function flip (rng: Rng, b: Uint8Array, count = 1): Uint8Array {
  const out = copy(b)
  for (let i = 0; i < count && out.length > 0; i++) { const at = rng.int(out.length); out[at] = (out[at] as number) ^ (1 << rng.int(8)) }
  return out
}

function editPem (rng: Rng, chain: Uint8Array): { chain: Uint8Array, op: string } {
  const textIn = new TextDecoder('latin1').decode(chain)
  const nul = textIn.endsWith('\0') ? '\0' : ''
  const pem = textIn.replace(/\0+$/, '')
  const certs = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? []
  let out: string
  let op: string
  switch (rng.int(8)) {
    case 0: { // one base64 character
      const lines = pem.split('\n')
      const body = lines.map((l, i) => [l, i] as const).filter(([l]) => l.length > 0 && !l.startsWith('-----'))
      if (body.length === 0) return { chain, op: 'pem.none' }
      const [line, i] = rng.pick(body)
      const at = rng.int(line.length)
      lines[i] = line.slice(0, at) + rng.pick(['A', '/', '+', '=', ' ', '*', 'a']) + line.slice(at + 1)
      out = lines.join('\n'); op = 'pem.char'; break
    }
    case 1: out = certs.slice(1).join(''); op = 'pem.dropFirst'; break
    case 2: out = certs.slice(0, -1).join(''); op = 'pem.dropLast'; break
    case 3: out = [certs[0] ?? '', ...certs].join(''); op = 'pem.dupFirst'; break
    case 4: out = [...certs].reverse().join(''); op = 'pem.reverse'; break
    case 5: out = pem.replace('-----BEGIN CERTIFICATE-----', rng.pick(['-----BEGIN CERT-----', '-----BEGIN PRIVATE KEY-----', '', '-----BEGIN CERTIFICATE-----\n-----BEGIN CERTIFICATE-----'])); op = 'pem.header'; break
    case 6: out = pem.replace(/\n/g, rng.pick(['\r\n', '\n\n', ' \n', ''])); op = 'pem.whitespace'; break
    default: out = certs.join(rng.pick(['', 'junk\n', '\0'])) + rng.pick(['', 'trailing text', '\0\0']); op = 'pem.between'
  }
  return { chain: new TextEncoder().encode(out + (rng.chance(0.8) ? nul : '')), op }
}

/** A mutant of a quote: consistent structural edits, lying length fields, region flips, raw damage. */
export function mutateQuote (rng: Rng, seed: Uint8Array, parts: QuoteParts): Mutant {
  const p: QuoteParts = { ...parts, lie: {} }
  const ops: string[] = []
  const rounds = rng.range(1, 2)
  for (let i = 0; i < rounds; i++) {
    switch (rng.int(12)) {
      case 0: {
        const field = rng.pick(['sigData', 'cert', 'auth', 'inner', 'bodySize'] as const)
        p.lie = { ...p.lie, [field]: rng.pick(LENGTHS) }
        ops.push(`length.${field}`)
        break
      }
      case 1: {
        const h = copy(p.header)
        const dv = new DataView(h.buffer)
        const which = rng.int(3)
        if (which === 0) dv.setUint16(0, rng.pick([3, 4, 5, 6, 0xffff]), true)
        else if (which === 1) dv.setUint16(2, rng.pick(TYPES), true)
        else dv.setUint32(4, rng.pick([0, 0x81, 0x80, 0xffffffff]), true)
        p.header = h
        ops.push(`header.${['version', 'attKeyType', 'teeType'][which] as string}`)
        break
      }
      case 2:
        if (rng.chance(0.5)) p.certType = rng.pick(TYPES)
        else p.innerType = rng.pick(TYPES)
        ops.push('certType')
        break
      case 3: {
        const region = rng.pick(['header', 'body', 'signature', 'attestationKey', 'qeReport', 'qeReportSignature', 'qeAuthData'] as const)
        p[region] = flip(rng, p[region], rng.geometric(4))
        ops.push(`flip.${region}`)
        break
      }
      case 4: case 5: {
        const e = editPem(rng, p.chain)
        p.chain = e.chain
        ops.push(e.op)
        break
      }
      case 6:
        p.qeAuthData = rng.chance(0.5) ? p.qeAuthData.subarray(0, rng.int(p.qeAuthData.length + 1)) : cat(p.qeAuthData, rng.bytes(rng.geometric(64)))
        ops.push('auth.resize')
        break
      case 7:
        p.padding = rng.chance(0.7) ? new Uint8Array(rng.geometric(128)) : cat(new Uint8Array(rng.int(8)), Uint8Array.of(rng.range(1, 255)))
        ops.push('padding')
        break
      case 8: { // the v5 form of the same quote (TD 1.0 or a lying TD 1.5 descriptor)
        const h = copy(p.header)
        new DataView(h.buffer).setUint16(0, 5, true)
        p.header = h
        p.descriptor = rng.chance(0.7) ? { type: 2, size: 584 } : { type: rng.pick([1, 2, 3, 4]), size: rng.pick([584, 648, 0, 0xffffffff]) }
        if (p.descriptor.type === 3 && p.descriptor.size === 648 && rng.chance(0.5)) p.body = cat(p.body, new Uint8Array(64))
        ops.push('v5')
        break
      }
      case 9:
        p.body = rng.chance(0.5) ? p.body.subarray(0, rng.int(p.body.length)) : cat(p.body, rng.bytes(rng.geometric(64)))
        ops.push('body.resize')
        break
      case 10:
        p.chain = rng.chance(0.5) ? p.chain.subarray(0, rng.int(p.chain.length + 1)) : new Uint8Array(0)
        ops.push('chain.cut')
        break
      default: {
        const raw = mutateRaw(rng, buildQuote(p))
        return { bytes: raw.bytes, ops: [...ops, ...raw.ops] }
      }
    }
  }
  return { bytes: buildQuote(p), ops }
}
