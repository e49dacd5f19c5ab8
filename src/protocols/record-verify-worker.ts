/**
 * Worker thread of the record verify pool (record-verify-pool.ts): runs the full decodeRecord
 * (CBOR, canonical, schema, Ed25519 through node:crypto, semantics) for collection records and
 * answers, per record, its verdict (SHA-256 of the bytes it accepted and the record digest) or the
 * RecordError code that refused them. The main thread then rebuilds accepted records with
 * decodeRecordVerifiedElsewhere, which checks that hash against its own copy of the bytes.
 *
 * Messages (pool → worker): { id, buffer: ArrayBuffer, offsets: Uint32Array } — records are
 * buffer[offsets[i] .. offsets[i+1]). Worker → pool: { ready: true } once loaded, then
 * { id, verdicts: Uint8Array (64 × n: bytes SHA-256 then digest; zero where refused), errors: Array<[code, message] | null> }.
 */
import { parentPort } from 'node:worker_threads'
import { decodeRecord, verdictOf } from '../market/record.js'
import { COLLECTION_RECORD_TYPES } from '../market/collection.js'
import { RecordError } from '../market/errors.js'

export interface VerifyJob { id: number, buffer: ArrayBuffer, offsets: Uint32Array }
export interface VerifyReply { id: number, verdicts: Uint8Array, errors: Array<[string, string] | null> }

const port = parentPort
if (port !== null) {
  port.on('message', (job: VerifyJob) => {
    const n = job.offsets.length - 1
    const verdicts = new Uint8Array(64 * n)
    const errors: Array<[string, string] | null> = []
    for (let i = 0; i < n; i++) {
      // A view into the job's buffer: decodeRecord never keeps it past this call here.
      const bytes = new Uint8Array(job.buffer, job.offsets[i], job.offsets[i + 1]! - job.offsets[i]!)
      try {
        const verdict = verdictOf(decodeRecord(bytes, COLLECTION_RECORD_TYPES))
        verdicts.set(verdict.bytesSha256, 64 * i)
        verdicts.set(verdict.digest, 64 * i + 32)
        errors.push(null)
      } catch (err) {
        // decodeRecord only throws RecordError; anything else is reported as malformed, never lost.
        errors.push(err instanceof RecordError ? [err.code, err.message] : ['RECORD_MALFORMED', String(err)])
      }
    }
    const reply: VerifyReply = { id: job.id, verdicts, errors }
    port.postMessage(reply, [verdicts.buffer])
  })
  port.postMessage({ ready: true })
}
