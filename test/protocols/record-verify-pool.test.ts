/** The record verify pool: same verdicts as the inline path, nothing lost or admitted when a worker dies, stop ends the threads. */
import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { RecordVerifyPool, RecordVerifyPoolError, decodeBatchInline } from '../../src/protocols/record-verify-pool.js'
import {
  decodeCanonical, encodeCanonical, RECORD_SIGNATURE_DOMAIN, prepareRecord, completeRecord, COLLECTION_RECORD_TYPES, RecordError,
  type CollectionRecord
} from '../../src/market/index.js'
import { cardAt, makeRetirement, testIdentity } from '../helpers/cards.js'

const now = Math.floor(Date.now() / 1000)

function reencode (bytes: Uint8Array, change: (map: Record<string, unknown>) => void): Uint8Array {
  const map = decodeCanonical(bytes) as Record<string, unknown>
  change(map)
  return encodeCanonical(map)
}

/** Records of mixedBatch(n) that reach the signature check: all but the 6 refused while decoding. */
const signed = (valid: number): number => valid + 4

/** Valid cards and a retirement, with every kind of refusal mixed in. */
function mixedBatch (valid: number): Uint8Array[] {
  const out: Uint8Array[] = []
  for (let i = 0; i < valid; i++) out.push(cardAt(testIdentity(i), now - 10 - i).bytes)
  const good = out[0]!
  out.push(makeRetirement(testIdentity(valid), now - 5).bytes)
  // Bad signature: one bit of `sig` flipped, still canonical.
  out.push(reencode(good, (m) => { const sig = new Uint8Array(m.sig as Uint8Array); sig[10]! ^= 1; m.sig = sig }))
  // Signed by someone else: a card of identity 1 carrying identity 2's signature.
  out.push(reencode(out[1]!, (m) => { m.sig = (decodeCanonical(out[2]!) as Record<string, unknown>).sig }))
  // Not minimal: `v: 1` in a two-byte integer (0x18 0x01) instead of one byte (the strict decoder's refusal).
  const at = Buffer.from(good).indexOf(Buffer.from([0x61, 0x76, 0x01]))
  assert.ok(at > 0)
  out.push(new Uint8Array([...good.subarray(0, at + 2), 0x18, 0x01, ...good.subarray(at + 3)]))
  // Non-canonical: a valid record followed by a stray byte.
  out.push(new Uint8Array([...good, 0x00]))
  // A $type sync does not take.
  out.push(reencode(good, (m) => { m.$type = 'org.example.other' }))
  // Schema: a field of the wrong type.
  out.push(reencode(good, (m) => { m.capacityPerSecond = 'fast' }))
  // Correctly signed but semantically wrong: a card living 30 days (the rule allows 7).
  const long = decodeCanonical(good) as Record<string, unknown>
  delete long.sig
  long.expiresAtUnixSecs = (long.committedAtUnixSecs as number) + 30 * 86_400
  const body = encodeCanonical(long)
  out.push(encodeCanonical({ ...long, sig: testIdentity(0).sign(new Uint8Array([...RECORD_SIGNATURE_DOMAIN, ...body])) }))
  // Not CBOR at all, and an empty record.
  out.push(new Uint8Array([0xff, 0x00, 0x13]), new Uint8Array())
  return out
}

type Outcome = string | { cid: string, digest: string, uri: string, value: unknown }
const outcome = (r: CollectionRecord | RecordError): Outcome =>
  r instanceof RecordError ? r.code : { cid: r.cid.toString(), digest: Buffer.from(r.digest).toString('hex'), uri: r.uri, value: r.value }

