import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { startNodeProcess, listenAddress, apiStatus, stopNodeProcess, type NodeProcess } from '../helpers/processes.js'
import { waitFor, testNetwork } from '../helpers/mesh.js'

const N = 10

describe(`a ${N}-node mesh in separate processes`, () => {
  const procs: NodeProcess[] = []
  after(async () => { await Promise.all(procs.map((p) => stopNodeProcess(p))) })

  it('converges: every node holds every node\'s card, and all stop cleanly on SIGTERM', async () => {
    const config = { network: testNetwork(), syncIntervalSecs: 2, gossipHeartbeatMs: 200 }
    const seed = await startNodeProcess([], config)
    procs.push(seed)
    const seedAddr = await listenAddress(seed)
    for (let i = 1; i < N; i++) procs.push(await startNodeProcess(['--bootstrap', seedAddr], config))
    await Promise.all(procs.map((p) => listenAddress(p)))

    // The statuses that showed convergence are the ones asserted on: a second round could meet a
    // node too busy to answer in time (10 processes on 2 cores), which says nothing about the mesh.
    let statuses: any[] = []
    await waitFor(`all ${N} nodes show ${N} cards`, async () => {
      statuses = await Promise.all(procs.map(apiStatus))
      return statuses.every((s) => s?.collection?.shown === N)
    }, 120_000, 500)
    assert.equal(new Set(statuses.map((s) => s.peerId)).size, N)
    for (const s of statuses) assert.equal(s.gossip.cards.reject, 0)

    const codes = await Promise.all(procs.splice(0).map((p) => stopNodeProcess(p)))
    assert.deepEqual(codes, Array(N).fill(0), 'every node exits 0 on SIGTERM')
  })
})
