import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NodeStore } from '../../src/node/store.js'
import { cardAt, testIdentity, T0 } from '../helpers/cards.js'

describe('node store after a failed write', () => {
  it('reports the failure, keeps the records and writes them with the next flush', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cmesh-store-fail-'))
    const store = new NodeStore(dir)
    try {
      await store.open()
      const db = (store as any).db
      const batch = db.batch.bind(db)
      db.batch = async () => { throw new Error('EIO (simulated)') }
      await assert.rejects(store.putRecord(cardAt(testIdentity(1), T0)), /EIO/)
      db.batch = batch
      await store.putRecord(cardAt(testIdentity(2), T0))
      const { records } = await store.loadRecords()
      assert.deepEqual(new Set(records.map((r) => r.value.providerId)), new Set([testIdentity(1).did, testIdentity(2).did]))
    } finally {
      await store.close()
      await rm(dir, { recursive: true, force: true })
    }
  })
})
