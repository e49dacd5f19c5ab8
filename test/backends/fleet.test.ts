/** Fleet choice over backends described by their capabilities (the backends' own tests run them for real). */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Fleet } from '../../src/backends/fleet.js'
import { BackendError, checkCapabilities, type Backend, type BackendCapabilities, type Grant, type Instance } from '../../src/backends/backend.js'
import type { Rate } from '../../src/market/provider-card.js'

const NOW = 1_800_000_000_000

class Described implements Backend {
  provisioned: string[] = []
  constructor (readonly name: string, readonly kind: string, private readonly caps: BackendCapabilities) {}
  capabilities (): BackendCapabilities { return this.caps }
  canSatisfy (grant: Grant) { return checkCapabilities(this.caps, grant, NOW / 1000) }
  async provision (grant: Grant): Promise<Instance> {
    this.provisioned.push(grant.id)
    return { grantId: grant.id, backend: this.name, host: '192.0.2.1', port: 22, user: 'cmesh', hostKey: 'ssh-ed25519 AAAA', hostKeyFingerprint: 'SHA256:x' }
  }
  async terminate (): Promise<void> {}
}

const caps = (over: Partial<BackendCapabilities> = {}): BackendCapabilities => ({ regions: ['eu'], maxCpu: 8, maxMemoryMiB: 16384, maxDiskGiB: 100, tdx: false, ...over })
const rate = (backend: string, cpuHourWei: bigint, region?: string): Rate => ({ backend, cpuHourWei, memoryGiBHourWei: 0n, diskGiBHourWei: 0n, ...(region !== undefined ? { region } : {}) })
const grant = (over: Partial<Grant> = {}): Grant => ({ id: `g-${Math.random()}`, cpus: 2, memMiB: 2048, diskGiB: 10, region: 'eu', tdx: false, userData: new Uint8Array(), validToUnixSecs: NOW / 1000 + 3600, authorizedKey: 'ssh-ed25519 AAAA', ...over })

describe('Fleet', () => {
  const aws = new Described('aws', 'aws-ec2', caps({ regions: ['eu', 'us'] }))
  const gcp = new Described('gcp', 'gcp', caps({ tdx: true }))
  const azure = new Described('azure', 'azure', caps({ tdx: true, maxCpu: 64 }))
  const metal = new Described('metal', 'bare-metal', caps({ regions: ['home'], maxCpu: 2 }))
  const rates = [rate('aws', 10n), rate('gcp', 20n), rate('azure', 30n), rate('metal', 1n), rate('aws', 50n, 'us')]
  const fleet = new Fleet([aws, gcp, azure, metal], () => rates, () => NOW)

  it('picks the cheapest backend that fits; TDX only on TDX backends; regions and their own rates', () => {
    assert.equal((fleet.choose(grant(), 3600) as any).backend.name, 'aws')
    assert.equal((fleet.choose(grant({ tdx: true }), 3600) as any).backend.name, 'gcp')
    assert.equal((fleet.choose(grant({ region: 'home' }), 3600) as any).backend.name, 'metal')
    assert.equal((fleet.choose(grant({ region: 'us' }), 3600) as any).costWei, 100n, 'the region rate: 2 cpus × 50 wei × 1 h')
    assert.equal((fleet.choose(grant({ cpus: 32 }), 3600) as any).backend.name, 'azure', 'only azure has 32 CPUs')
    assert.match((fleet.choose(grant({ region: 'mars' }), 3600) as any).reason, /region mars/)
    assert.match((fleet.choose(grant({ region: 'home', tdx: true }), 3600) as any).reason, /TDX/)
  })

  it('provisions on the backend a bid was priced for, remembers the owner, and never provisions a grant twice', async () => {
    const g = grant()
    const instance = await fleet.provision(g, 3600, { backend: 'gcp' })
    assert.equal(instance.backend, 'gcp')
    assert.deepEqual(fleet.owner(g.id)?.backend, 'gcp')
    assert.equal(fleet.used('gcp').cpus, 2)
    await assert.rejects(fleet.provision(g, 3600), (err: unknown) => err instanceof BackendError)
    assert.deepEqual(gcp.provisioned, [g.id])
    // Across a restart the provider tells a new fleet what it already handled.
    const restarted = new Fleet([aws, gcp], () => rates, () => NOW)
    restarted.remember(g.id, 'gcp')
    await assert.rejects(restarted.provision(g, 3600), (err: unknown) => err instanceof BackendError)
    assert.deepEqual(gcp.provisioned, [g.id])
    await assert.rejects(fleet.provision(grant({ tdx: true }), 3600, { backend: 'aws' }), (err: unknown) => err instanceof BackendError && err.code === 'BACKEND_CANNOT_SATISFY')
  })

  it('its capabilities are the union of its backends\'', () => {
    assert.deepEqual(fleet.capabilities(), { regions: ['eu', 'home', 'us'], maxCpu: 64, maxMemoryMiB: 16384, maxDiskGiB: 100, tdx: true })
  })
})
