/**
 * Signed records: canonical DAG-CBOR maps `{ $type, v, …fields, sig }`, signed by their author's
 * Ed25519 key over a domain-separated encoding of the map without `sig`. The CID covers the signed
 * bytes, so a strongRef pins one exact signed record.
 *
 * Decoding runs the whole pipeline (size → CBOR → canonical → $type/version → size per type →
 * schema → signature → semantics); the only way to hold a `SignedRecord` is to have passed it.
 */
import type { z } from 'zod'
import { CID, canonicalMapWithout, cidForBytes, decodeCanonical, encodeCanonical, sha256Digest } from './cbor.js'
import { concatBytes, utf8 } from './bytes.js'
import { RecordError } from './errors.js'
import { publicKeyFromDid, type Did, type Identity } from './identity.js'
import { verify } from './ed25519.js'
import { formatAtUri } from './address.js'
import { tidFromTime } from './tid.js'

/** Never a bare hash: the prefix keeps a record signature from being replayed as anything else. */
export const RECORD_SIGNATURE_DOMAIN = utf8('cmesh/record-sig/v1\0')
export const RECORD_VERSION = 1
/** No record type is larger than this; checked before any parsing. */
export const MAX_RECORD_BYTES = 64 * 1024

export interface RecordType<Value> {
  readonly nsid: string
  readonly maxBytes: number
  /** Validates the decoded map's fields (`$type`, `v` and `sig` already checked and removed) and yields the domain value. */
  readonly schema: z.ZodType<Value>
  /** The map's fields other than `$type`, `v` and `sig`, ready for DAG-CBOR. */
  toFields: (value: Value) => Record<string, unknown>
  author: (value: Value) => Did
  /** The record's own time (unix seconds): orders it, names it (TID rkey) and bounds its clock window. */
  time: (value: Value) => number
  /** Cross-field rules the schema cannot say; throws RecordError('RECORD_SEMANTIC'). */
  check?: (value: Value) => void
}

const verified: unique symbol = Symbol('cmesh.verifiedRecord')

export interface SignedRecord<Value> {
  readonly type: RecordType<Value>
  readonly value: Value
  /** The exact signed bytes, as received or produced. */
  readonly bytes: Uint8Array
  readonly cid: CID
  /** sha256 of the canonical encoding without `sig`: folds every field (e.g. a card's cardDigest). */
  readonly digest: Uint8Array
  readonly author: Did
  readonly uri: string
  readonly [verified]: true
}

export type AnyRecordType = RecordType<any>
/** Distributes over a union of types: decoding with [A, B] yields SignedRecord<A> | SignedRecord<B>. */
export type SignedOf<T> = T extends RecordType<infer V> ? SignedRecord<V> : never

function signingInput (body: Uint8Array): Uint8Array {
  return concatBytes(RECORD_SIGNATURE_DOMAIN, body)
}

function bodyMap (type: AnyRecordType, value: unknown): Record<string, unknown> {
  return { ...type.toFields(value), $type: type.nsid, v: RECORD_VERSION }
}

/** Signs `value` as `identity`, which must be the record's author; the result passes decodeRecord. */
export function signRecord<Value> (type: RecordType<Value>, value: Value, identity: Identity): SignedRecord<Value> {
  const author = type.author(value)
  if (author !== identity.did) {
    throw new RecordError('RECORD_BAD_SIGNATURE', 'a record can only be signed by its author', { author, signer: identity.did })
  }
  const body = bodyMap(type, value)
  const sig = identity.sign(signingInput(encodeCanonical(body)))
  return decodeRecord(encodeCanonical({ ...body, sig }), [type]) as SignedRecord<Value>
}

/** A short, throw-proof description of a decoded value for error metadata (never `String(v)`: objects can make that throw or recurse). */
function describeValue (v: unknown): string {
  if (typeof v === 'string') return v.slice(0, 20)
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v).slice(0, 20)
  if (v === null) return 'null'
  if (v instanceof Uint8Array) return 'bytes'
  if (Array.isArray(v)) return 'array'
  return typeof v
}

/**
 * Runs the whole decode pipeline (docs/PROTOCOLS.md §3). Every refusal, whatever the input bytes,
 * is a RecordError with a stable code: callers (gossip verdicts, sync's invalid count, the CLI)
 * branch on it, and an untyped error escaping here would end them as an internal failure.
 */
export function decodeRecord<T extends AnyRecordType> (bytes: Uint8Array, types: readonly T[]): SignedOf<T> {
  return typed(() => {
    const prepared = prepareRecord(bytes, types)
    return completeRecord(prepared, verify(prepared.publicKey, prepared.signingInput, prepared.signature))
  })
}

function typed<R> (step: () => R): R {
  try {
    return step()
  } catch (err) {
    if (err instanceof RecordError) throw err
    // Never expected (the pre-scan bounds the shapes the later steps see); kept typed if it happens.
    throw new RecordError('RECORD_MALFORMED', `record could not be checked: ${err instanceof Error ? err.message : typeof err}`, { unexpected: true }, { cause: err })
  }
}

function checkSize (bytes: Uint8Array): void {
  if (!(bytes instanceof Uint8Array)) throw new RecordError('RECORD_MALFORMED', 'expected bytes')
  if (bytes.length > MAX_RECORD_BYTES) {
    throw new RecordError('RECORD_TOO_LARGE', `record of ${bytes.length} bytes exceeds ${MAX_RECORD_BYTES}`, { size: bytes.length })
  }
}

