/** File faults in a node's data dir: each refused at start with its own code, and nothing deleted. */
import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { CmeshNode } from '../../src/node/node.js'
import { resolveConfig } from '../../src/node/config.js'
import { NodeStore, storeError } from '../../src/node/store.js'
import { NodeError } from '../../src/node/errors.js'
import { cardAt, testIdentity } from '../helpers/cards.js'
import { quietLog, testNetwork } from '../helpers/mesh.js'

describe('data dir faults', () => {
  const dirs: string[] = []
  const running: CmeshNode[] = []
  after(async () => {
    await Promise.allSettled(running.map(async (n) => { await n.stop() }))
    await Promise.all(dirs.map(async (d) => { await rm(d, { recursive: true, force: true }) }))
  })

  const nodeAt = (dataDir: string, options: { newIdentity?: boolean } = {}): CmeshNode =>
    new CmeshNode({ config: resolveConfig({ network: testNetwork(), dataDir, dht: false }), log: quietLog, api: false, ...options })

  /** A data dir a node ran in (key, store with its own card), now stopped. */
  async function usedDataDir (): Promise<string> {
    const dataDir = await mkdtemp(join(tmpdir(), 'cmesh-faults-'))
    dirs.push(dataDir)
    const node = nodeAt(dataDir)
    await node.start()
    await node.stop()
    return dataDir
  }

  async function startCode (node: CmeshNode): Promise<string> {
    try {
      await node.start()
      running.push(node)
      return 'STARTED'
    } catch (err) {
      assert.ok(err instanceof NodeError, String(err))
      return err.code
    }
  }

  it('a missing CURRENT is refused, and the tables are left where they were', async () => {
    const dataDir = await usedDataDir()
    await unlink(join(dataDir, 'db', 'CURRENT'))
    const data = (await readdir(join(dataDir, 'db'))).filter((f) => /\.(log|ldb)$|^MANIFEST-/.test(f))
    assert.equal(await startCode(nodeAt(dataDir)), 'STORE_CURRENT_MISSING')
    const after = await readdir(join(dataDir, 'db'))
    for (const f of data) assert.ok(after.includes(f), `${f} is still there: LevelDB did not start over in the old dir`)
  })

  it('a damaged MANIFEST is STORE_CORRUPT', async () => {
    const dataDir = await usedDataDir()
    const manifest = (await readdir(join(dataDir, 'db'))).find((f) => f.startsWith('MANIFEST-')) as string
    await writeFile(join(dataDir, 'db', manifest), Buffer.alloc(64, 7))
    assert.equal(await startCode(nodeAt(dataDir)), 'STORE_CORRUPT')
  })

  it('a truncated table is STORE_IO_ERROR', async () => {
    const dataDir = await usedDataDir()
    const store = new NodeStore(join(dataDir, 'db'))
    await store.open()
    for (let i = 0; i < 200; i++) await store.putRecord(cardAt(testIdentity(5000 + i), Math.floor(Date.now() / 1000)))
    await store.close()
    const db = new ClassicLevel(join(dataDir, 'db'))
    await db.open()
    await db.compactRange('\u0000', '\uffff')
    await db.close()
    const table = (await readdir(join(dataDir, 'db'))).find((f) => f.endsWith('.ldb')) as string
    assert.ok(table !== undefined, 'compaction wrote a table')
    await truncate(join(dataDir, 'db', table), Math.floor((await stat(join(dataDir, 'db', table))).size / 2))
    assert.equal(await startCode(nodeAt(dataDir)), 'STORE_IO_ERROR')
  })

  it('a second node on the same data dir is STORE_LOCKED (and the first runs on)', async () => {
    const dataDir = await usedDataDir()
    const first = nodeAt(dataDir)
    assert.equal(await startCode(first), 'STARTED')
    assert.equal(await startCode(nodeAt(dataDir)), 'STORE_LOCKED')
    assert.ok(first.collection.size >= 1)
  })

  it('a read-only store is STORE_READ_ONLY (mapping checked directly: root ignores file modes)', () => {
    const err = Object.assign(new Error('Database failed to open'), { code: 'LEVEL_DATABASE_NOT_OPEN', cause: Object.assign(new Error('IO error: /x/db/LOCK: Read-only file system'), { code: 'LEVEL_IO_ERROR' }) })
    assert.equal(storeError(err, '/x/db').code, 'STORE_READ_ONLY')
  })

  it('a node.key with one flipped bit is refused: its halves name different keys', async () => {
    const dataDir = await usedDataDir()
    const key = await readFile(join(dataDir, 'node.key'))
    key[key.length - 1] = (key[key.length - 1] as number) ^ 0x01
    await writeFile(join(dataDir, 'node.key'), key, { mode: 0o600 })
    assert.equal(await startCode(nodeAt(dataDir)), 'KEY_FILE_INVALID')
  })

  it('a missing node.key beside a store is refused unless a new identity is asked for', async () => {
    const dataDir = await usedDataDir()
    await unlink(join(dataDir, 'node.key'))
    assert.equal(await startCode(nodeAt(dataDir)), 'IDENTITY_MISSING')
    assert.equal(await startCode(nodeAt(dataDir, { newIdentity: true })), 'STARTED')
  })
})
