/**
 * Framing and decoding of stream messages under hostile input: a junk length prefix is refused
 * after at most a few bytes, a maximally nested frame is refused without being decoded, and both
 * cost a peer's victim milliseconds of CPU rather than seconds (4 MiB of 0xff cost ≈ 17 s of CPU,
 * a 3 MiB nested frame ≈ 7 s and 680 MB, before).
 */
import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { streamPair } from '@libp2p/utils'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { Stream } from '@libp2p/interface'
import { z } from 'zod'
import { framed, readMessage, writeMessage, decodeMessage, varintLength, MessageError, type MessageErrorKind } from '../../src/protocols/messages.js'
import { SYNC_MAX_MESSAGE_BYTES, SYNC_READ_BUFFER_BYTES } from '../../src/protocols/sync.js'
import { ATTEST_MAX_MESSAGE_BYTES } from '../../src/protocols/attest.js'
import { RecordError, encodeCanonical, concatBytes } from '../../src/market/index.js'
import { createMeshLibp2p, type MeshLibp2p } from '../../src/node/libp2p.js'
import { testNetwork } from '../helpers/mesh.js'

/** The CPU this process spent while `work` ran (both ends of an in-process pair). */
async function cpuMs<T> (work: () => Promise<T>): Promise<{ ms: number, value: T }> {
  const started = process.cpuUsage()
  const value = await work()
  const d = process.cpuUsage(started)
  return { ms: (d.user + d.system) / 1000, value }
}

async function failure (read: Promise<unknown>): Promise<MessageError> {
  try {
    await read
  } catch (err) {
    assert.ok(err instanceof MessageError, `expected a MessageError, got ${String(err)}`)
    return err
  }
  assert.fail('the read succeeded')
}

/** A 3 MiB sync frame of 1,048 subtrees, each 3,000 one-item arrays deep. */
function nestedFrame (): Uint8Array {
  const depth = 3000
  const count = 1048
  const body = new Uint8Array(3 + count * (depth + 1))
  body.set([0x99, count >> 8, count & 0xff])
  for (let i = 0; i < count; i++) {
    const at = 3 + i * (depth + 1)
    body.fill(0x81, at, at + depth)
    body[at + depth] = 0x01
  }
  return body
}

function varint (n: number): Uint8Array {
  const out: number[] = []
  for (let v = n; ; v = Math.floor(v / 128)) {
    if (v < 128) { out.push(v); break }
    out.push((v % 128) | 0x80)
  }
  return Uint8Array.from(out)
}

describe('message framing against hostile peers (in-memory streams)', () => {
  it('computes the length prefix bound from the message cap', () => {
    assert.deepEqual([127, 128, 1024, 16383, 16384, SYNC_MAX_MESSAGE_BYTES, ATTEST_MAX_MESSAGE_BYTES].map(varintLength), [1, 2, 2, 2, 3, 4, 3])
  })

  it('refuses 4 MiB of 0xff as a length prefix after a few bytes, in milliseconds', async (t) => {
    const [a, b] = await streamPair()
    const lp = framed(b, SYNC_MAX_MESSAGE_BYTES, SYNC_READ_BUFFER_BYTES)
    const junk = new Uint8Array(4 * 1024 * 1024).fill(0xff)
    const { ms, value: err } = await cpuMs(async () => {
      const read = failure(readMessage(lp, z.unknown(), AbortSignal.timeout(30_000)))
      a.send(junk)
      return await read
    })
    t.diagnostic(`4 MiB of 0xff on a sync stream: ${err.kind} after ${ms.toFixed(1)} ms of CPU (${err.message})`)
    assert.equal(err.kind, 'oversize')
    assert.ok(ms < 500, `took ${ms} ms of CPU`)
    a.abort(new Error('done'))
    b.abort(new Error('done'))
  })

  it('refuses a 3 MiB maximally nested frame without decoding it, in milliseconds', async (t) => {
    const [a, b] = await streamPair()
    const reader = framed(b, SYNC_MAX_MESSAGE_BYTES, SYNC_READ_BUFFER_BYTES)
    const frame = nestedFrame()
    assert.ok(frame.length <= SYNC_MAX_MESSAGE_BYTES && frame.length > 3_000_000)
    const { ms, value: err } = await cpuMs(async () => {
      const read = failure(readMessage(reader, z.unknown(), AbortSignal.timeout(30_000)))
      await framed(a, SYNC_MAX_MESSAGE_BYTES).write(frame)
      return await read
    })
    t.diagnostic(`3 MiB nested frame: ${err.kind} after ${ms.toFixed(1)} ms of CPU (${err.message})`)
    assert.equal(err.kind, 'malformed')
    assert.ok(err.cause instanceof RecordError && err.cause.code === 'RECORD_MALFORMED')
    assert.ok(ms < 500, `took ${ms} ms of CPU`)
    a.abort(new Error('done'))
    b.abort(new Error('done'))
  })

  it('refuses prefixes longer than the cap needs, and lengths over the cap, as oversize', async () => {
    const cases: Array<[string, Uint8Array, MessageErrorKind]> = [
      ['5-byte prefix for a 3 MiB cap', Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x00), 'oversize'],
      ['length cap + 1', varint(SYNC_MAX_MESSAGE_BYTES + 1), 'oversize'],
      ['2^28 in 4 bytes', Uint8Array.of(0xff, 0xff, 0xff, 0x7f), 'oversize']
    ]
    for (const [name, prefix, kind] of cases) {
      const [a, b] = await streamPair()
      const lp = framed(b, SYNC_MAX_MESSAGE_BYTES)
      const read = failure(readMessage(lp, z.unknown(), AbortSignal.timeout(10_000)))
      a.send(concatBytes(prefix, new Uint8Array(16)))
      assert.equal((await read).kind, kind, name)
      a.abort(new Error('done'))
    }
  })

  it('still carries messages up to the cap, with a non-minimal prefix inside the bound', async () => {
    const [a, b] = await streamPair()
    const writer = framed(a, SYNC_MAX_MESSAGE_BYTES)
    const reader = framed(b, SYNC_MAX_MESSAGE_BYTES, SYNC_READ_BUFFER_BYTES)
    const signal = AbortSignal.timeout(10_000)
    const big = { records: [new Uint8Array(SYNC_MAX_MESSAGE_BYTES - 64)] }
    const sent = await writeMessage(writer, big, signal)
    const got = await readMessage(reader, z.object({ records: z.array(z.instanceof(Uint8Array)) }), signal)
    assert.deepEqual(got.bytes, sent)
    // {done: true} behind a 2-byte prefix for length 7: allowed (4 bytes is the bound here).
    const done = encodeCanonical({ done: true })
    a.send(concatBytes(Uint8Array.of(0x80 | done.length, 0x00), done))
    assert.deepEqual((await readMessage(reader, z.object({ done: z.literal(true) }), signal)).value, { done: true })
    a.abort(new Error('done'))
  })
})

