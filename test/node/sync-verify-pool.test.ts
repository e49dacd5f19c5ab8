/** The node's sync verify pool: wired into the sync service, used for a bulk pull, terminated on stop. */
import '../../src/node/polyfills.js'
import { describe, it, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import { TestMesh, waitFor } from '../helpers/mesh.js'
import { cardAt, testIdentity } from '../helpers/cards.js'

describe('sync verify pool in a node', () => {
  const mesh = new TestMesh()
  afterEach(async () => { await mesh.cleanup() })

  it('a joiner verifies a bulk pull on its workers, and stopping the node terminates them', async () => {
    const peer = await mesh.node({ roles: [] })
    const now = Math.floor(Date.now() / 1000)
    for (let i = 1; i <= 600; i++) peer.collection.apply(cardAt(testIdentity(i), now - 10), now)
    const joiner = await mesh.node({ roles: [], syncVerifyWorkers: 2 })
    const pool = joiner.services.sync.verifyPool
    assert.equal(pool.threads.length, 0, 'no worker before there is bulk work')
    // Warm first: under tsx a worker takes a while to load, and batches go inline until then.
    await pool.whenReady()
    await mesh.connect(joiner, peer)
    await waitFor('joiner holds the 600 cards', () => joiner.collection.size >= 600)
    assert.ok(pool.stats.workerRecords > 0, JSON.stringify(pool.stats))
    const exited = pool.threads.map(async (w) => await new Promise((resolve) => w.once('exit', resolve)))
    assert.equal(exited.length, 2)
    await mesh.stopNode(joiner)
    assert.equal(pool.threads.length, 0)
    await Promise.all(exited)
  })

  it('syncVerifyWorkers 0 verifies inline and spawns nothing', async () => {
    const peer = await mesh.node({ roles: [] })
    const now = Math.floor(Date.now() / 1000)
    for (let i = 1; i <= 200; i++) peer.collection.apply(cardAt(testIdentity(i), now - 10), now)
    const joiner = await mesh.node({ roles: [], syncVerifyWorkers: 0, syncPipelineDepth: 1 })
    await mesh.connect(joiner, peer)
    await waitFor('joiner holds the 200 cards', () => joiner.collection.size >= 200)
    const pool = joiner.services.sync.verifyPool
    assert.equal(pool.threads.length, 0)
    assert.equal(pool.stats.workerRecords, 0)
    assert.equal(pool.stats.inlineRecords, 200)
  })
})
