/**
 * Collection snapshot files: a DAG-CBOR array of signed record encodings (cards and retirements).
 * A file holding one bare signed record (what `cmesh card sign` writes) is read too. Every record
 * goes through the same decoder as network input; a bad one is reported, never trusted.
 */
import { readFile } from 'node:fs/promises'
import * as dagCbor from '@ipld/dag-cbor'
import { decodeRecord } from '../market/record.js'
import { COLLECTION_RECORD_TYPES, DEFAULT_MAX_PROVIDERS, type CollectionRecord } from '../market/collection.js'
import { scanCbor } from '../market/cbor.js'
import { RecordError } from '../market/errors.js'
import { NodeError } from './errors.js'

export const MAX_COLLECTION_FILE_BYTES = 512 * 1024 * 1024

export interface RefusedRecord {
  file: string
  index: number
  code: string
  message: string
}

export interface RecordsRead {
  records: CollectionRecord[]
  refused: RefusedRecord[]
}

export function encodeSnapshot (records: Iterable<{ bytes: Uint8Array }>): Uint8Array {
  return dagCbor.encode([...records].map((r) => r.bytes))
}

export function decodeSnapshot (bytes: Uint8Array, file = '<memory>'): RecordsRead {
  const out: RecordsRead = { records: [], refused: [] }
  // CBOR major type 4 (array) starts 0x80-0x9f; anything else is tried as one bare record.
  const first = bytes[0] ?? 0
  let items: unknown[]
  if (first >= 0x80 && first <= 0x9f) {
    try {
      // A snapshot is one flat array of byte strings: refuse anything deeper before decoding it.
      scanCbor(bytes, { maxDepth: 1, maxItems: DEFAULT_MAX_PROVIDERS + 1 })
      items = dagCbor.decode(bytes) as unknown[]
    } catch (err) {
      throw new NodeError('INPUT_INVALID', `${file}: not a collection snapshot (${(err as Error).message})`, { file })
    }
  } else {
    items = [bytes]
  }
  items.forEach((item, index) => {
    try {
      if (!(item instanceof Uint8Array)) throw new RecordError('RECORD_MALFORMED', 'snapshot entry is not a byte string')
      out.records.push(decodeRecord(item, COLLECTION_RECORD_TYPES))
    } catch (err) {
      if (!(err instanceof RecordError)) throw err
      out.refused.push({ file, index, code: err.code, message: err.message })
    }
  })
  return out
}

export async function readRecordsFile (path: string): Promise<RecordsRead> {
  let bytes: Uint8Array
  try {
    bytes = await readFile(path)
  } catch (err: any) {
    throw new NodeError('INPUT_INVALID', `cannot read ${path}: ${err.code ?? err.message}`, { path })
  }
  if (bytes.length > MAX_COLLECTION_FILE_BYTES) throw new NodeError('INPUT_INVALID', `${path} is larger than ${MAX_COLLECTION_FILE_BYTES} bytes`)
  return decodeSnapshot(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path)
}
