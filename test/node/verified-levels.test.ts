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

    // Both require TDX of peers, so each bonds with the other by itself (no test calls attest()).
    await waitFor('auditor verified a bidirectionally', () => auditor.services.verifiedLevels.levels.get(a.identity.did)?.level === 'TdxRaTlsBidirectional' && auditor.services.verifiedLevels.levels.get(liar.identity.did) !== undefined)
    await waitFor('a verified the auditor bidirectionally', () => a.services.verifiedLevels.levels.get(auditor.identity.did)?.level === 'TdxRaTlsBidirectional')
    assert.equal(a.collection.get(a.identity.did, Math.floor(Date.now() / 1000))?.value.attestationLevel, 'TdxRaTlsBidirectional', 'a claims what its attest policy offers')
    assert.equal(auditor.services.verifiedLevels.levels.get(a.identity.did)?.simulated, true)
    assert.equal(auditor.services.verifiedLevels.levels.get(liar.identity.did)?.level, 'Software')
    assert.equal(auditor.services.verifiedLevels.levels.get(liar.identity.did)?.claimed, 'TdxRemote')
    const conn = auditor.libp2p.getConnections(a.libp2p.peerId)[0] as Connection
    assert.equal(auditor.services.attestation.attest.bondFor(conn)?.bidirectional, true)
    // What an operator sees: `cmesh cards` against the running node.
    const listed = await runCli(['cards', '--data', auditor.config.dataDir, '--json'], dirname(auditor.config.dataDir))
    assert.equal(listed.code, 0, listed.stderr)
    const rowOfA = JSON.parse(listed.stdout).find((c: any) => c.card.providerId === a.identity.did)
    assert.equal(rowOfA.verified.level, 'TdxRaTlsBidirectional')
    assert.equal(rowOfA.verified.simulated, true)

    // The bond ends with its connection, and so does the rung it earned (until a new bond forms).
    const levels: string[] = []
    const unsubscribe = auditor.events.subscribe((e) => { const d = e.data as { providerId: string, level: string }; if (e.type === 'verified' && d.providerId === a.identity.did) levels.push(d.level) })
    await conn.close()
    await waitFor('the verdict was re-checked without the bond, then a new bond formed', () => levels.includes('TdxRemote') && levels.at(-1) === 'TdxRaTlsBidirectional', 30_000)
    unsubscribe()

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
