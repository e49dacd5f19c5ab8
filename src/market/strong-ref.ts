/**
 * strongRefs on the wire, as `com.atproto.repo.strongRef` spells them: `{uri, cid}` with the CID
 * as a *string* (lexicon format `cid`), not a DAG-CBOR link, so a compute-contract client reads
 * our contract records unchanged. In TS the cid is a parsed CID. Only the canonical spelling
 * (CIDv1, dag-cbor, sha2-256, base32 lower-case: what `record.cid.toString()` gives) is accepted,
 * so one reference has one encoding and a signature over it is unambiguous.
 */
import { CID } from './cbor.js'
import { parseAtUri, type StrongRef } from './address.js'
import { z } from './schema.js'

const DAG_CBOR = 0x71
const SHA2_256 = 0x12
/** base32 CIDv1 of a sha2-256 dag-cbor record is 59 characters. */
const MAX_CID_CHARS = 128

export function isCanonicalRecordCid (text: unknown): text is string {
  if (typeof text !== 'string' || text.length > MAX_CID_CHARS) return false
  let cid: CID
  try {
    cid = CID.parse(text)
  } catch {
    return false
  }
  return cid.version === 1 && cid.code === DAG_CBOR && cid.multihash.code === SHA2_256 && cid.toString() === text
}

function uriCollection (uri: unknown): string | undefined {
  if (typeof uri !== 'string') return undefined
  try {
    return parseAtUri(uri).nsid
  } catch {
    return undefined
  }
}

/** zod: a wire strongRef whose uri names a record of collection `nsid`; yields `StrongRef`. */
export function strongRef (nsid: string) {
  return z.strictObject({
    uri: z.string().max(512).refine((u) => uriCollection(u) === nsid, { message: `expected an at:// address of a ${nsid} record` }),
    cid: z.string().refine((c) => isCanonicalRecordCid(c), { message: 'expected a canonical CIDv1 (dag-cbor, sha2-256, base32) string' })
  }).transform((r): StrongRef => ({ uri: r.uri, cid: CID.parse(r.cid) }))
}

export function strongRefToWire (ref: StrongRef): { uri: string, cid: string } {
  return { uri: ref.uri, cid: ref.cid.toString() }
}

/** The strongRef that pins one signed record: its own at:// address and CID. */
export function strongRefTo (record: { uri: string, cid: CID }): StrongRef {
  return { uri: record.uri, cid: record.cid }
}

/** True when `ref` names exactly `record` (uri AND cid). */
export function refersTo (ref: StrongRef, record: { uri: string, cid: CID }): boolean {
  return ref.uri === record.uri && ref.cid.equals(record.cid)
}