interface ParsedFields<T extends AnyRecordType> {
  type: T
  value: any
  author: Did
  sig: Uint8Array
  /** The map without `sig`, ready to encode as the signed body. */
  body: Record<string, unknown>
}

/** $type, version, size per type, schema: the steps between CBOR and the signature. */
function parseFields<T extends AnyRecordType> (map: unknown, bytes: Uint8Array, types: readonly T[]): ParsedFields<T> {
  if (map === null || typeof map !== 'object' || Array.isArray(map) || map instanceof Uint8Array || CID.asCID(map) !== null) {
    throw new RecordError('RECORD_MALFORMED', 'a record is a CBOR map')
  }
  const fields = map as Record<string, unknown>
  const nsid = fields.$type
  const type = types.find((t) => t.nsid === nsid)
  if (type === undefined) {
    throw new RecordError('RECORD_UNKNOWN_TYPE', 'unknown or unexpected record $type', { type: typeof nsid === 'string' ? nsid.slice(0, 100) : typeof nsid })
  }
  if (fields.v !== RECORD_VERSION) {
    throw new RecordError('RECORD_UNSUPPORTED_VERSION', `unsupported ${type.nsid} version`, { version: describeValue(fields.v) })
  }
  if (bytes.length > type.maxBytes) {
    throw new RecordError('RECORD_TOO_LARGE', `${type.nsid} of ${bytes.length} bytes exceeds ${type.maxBytes}`, { size: bytes.length })
  }
  const { sig, $type: _t, v: _v, ...rest } = fields
  if (!(sig instanceof Uint8Array)) throw new RecordError('RECORD_SCHEMA', 'missing signature `sig`')
  const parsed = type.schema.safeParse(rest)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new RecordError('RECORD_SCHEMA', `${type.nsid}: ${issue?.path.join('.') ?? ''} ${issue?.message ?? 'invalid'}`.trim())
  }
  const value = parsed.data
  return { type, value, author: type.author(value), sig, body: { ...rest, $type: nsid, v: RECORD_VERSION } }
}

function signedRecord<T extends AnyRecordType> (fields: ParsedFields<T>, bytes: Uint8Array, cid: CID, digest: Uint8Array): SignedOf<T> {
  const { type, value, author } = fields
  return {
    type,
    value,
    bytes,
    cid,
    digest,
    author,
    uri: formatAtUri({ did: author, nsid: type.nsid, rkey: tidFromTime(BigInt(type.time(value)) * 1_000_000n) }),
    [verified]: true
  } as unknown as SignedOf<T>
}

/**
 * A record that passed every step of decodeRecord but the signature and the semantic check: what an
 * Ed25519 verification needs, and what completeRecord turns into a SignedRecord once it has run.
 * Splitting there lets a bulk sync verify signatures on other threads (record-verify-pool.ts) while
 * this one decodes the next records.
 */
export interface PreparedRecord<T extends AnyRecordType = AnyRecordType> {
  readonly bytes: Uint8Array
  readonly publicKey: Uint8Array
  /** The domain-separated signed body: the record's canonical bytes without `sig`. */
  readonly signingInput: Uint8Array
  readonly signature: Uint8Array
  /** @internal */
  readonly fields: ParsedFields<T>
  /** @internal */
  readonly body: Uint8Array
}

/** decodeRecord up to the signature: size, CBOR, canonical form, $type, version, schema. Throws RecordError. */
export function prepareRecord<T extends AnyRecordType> (bytes: Uint8Array, types: readonly T[]): PreparedRecord<T> {
  return typed(() => {
    checkSize(bytes)
    const fields = parseFields(decodeCanonical(bytes), bytes, types)
    // The signed body is the record without `sig`: cut from the canonical bytes, not re-encoded.
    const body = canonicalMapWithout(bytes, 'sig') ?? encodeCanonical(fields.body)
    return { bytes, publicKey: publicKeyFromDid(fields.author), signingInput: signingInput(body), signature: fields.sig, fields, body }
  })
}

/**
 * The rest of decodeRecord: `signatureValid` must be the result of Ed25519-verifying exactly
 * `prepared.signature` over `prepared.signingInput` with `prepared.publicKey` (ed25519.ts `verify`,
 * here or on another thread); anything else admits a forgery. Then the semantic check, CID, digest.
 */
export function completeRecord<T extends AnyRecordType> (prepared: PreparedRecord<T>, signatureValid: boolean): SignedOf<T> {
  const { fields, bytes, body } = prepared
  return typed(() => {
    if (!signatureValid) {
      throw new RecordError('RECORD_BAD_SIGNATURE', `${fields.type.nsid} signature does not verify for its author`, { author: fields.author })
    }
    fields.type.check?.(fields.value)
    return signedRecord(fields, bytes, cidForBytes(bytes), sha256Digest(body))
  })
}

export interface ClockWindow {
  /** How far ahead of `now` a record's time may be (clock skew). */
  maxFutureSecs: number
  /** How old a record may be and still be news; older ones are replays or stale. */
  maxAgeSecs: number
}

/** Pure clock-window check; `nowSecs` comes from the caller. */
export function checkClockWindow (record: SignedRecord<any>, nowSecs: number, window: ClockWindow): void {
  const t = record.type.time(record.value)
  if (t > nowSecs + window.maxFutureSecs) {
    throw new RecordError('RECORD_FROM_FUTURE', `${record.type.nsid} is dated ${t - nowSecs}s in the future`, { time: t, now: nowSecs })
  }
  if (t < nowSecs - window.maxAgeSecs) {
    throw new RecordError('RECORD_STALE', `${record.type.nsid} is ${nowSecs - t}s old`, { time: t, now: nowSecs })
  }
}
