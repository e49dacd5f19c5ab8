/**
 * Collateral mutations (JSON text of a QuoteCollateralV3 object): keys dropped, added, duplicated
 * or renamed (`__proto__` among them), values of another type, strings cut, grown, re-cased or
 * broken (hex, PEM, the signed TCB Info / QE Identity JSON inside), deep nesting, oversize text,
 * and raw text damage. With a signer, a mutated TCB Info or QE Identity can be re-signed so the
 * mutant gets past the signature into the TCB logic (and its acceptance is no forgery).
 */
import { mutateRaw } from './mutate-raw.js'
import type { Mutant } from './mutate-cbor.js'
import type { Rng } from './rng.js'

const utf8 = new TextEncoder()
const KEYS = ['__proto__', 'constructor', 'toString', 'extra', 'pck_crl', 'tcb_info', 'qe_identity']
const SIGNED = ['tcb_info', 'qe_identity'] as const

/** An own property even for `__proto__` (plain assignment would set the prototype instead). */
function setKey (obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true })
}

export type JsonSigner = (field: 'tcb_info' | 'qe_identity', text: string) => Promise<string>

function wrongValue (rng: Rng, old: unknown): unknown {
  return rng.pick<unknown>([null, 0, -1, 1.5, true, [], {}, [old], { value: old }, '', 'x'.repeat(rng.pick([1, 1024, 300_000])), String(old).toUpperCase()])
}

function editString (rng: Rng, s: string): string {
  if (s.length === 0) return 'a'
  const at = rng.int(s.length)
  switch (rng.int(8)) {
    case 0: return s.slice(0, at)
    case 1: return s + rng.pick(['0', '00', 'g', '\n', ' ', '\u0000', 'é'])
    case 2: return s.slice(0, at) + rng.pick(['0', 'f', 'F', 'z', '\n', '-', '=', '\\', '"']) + s.slice(at + 1)
    case 3: return rng.chance(0.5) ? s.toUpperCase() : s.toLowerCase()
    case 4: return s + s
    case 5: return s.replace(/\n/g, rng.pick(['\r\n', '', '\n\n']))
    case 6: return s.slice(0, at) + s.slice(at + rng.geometric(16))
    default: return s.slice(at) + s.slice(0, at)
  }
}

/** Mutates one field of a JSON object held in a string (TCB Info, QE Identity). */
function editInnerJson (rng: Rng, text: string): string {
  let inner: Record<string, unknown>
  try { inner = JSON.parse(text) as Record<string, unknown> } catch { return editString(rng, text) }
  const keys = Object.keys(inner)
  const key = rng.pick(keys)
  const v = inner[key]
  switch (rng.int(6)) {
    case 0: delete inner[key]; break
    case 1: inner[key] = wrongValue(rng, v); break
    case 2: inner[key] = typeof v === 'string' ? editString(rng, v) : typeof v === 'number' ? v + rng.pick([-1, 1, 1000]) : v; break
    case 3: // tcbLevels and module identities: drop, duplicate, reorder, retarget statuses
      if (Array.isArray(v) && v.length > 0) {
        const c = [...v]
        const i = rng.int(c.length)
        const pick = rng.int(4)
        if (pick === 0) c.splice(i, 1)
        else if (pick === 1) c.push(structuredClone(c[i]))
        else if (pick === 2) c.reverse()
        else if (c[i] !== null && typeof c[i] === 'object') (c[i] as Record<string, unknown>).tcbStatus = rng.pick(['UpToDate', 'Revoked', 'OutOfDate', 'SWHardeningNeeded', 'bogus', 7])
        inner[key] = c
      } else inner[key] = [v]
      break
    case 4: setKey(inner, rng.pick(['__proto__', 'extra', key.toUpperCase()]), v); break
    default: {
      const dates = ['1970-01-01T00:00:00Z', '2999-01-01T00:00:00Z', 'not a date', '']
      if ('nextUpdate' in inner) inner[rng.pick(['nextUpdate', 'issueDate'])] = rng.pick(dates)
    }
  }
  return JSON.stringify(inner)
}

export async function mutateCollateral (rng: Rng, seed: Uint8Array, signer?: JsonSigner): Promise<Mutant> {
  const text = new TextDecoder().decode(seed)
  let obj: Record<string, unknown>
  try { obj = JSON.parse(text) as Record<string, unknown> } catch { const raw = mutateRaw(rng, seed); return { bytes: raw.bytes, ops: raw.ops } }
  const ops: string[] = []
  let resigned = false
  let out: string | undefined
  const rounds = rng.range(1, 2)
  for (let i = 0; i < rounds; i++) {
    const keys = Object.keys(obj)
    const key = rng.pick(keys)
    switch (rng.int(11)) {
      case 0: delete obj[key]; ops.push('json.drop'); break
      case 1: setKey(obj, rng.pick(KEYS), wrongValue(rng, obj[key])); ops.push('json.addKey'); break
      case 2: obj[key] = wrongValue(rng, obj[key]); ops.push('json.retype'); break
      case 3: case 4: {
        const v = obj[key]
        if (typeof v === 'string') obj[key] = editString(rng, v)
        ops.push(`json.edit.${key}`)
        break
      }
      case 5: { // the signed JSON inside, re-signed when we can
        const field = rng.pick(SIGNED)
        const v = obj[field]
        if (typeof v !== 'string') break
        obj[field] = editInnerJson(rng, v)
        if (signer !== undefined && rng.chance(0.7)) {
          obj[`${field}_signature`] = await signer(field, obj[field] as string)
          resigned = true
          ops.push(`json.inner.${field}.resigned`)
        } else ops.push(`json.inner.${field}`)
        break
      }
      case 6: { // swap two fields' values
        const other = rng.pick(keys)
        ;[obj[key], obj[other]] = [obj[other], obj[key]]
        ops.push('json.swap')
        break
      }
      case 7: { // a duplicate key, spelled in the text: JSON.parse keeps the last
        const body = JSON.stringify(obj)
        const dup = `${JSON.stringify(key)}:${JSON.stringify(wrongValue(rng, obj[key]))}`
        out = rng.chance(0.5) ? `{${dup},${body.slice(1)}` : `${body.slice(0, -1)},${dup}}`
        ops.push('json.dupKey')
        break
      }
      case 8: { // deep nesting
        const depth = rng.pick([16, 1000, 5000, 100_000])
        const nested = '['.repeat(depth) + ']'.repeat(depth)
        out = rng.chance(0.5) ? nested : `${JSON.stringify(obj).slice(0, -1)},"deep":${nested}}`
        ops.push(`json.nest.${depth}`)
        break
      }
      case 9:
        out = rng.pick(['\ufeff', ' ', '\n']) + JSON.stringify(obj, null, rng.pick([0, 2])) + rng.pick(['', ' ', '\n', 'x', '\u0000'])
        ops.push('json.framing')
        break
      default: {
        const raw = mutateRaw(rng, utf8.encode(out ?? JSON.stringify(obj)))
        return { bytes: raw.bytes, ops: [...ops, ...raw.ops], ...(resigned ? { resigned } : {}) }
      }
    }
  }
  return { bytes: utf8.encode(out ?? JSON.stringify(obj)), ops, ...(resigned ? { resigned } : {}) }
}
