import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { TestMesh, waitFor } from '../helpers/mesh.js'

describe('card evidence through DHT content routing', () => {
  const mesh = new TestMesh()
  after(async () => { await mesh.cleanup() })

  it('an auditor verifies a provider\'s evidence from another holder after the provider went away', async () => {
    const provider = await mesh.node({ dht: true })
    const holder = await mesh.node({ dht: true, bootstrap: [mesh.addrOf(provider)] })
    await waitFor('holder verified the provider', () => holder.services.verifiedLevels.levels.get(provider.identity.did)?.level === 'TdxRemote', 30_000)
    const did = provider.identity.did
    await mesh.stopNode(provider)

    const auditor = await mesh.node({ dht: true, bootstrap: [mesh.addrOf(holder)] })
    await waitFor('auditor holds the provider\'s card', () => auditor.collection.get(did, Math.floor(Date.now() / 1000)) !== undefined, 30_000)
    await waitFor('auditor verified it from the holder', () => auditor.services.verifiedLevels.levels.get(did)?.level === 'TdxRemote', 40_000)
    assert.equal(auditor.services.verifiedLevels.levels.get(did)?.simulated, true)
  })
})