describe('decodeMessage', () => {
  const schema = z.strictObject({ done: z.literal(true) })

  it('maps every CBOR refusal to malformed, with the RecordError as its cause', () => {
    for (const [bytes, code] of [
      [Uint8Array.of(0x9f, 0xff), 'RECORD_MALFORMED'],
      [Uint8Array.of(0x5a, 0xff, 0xff, 0xff, 0xff), 'RECORD_MALFORMED'],
      [new Uint8Array(40).fill(0x81), 'RECORD_MALFORMED'],
      [concatBytes(encodeCanonical({ done: true }), Uint8Array.of(0)), 'RECORD_NON_CANONICAL'],
      [encodeCanonical(new Array(200_000).fill(0)), 'RECORD_TOO_LARGE']
    ] as const) {
      assert.throws(() => decodeMessage(bytes, schema), (err: unknown) => err instanceof MessageError && err.kind === 'malformed' && err.cause instanceof RecordError && err.cause.code === code)
    }
  })

  it('maps a schema mismatch, or a schema that throws, to malformed', () => {
    assert.throws(() => decodeMessage(encodeCanonical({ done: false }), schema), (err: unknown) => err instanceof MessageError && err.kind === 'malformed')
    const throwing = z.custom(() => { throw new TypeError('boom') })
    assert.throws(() => decodeMessage(encodeCanonical(1), throwing), (err: unknown) => err instanceof MessageError && err.kind === 'malformed')
  })
})

describe('message framing against a hostile peer over libp2p (TCP, noise, yamux on 127.0.0.1)', () => {
  const nodes: MeshLibp2p[] = []
  after(async () => { await Promise.all(nodes.map(async (n) => { await n.stop() })) })

  it('a peer writing 4 MiB of 0xff, or a 3 MiB nested frame, costs the reader milliseconds', async (t) => {
    const network = testNetwork()
    for (let i = 0; i < 2; i++) nodes.push(await createMeshLibp2p({ privateKey: await generateKeyPair('Ed25519'), network, listen: ['/ip4/127.0.0.1/tcp/0'], dht: false }))
    const [reader, writer] = nodes as [MeshLibp2p, MeshLibp2p]
    const protocol = `/cmesh-test/${network}/framing/1.0.0`
    let outcome: Promise<MessageError> | undefined
    await reader.handle(protocol, (stream: Stream) => {
      const lp = framed(stream, SYNC_MAX_MESSAGE_BYTES, SYNC_READ_BUFFER_BYTES)
      outcome = failure(readMessage(lp, z.unknown(), AbortSignal.timeout(30_000))).finally(() => { stream.abort(new Error('refused')) })
    })
    await writer.dial(reader.getMultiaddrs())
    const attack = async (payload: Uint8Array): Promise<{ ms: number, err: MessageError }> => {
      outcome = undefined
      const stream = await writer.dialProtocol(reader.peerId, protocol)
      const { ms, value: err } = await cpuMs(async () => {
        stream.send(payload)
        while (outcome === undefined) await new Promise((resolve) => setTimeout(resolve, 1))
        return await outcome
      })
      stream.abort(new Error('done'))
      return { ms, err }
    }
    const junk = await attack(new Uint8Array(4 * 1024 * 1024).fill(0xff))
    const frame = nestedFrame()
    const nested = await attack(concatBytes(varint(frame.length), frame))
    t.diagnostic(`libp2p, 4 MiB of 0xff: ${junk.err.kind} after ${junk.ms.toFixed(1)} ms of CPU (both nodes); 3 MiB nested frame: ${nested.err.kind} after ${nested.ms.toFixed(1)} ms`)
    assert.equal(junk.err.kind, 'oversize')
    assert.equal(nested.err.kind, 'malformed')
    assert.ok(junk.ms < 500, `junk took ${junk.ms} ms of CPU`)
    assert.ok(nested.ms < 500, `nested frame took ${nested.ms} ms of CPU`)
  })
})
