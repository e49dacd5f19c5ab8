/**
 * The Fleet over the four real backend classes, configured as an operator would: bare metal against
 * a real sshd, AWS, GCP and Azure (their own tests run them against moto and the local API servers;
 * here the Fleet's choice is what is tested, and the bare-metal grant is really provisioned).
 */
import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { Fleet } from '../../src/backends/fleet.js'
import { BareMetalBackend } from '../../src/backends/bare-metal.js'
import { AwsEc2Backend } from '../../src/backends/aws-ec2.js'
import { GcpBackend } from '../../src/backends/gcp.js'
import { AzureBackend } from '../../src/backends/azure.js'
import { generateGrantKeyPair } from '../../src/backends/ssh-keys.js'
import type { Grant } from '../../src/backends/backend.js'
import type { Rate } from '../../src/market/provider-card.js'
import { requireSshd, startSshd, type Sshd } from '../helpers/sshd.js'

const rate = (backend: string, cpuHourWei: bigint, region?: string): Rate => ({ backend, cpuHourWei, memoryGiBHourWei: 0n, diskGiBHourWei: 0n, ...(region !== undefined ? { region } : {}) })

describe('Fleet over bare metal, AWS, GCP and Azure', () => {
  let sshd: Sshd | undefined
  let metal: BareMetalBackend | undefined
  const grants: string[] = []
  after(async () => {
    for (const id of grants) await fleet?.terminate(id).catch(() => {})
    metal?.close()
    await sshd?.stop()
  })
  let fleet: Fleet | undefined

  it('chooses by TDX, region, price and capacity, and provisions the bare-metal grant for real', async (t) => {
    if (!requireSshd(t)) return
    sshd = await startSshd()
    metal = new BareMetalBackend({ name: 'metal', hosts: [{ name: 'rack1', address: '127.0.0.1', port: sshd.port, user: 'root', privateKey: sshd.adminKey.privateKey, hostKey: sshd.hostKey, regions: ['eu'], maxCpu: 2, maxMemoryMiB: 2048, maxDiskGiB: 10, tdx: false }] })
    const aws = new AwsEc2Backend({ name: 'aws', regions: [{ region: 'eu-west-1', imageId: 'ami-12345678' }, { region: 'us-east-1', imageId: 'ami-12345678' }], maxCpu: 64, maxMemoryMiB: 262144, maxDiskGiB: 1000, endpoint: 'http://127.0.0.1:9', credentials: { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'example' } })
    const gcp = new GcpBackend({ name: 'gcp', project: 'p', zones: [{ zone: 'europe-west4-a', region: 'europe-west4', tdx: true }], tdx: true, maxCpu: 176, maxMemoryMiB: 720896, maxDiskGiB: 1000, clientOptions: { apiEndpoint: '127.0.0.1', port: 9, protocol: 'http', fallback: true, apiKey: 'k' } as any })
    const azure = new AzureBackend({ name: 'azure', subscriptionId: 's', resourceGroup: 'rg', locations: ['westeurope'], imageReference: { publisher: 'p', offer: 'o', sku: 's', version: 'latest' }, subnetId: '/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/x', maxCpu: 96, maxMemoryMiB: 393216, maxDiskGiB: 1000, tdx: true, credential: { getToken: async () => ({ token: 't', expiresOnTimestamp: Date.now() + 3600_000 }) }, endpoint: 'https://127.0.0.1:9', addressOf: async () => undefined } as any)
    const rates = [rate('metal', 1n), rate('aws', 10n), rate('aws', 40n, 'us-east-1'), rate('gcp', 20n), rate('azure', 15n)]
    fleet = new Fleet([metal, aws, gcp, azure], () => rates)
    const key = generateGrantKeyPair('fleet-test')
    const grant = (over: Partial<Grant>): Grant => ({ id: `fleet-${Math.random().toString(16).slice(2)}`, cpus: 2, memMiB: 1024, diskGiB: 5, region: 'eu', tdx: false, userData: new TextEncoder().encode('true\n'), validToUnixSecs: Math.floor(Date.now() / 1000) + 3600, authorizedKey: key.authorizedKey, ...over })
    const chosen = (g: Grant): string => { const c = fleet!.choose(g, 3600); return 'reason' in c ? `none: ${c.reason}` : c.backend.name }

    assert.equal(chosen(grant({ region: 'europe-west4', tdx: true })), 'gcp', 'TDX only where TDX is')
    assert.equal(chosen(grant({ region: 'westeurope', tdx: true })), 'azure')
    assert.equal(chosen(grant({ region: 'us-east-1' })), 'aws', 'the only backend in that region, at its region rate')
    assert.equal((fleet.choose(grant({ region: 'us-east-1' }), 3600) as any).costWei, 80n)
    assert.equal(chosen(grant({})), 'metal', 'cheapest for eu')
    assert.match(chosen(grant({ region: 'eu', tdx: true })), /^none: /)

    // Capacity: the bare-metal host has 2 CPUs; once a grant holds them, it is full.
    const first = grant({})
    grants.push(first.id)
    const instance = await fleet.provision(first, 3600)
    assert.equal(instance.backend, 'metal')
    assert.match(chosen(grant({})), /^none: .*metal/, 'eu capacity exhausted: nothing else serves eu')
    await fleet.terminate(first.id)
    assert.equal(chosen(grant({})), 'metal', 'free again after terminate')
  })
})