describe('record verify pool', () => {
  const pools: RecordVerifyPool[] = []
  after(async () => { await Promise.all(pools.map(async (p) => await p.stop())) })
  const pool = (init: ConstructorParameters<typeof RecordVerifyPool>[0]) => {
    const p = new RecordVerifyPool(init)
    pools.push(p)
    p.start()
    return p
  }

  it('accepts and refuses exactly what the inline path does, with the same codes and records', async () => {
    const p = pool({ size: 2, inlineBelow: 1 })
    await p.whenReady()
    const batch = mixedBatch(80)
    const inline = decodeBatchInline(batch).map(outcome)
    const pooled = (await p.decodeBatch(batch)).map(outcome)
    assert.deepEqual(pooled, inline)
    assert.equal(p.stats.workerRecords, signed(80), 'every signature was checked on a worker')
    assert.deepEqual(inline.slice(80).map((o) => typeof o === 'string' ? o : 'ok'), [
      'ok', 'RECORD_BAD_SIGNATURE', 'RECORD_BAD_SIGNATURE', 'RECORD_MALFORMED', 'RECORD_NON_CANONICAL', 'RECORD_UNKNOWN_TYPE', 'RECORD_SCHEMA', 'RECORD_SEMANTIC', 'RECORD_MALFORMED', 'RECORD_MALFORMED'
    ])
  })

  it('a prepared record completes only with a valid signature; the semantic check runs after it', () => {
    const a = cardAt(testIdentity(1), now)
    assert.equal(completeRecord(prepareRecord(a.bytes, COLLECTION_RECORD_TYPES), true).cid.toString(), a.cid.toString())
    assert.throws(() => completeRecord(prepareRecord(a.bytes, COLLECTION_RECORD_TYPES), false), (err: unknown) => err instanceof RecordError && err.code === 'RECORD_BAD_SIGNATURE')
  })

  it('a worker answering out of turn or with the wrong count admits nothing: its job is checked inline', async () => {
    const p = pool({ size: 1, inlineBelow: 1, workerUrl: new URL('../helpers/lying-verify-worker.mjs', import.meta.url) })
    await p.whenReady()
    const batch = mixedBatch(40)
    assert.deepEqual((await p.decodeBatch(batch)).map(outcome), decodeBatchInline(batch).map(outcome))
    assert.equal(p.stats.fallbackRecords, signed(40))
    assert.equal(p.stats.workerRecords, 0)
  })

  it('small batches, and batches before any worker is ready, are verified inline', async () => {
    const p = pool({ size: 1, inlineBelow: 64 })
    const early = await p.decodeBatch(mixedBatch(100))
    assert.equal(early.filter((r) => !(r instanceof RecordError)).length, 101)
    await p.whenReady()
    const before = p.stats.workerRecords
    await p.decodeBatch(mixedBatch(10))
    assert.equal(p.stats.workerRecords, before, 'a batch below inlineBelow never leaves the thread')
    assert.ok(p.stats.inlineRecords >= 20)
  })

  it('a worker terminated mid-batch loses nothing and admits nothing unverified; it is replaced', async () => {
    const p = pool({ size: 1, inlineBelow: 1 })
    await p.whenReady()
    const batch = mixedBatch(3000)
    const pending = p.decodeBatch(batch)
    // decodeBatch posts the job after one macrotask; 3,000 signatures (≈ 0.2 s) take far longer than that.
    await new Promise((resolve) => setImmediate(resolve))
    const victim = p.threads[0]!
    await victim.terminate()
    const got = (await pending).map(outcome)
    assert.deepEqual(got, decodeBatchInline(batch).map(outcome))
    assert.equal(p.stats.fallbackRecords, signed(3000), 'the dead worker\'s job was checked inline')
    assert.equal(p.stats.restarts, 1)
    await p.whenReady(1)
    assert.notEqual(p.threads[0], victim)
    const again = await p.decodeBatch(mixedBatch(70))
    assert.equal(again.filter((r) => r instanceof RecordError).length, 9)
    assert.equal(p.stats.workerRecords, signed(70), 'the replacement worker takes the next batch')
  })

  it('workers that cannot load: bounded restarts, every batch still verified inline', async () => {
    const p = pool({ size: 1, inlineBelow: 1, maxRestarts: 2, workerUrl: new URL('./no-such-worker.js', import.meta.url) })
    p.warm()
    const deadline = Date.now() + 20_000
    while (p.threads.length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    assert.equal(p.threads.length, 0)
    assert.equal(p.stats.restarts, 2)
    const got = await p.decodeBatch(mixedBatch(5))
    assert.equal(got.filter((r) => r instanceof RecordError).length, 9)
    assert.equal(p.stats.inlineRecords, signed(5))
    assert.equal(p.threads.length, 0, 'a pool out of replacements does not respawn on the next batch')
  })

  it('spawns workers on the first large batch, retires them when idle, respawns on demand', async () => {
    const p = pool({ size: 2, inlineBelow: 50, idleMs: 200 })
    await p.decodeBatch(mixedBatch(10))
    assert.equal(p.threads.length, 0, 'small batches spawn nothing')
    await p.whenReady()
    await p.decodeBatch(mixedBatch(100))
    assert.equal(p.stats.workerRecords, signed(100))
    await new Promise((resolve) => setTimeout(resolve, 600))
    assert.equal(p.threads.length, 0, 'idle workers were terminated')
    const got = await p.decodeBatch(mixedBatch(60))
    assert.equal(p.threads.length, 2, 'a large batch brings them back')
    assert.equal(got.length, 70)
    assert.equal(p.stats.restarts, 0, 'retiring is not a crash')
  })

  it('stop rejects jobs still held with VERIFY_POOL_STOPPED, and later batches go inline', async () => {
    const p = pool({ size: 1, inlineBelow: 1 })
    await p.whenReady()
    const settled = p.decodeBatch(mixedBatch(2000)).then(() => 'resolved', (err: unknown) => err)
    // decodeBatch yields one macrotask before it hands the batch to a worker.
    await new Promise((resolve) => setImmediate(resolve))
    await p.stop()
    const err = await settled
    assert.ok(err instanceof RecordVerifyPoolError && err.code === 'VERIFY_POOL_STOPPED', String(err))
    assert.equal(p.threads.length, 0)
    const after = await p.decodeBatch(mixedBatch(3))
    assert.equal(after.length, 13)
  })

  it('a process that starts and stops a pool exits on its own (no thread or handle left behind)', async () => {
    const poolUrl = new URL('../../src/protocols/record-verify-pool.ts', import.meta.url).href
    const cardsUrl = new URL('../helpers/cards.ts', import.meta.url).href
    const code = `
      const { RecordVerifyPool } = await import(${JSON.stringify(poolUrl)})
      const { cardAt, testIdentity } = await import(${JSON.stringify(cardsUrl)})
      const pool = new RecordVerifyPool({ size: 2, inlineBelow: 1 })
      pool.start()
      await pool.whenReady()
      const out = await pool.decodeBatch(Array.from({ length: 100 }, (_, i) => cardAt(testIdentity(i), 1).bytes))
      await pool.stop()
      console.log(pool.stats.workerRecords, out.length, pool.threads.length)
    `
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] })
    let stdout = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    const [exitCode, signal] = await new Promise<[number | null, string | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])))
    clearTimeout(timer)
    assert.equal(signal, null, 'the child had to be killed: something kept it alive after stop()')
    assert.equal(exitCode, 0)
    assert.equal(stdout.trim(), '100 100 0')
  })
})
