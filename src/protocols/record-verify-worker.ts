/**
 * Worker thread of the record verify pool (record-verify-pool.ts): checks Ed25519 signatures, and
 * nothing else. The main thread has already decoded, canonicality-checked and schema-checked each
 * record (prepareRecord) and sends only what the signature covers; it completes the records itself
 * from the flags answered here, so a worker can refuse a record but never shape one.
 *
 * Messages (pool → worker): { id, buffer: ArrayBuffer, offsets: Uint32Array } — item i is
 * buffer[offsets[i] .. offsets[i+1]): public key (32 bytes), signature (64), signed message (the
 * rest). Worker → pool: { ready: true } once loaded, then { id, valid: Uint8Array } (1 = verifies).
 */
import { parentPort } from 'node:worker_threads'
import { verify, ED25519_PUBLIC_KEY_LENGTH, ED25519_SIGNATURE_LENGTH } from '../market/ed25519.js'

export interface SignatureJob { id: number, buffer: ArrayBuffer, offsets: Uint32Array }
export interface SignatureReply { id: number, valid: Uint8Array }

const KEY_AND_SIGNATURE = ED25519_PUBLIC_KEY_LENGTH + ED25519_SIGNATURE_LENGTH

const port = parentPort
if (port !== null) {
  port.on('message', (job: SignatureJob) => {
    const n = job.offsets.length - 1
    const valid = new Uint8Array(n)
    for (let i = 0; i < n; i++) {
      const start = job.offsets[i]!
      const end = job.offsets[i + 1]!
      if (end - start < KEY_AND_SIGNATURE) continue
      const item = new Uint8Array(job.buffer, start, end - start)
      valid[i] = verify(item.subarray(0, ED25519_PUBLIC_KEY_LENGTH), item.subarray(KEY_AND_SIGNATURE), item.subarray(ED25519_PUBLIC_KEY_LENGTH, KEY_AND_SIGNATURE)) ? 1 : 0
    }
    const reply: SignatureReply = { id: job.id, valid }
    port.postMessage(reply, [valid.buffer])
  })
  port.postMessage({ ready: true })
}
