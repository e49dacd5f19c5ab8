import '../../src/node/polyfills.js'
import { describe, it, after, before } from 'node:test'
import assert from 'node:assert/strict'
import type { Stream } from '@libp2p/interface'
import type { CmeshNode } from '../../src/node/node.js'
import { TestMesh } from '../helpers/mesh.js'

/** What one peer can make the node spend by writing junk on a stream: the node must refuse it cheaply. */
const JUNK_BYTES = 4 * 1024 * 1024
/** Generous for a shared CI machine (both sides run in this process); measured figures are printed. */
const MAX_CPU_MS = 1000

async function writeJunk (stream: Stream, bytes: Uint8Array): Promise<void> {
  const chunk = 64 * 1024
  try {
    for (let i = 0; i < bytes.length; i += chunk) {
      if (stream.status !== 'open' || stream.writeStatus !== 'writable') return
      if (!stream.send(bytes.subarray(i, i + chunk))) await stream.onDrain({ signal: AbortSignal.timeout(10_000) })
    }
  } catch {
    // The node reset the stream: that is the point.
  }
}

/** Waits until the node has ended the stream (reset or closed), to a deadline. */
async function ended (stream: Stream, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (stream.status === 'open' && stream.readStatus === 'readable' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
}

describe('junk on every protocol the node serves', () => {
  const mesh = new TestMesh()
  let victim: CmeshNode
  let attacker: CmeshNode
  before(async () => {
    victim = await mesh.node({ dht: true })
    attacker = await mesh.node({ dht: true, roles: ['auditor'] })
    await mesh.connect(attacker, victim)
  })
  after(async () => { await mesh.cleanup() })

  const junkPrefix = new Uint8Array(JUNK_BYTES).fill(0xff)
  for (const kind of ['sync', 'attest', 'evidence', 'kad'] as const) {
    it(`/cmesh/<net>/${kind}: a length prefix of 4 MiB of 0xff is refused at once`, async (t) => {
      const protocol = `/cmesh/${mesh.network}/${kind}/1.0.0`
      const stream = await attacker.libp2p.dialProtocol(victim.libp2p.peerId, protocol)
      const cpu = process.cpuUsage()
      const rss = process.memoryUsage().rss
      await writeJunk(stream, junkPrefix)
      await ended(stream)
      const used = process.cpuUsage(cpu)
      const ms = (used.user + used.system) / 1000
      t.diagnostic(`${kind}: ${ms.toFixed(1)} ms CPU (both sides), RSS +${((process.memoryUsage().rss - rss) / 1048576).toFixed(1)} MiB`)
      assert.ok(ms < MAX_CPU_MS, `${ms} ms of CPU`)
      stream.abort(new Error('done'))
    })
  }

  // The largest frame each protocol's reader accepts, filled with arrays nested as deep as the bytes go.
  const caps = { sync: 16 * 1024, attest: 64 * 1024 + 256 * 1024 + 4096, evidence: 1024 } as const
  for (const [kind, cap] of Object.entries(caps)) {
    it(`/cmesh/<net>/${kind}: a maximally nested frame at the cap is refused without decoding it`, async (t) => {
      const protocol = `/cmesh/${mesh.network}/${kind}/1.0.0`
      const stream = await attacker.libp2p.dialProtocol(victim.libp2p.peerId, protocol)
      const body = new Uint8Array(cap).fill(0x81)
      body[cap - 1] = 0x00
      const frame = new Uint8Array([...varint(cap), ...body])
      const cpu = process.cpuUsage()
      await writeJunk(stream, frame)
      await ended(stream)
      const used = process.cpuUsage(cpu)
      const ms = (used.user + used.system) / 1000
      t.diagnostic(`${kind}: ${cap} bytes nested, ${ms.toFixed(1)} ms CPU (both sides)`)
      assert.ok(ms < MAX_CPU_MS, `${ms} ms of CPU`)
      stream.abort(new Error('done'))
    })
  }
})

function varint (n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n >>>= 7
  }
  out.push(n)
  return out
}
