import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ClassicLevel } from 'classic-level'
import { NodeStore } from '../../src/node/store.js'
import { CollectionUpkeep, PRUNE_RETENTION_SECS } from '../../src/node/services/collection-upkeep.js'
import { ProviderCollection } from '../../src/market/collection.js'
import { RfpBook } from '../../src/market/rfp-book.js'
import type { NodeComponents } from '../../src/node/components.js'
import { cardAt, makeRetirement, testIdentity, T0 } from '../helpers/cards.js'
import { quietLog } from '../helpers/mesh.js'

const writer = fileURLToPath(new URL('../helpers/store-writer.ts', import.meta.url))

describe('node store', () => {
  const dirs: string[] = []
  after(async () => { await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))) })

  it('a crash (SIGKILL) mid-write loses nothing that was acknowledged', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cmesh-store-'))
    dirs.push(dir)
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), writer, dir, '400'], { stdio: ['ignore', 'pipe', 'inherit'] })
    const exited = new Promise((resolve) => child.on('exit', resolve))
    let out = ''
    let acked = -1
    await new Promise<void>((resolve) => {
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d
        const m = [...out.matchAll(/ack (\d+)/g)].at(-1)
        if (m !== undefined) acked = Number(m[1])
        // Kill while writes are still streaming, at an arbitrary point past the first few.
        if (acked >= 50 && child.exitCode === null && !child.killed) {
          child.kill('SIGKILL')
          resolve()
        }
      })
      void exited.then(() => resolve())
    })
    await exited
    assert.ok(acked >= 50, `only ${acked} acknowledged before the child ended`)

    const store = new NodeStore(join(dir))
    await store.open()
    const { records, corrupt } = await store.loadRecords()
    await store.close()
    assert.equal(corrupt, 0)
    const held = new Set(records.map((r) => r.value.providerId))
    for (let i = 0; i <= acked; i++) assert.ok(held.has(testIdentity(1000 + i).did), `acknowledged card ${i} was lost`)
  })

  it('keeps collection records in their own keyspace, and moves records of a store written before keyspaces', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cmesh-store-'))
    dirs.push(dir)
    const legacy = new ClassicLevel<string, Uint8Array>(dir, { valueEncoding: 'view' })
    const old = cardAt(testIdentity(1), T0)
    await legacy.put(`record/${old.value.providerId}`, old.bytes)
    await legacy.close()

    const store = new NodeStore(dir)
    await store.open()
    await store.putRecord(cardAt(testIdentity(2), T0))
    assert.deepEqual((await store.loadRecords()).records.map((r) => r.value.providerId).sort(), [testIdentity(1).did, testIdentity(2).did].sort())
    await store.close()
    const raw = new ClassicLevel<string, Uint8Array>(dir, { valueEncoding: 'view' })
    const keys = await raw.keys().all()
    await raw.close()
    assert.ok(keys.every((k) => k.startsWith('!collection!')), `every key in the collection keyspace: ${keys.join(', ')}`)
  })

  it('deletes pruned slots from disk, so a restart does not reload them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cmesh-store-'))
    dirs.push(dir)
    const store = new NodeStore(dir)
    await store.open()
    const ended = makeRetirement(testIdentity(3), T0)
    const live = cardAt(testIdentity(4), T0 + 2 * PRUNE_RETENTION_SECS)
    let now = (T0 + 10) * 1000
    const components = { store, collection: new ProviderCollection(), rfps: new RfpBook(), log: quietLog, now: () => now, dataDir: dir, events: { publish () {} } } as unknown as NodeComponents
    const upkeep = new CollectionUpkeep(components)
    await upkeep.start()
    for (const r of [ended, live]) {
      components.collection.apply(r, T0 + 10)
      upkeep.persist(r)
    }
    await store.flush()
    now = (T0 + PRUNE_RETENTION_SECS + 60) * 1000
    upkeep.tick()
    await upkeep.stop()
    await store.close()

    const reopened = new NodeStore(dir)
    await reopened.open()
    const { records } = await reopened.loadRecords()
    await reopened.close()
    assert.deepEqual(records.map((r) => r.value.providerId), [testIdentity(4).did])
  })
})
