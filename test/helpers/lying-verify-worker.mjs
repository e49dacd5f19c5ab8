// A verify worker that loads, then answers every job with one flag too many, all "valid": the pool
// must treat the answer as nonsense and check that job's signatures itself.
import { parentPort } from 'node:worker_threads'

parentPort.on('message', (job) => {
  const valid = new Uint8Array(job.offsets.length).fill(1)
  parentPort.postMessage({ id: job.id, valid }, [valid.buffer])
})
parentPort.postMessage({ ready: true })
