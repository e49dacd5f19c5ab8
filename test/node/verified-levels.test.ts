import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { dirname } from 'node:path'
import { TestMesh, waitFor } from '../helpers/mesh.js'
import { runCli } from '../helpers/cli.js'
import type { Connection } from '@libp2p/interface'

describe('verified levels across a mesh (simulated TDX)', () => {
  const mesh = new TestMesh()
  after(async () => { await mesh.cleanup() })

  it('each node checks every card\'s evidence; a bond lifts it to bidirectional; over-claims stay visible', async () => {
    const tdx = { attest: { provider: 'simulated' as const, require: 'TdxRemote' as const } }
    const a = await mesh.node(tdx)
    const auditor = await mesh.node(tdx, { api: true })
    // A provider with no quote source that claims TDX anyway.
    const liar = await mesh.node({ attest: { provider: 'none' }, card: { schemesSupported: ['vm.ssh'], attestationLevel: 'TdxRemote', capacityPerSecond: 1, feePerPartialWei: '5', backends: [{ name: 'local', kind: 'local', regions: ['local'], maxCpu: 1, maxMemoryMiB: 512, maxDiskGiB: 1 }] } })
    await mesh.connect(auditor, a)
    await mesh.connect(auditor, liar)

    await waitFor('auditor checked a and the liar', () => auditor.verified.get(a.identity.did)?.level === 'TdxRemote' && auditor.verified.get(liar.identity.did) !== undefined)
    assert.equal(a.collection.get(a.identity.did, Math.floor(Date.now() / 1000))?.value.attestationLevel, 'TdxRaTlsBidirectional', 'a claims what its attest policy offers')
    assert.equal(auditor.verified.get(a.identity.did)?.simulated, true)
    assert.equal(auditor.verified.get(liar.identity.did)?.level, 'Software')
    assert.equal(auditor.verified.get(liar.identity.did)?.claimed, 'TdxRemote')

    // A bidirectional bond with a is the missing rung.
    const conn = auditor.libp2p.getConnections(a.libp2p.peerId)[0] as Connection
    const bond = await auditor.attest.attest(conn)
    assert.equal(bond.level, 'TdxRaTlsBidirectional')
    auditor.reverify(a.identity.did)
    await auditor.verificationsSettled()
    assert.equal(auditor.verified.get(a.identity.did)?.level, 'TdxRaTlsBidirectional')

    // The audit through the running node shows verified levels, the simulated mark and the over-claim.
    const r = await runCli(['audit', '--data', auditor.config.dataDir, '--json'], dirname(auditor.config.dataDir))
    assert.equal(r.code, 0, r.stderr)
    const report = JSON.parse(r.stdout)
    assert.ok(report.overClaims.includes(liar.identity.did))
    assert.ok(!report.overClaims.includes(a.identity.did))
    assert.ok(report.simulated.includes(a.identity.did))
    const row = report.ranked.find((x: any) => x.providerId === a.identity.did)
    assert.equal(row.verified, 'TdxRaTlsBidirectional')
    const text = await runCli(['audit', '--data', auditor.config.dataDir, '--floor', 'TdxRemote'], dirname(auditor.config.dataDir))
    assert.match(text.stdout, /TdxRaTlsBidirectional\*/)
    assert.match(text.stdout, /SIMULATED/)
  })
})
