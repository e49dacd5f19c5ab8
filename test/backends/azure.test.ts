/**
 * AzureBackend with the real @azure/arm-compute SDK against a local HTTPS fake of ARM (test CA
 * trusted through the pipeline's `tlsOptions.ca`; bearer tokens only go over TLS): VM bodies,
 * LRO polling, read-back, terminate, orphans, and faults that must leave no VM behind.
 */
import { after, before, beforeEach, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import ssh2 from 'ssh2'
import type { TokenCredential } from '@azure/core-auth'
import { ComputeManagementClient } from '@azure/arm-compute'
import { utf8 } from '../../src/market/bytes.js'
import { createLogger } from '../../src/node/logger.js'
import { BackendError, type Grant, type ProvisionProgress } from '../../src/backends/backend.js'
import { AzureBackend, azureVmName, type AzureBackendOptions, type AzureEndpoint } from '../../src/backends/azure.js'
import { generateGrantKeyPair, hostKeyFingerprint, publicKeyBlob } from '../../src/backends/ssh-keys.js'
import { FAKE_ARM_TOKEN, FakeArm, makeTestTls, type TestTls } from '../helpers/fake-arm.js'

const SUB = '00000000-0000-0000-0000-000000000001'
const RG = 'cmesh-test'
const SUBNET = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default`
const quiet = createLogger('test', 'silent')
const credential: TokenCredential = { getToken: async () => ({ token: FAKE_ARM_TOKEN, expiresOnTimestamp: Date.now() + 3_600_000 }) }
const hostKeyLine = ssh2.utils.generateKeyPairSync('ed25519').public.trim().split(/\s+/).slice(0, 2).join(' ')
const key = generateGrantKeyPair('azure-test')
let seq = 0

function makeGrant (overrides: Partial<Grant> = {}): Grant {
  return {
    id: `grant-${process.pid}-${++seq}`,
    cpus: 2,
    memMiB: 4096,
    diskGiB: 40,
    region: 'westeurope',
    tdx: false,
    userData: utf8('#!/bin/sh\necho "$(id)" \'; rm -rf /\'\n'),
    validToUnixSecs: Math.floor(Date.now() / 1000) + 3600,
    authorizedKey: key.authorizedKey,
    ...overrides
  }
}

describe('AzureBackend against a fake ARM over HTTPS', () => {
  let tls: TestTls
  let arm: FakeArm
  const addressed: string[] = []
  let endpointFor: (name: string) => AzureEndpoint | undefined = () => ({ host: '203.0.113.7', hostKey: hostKeyLine, ipv4: '203.0.113.7' })

  const backend = (extra: Partial<AzureBackendOptions> = {}): AzureBackend => new AzureBackend({
    name: 'azure-test',
    subscriptionId: SUB,
    resourceGroup: RG,
    locations: ['westeurope'],
    imageReference: { publisher: 'Canonical', offer: 'ubuntu-24_04-lts', sku: 'server', version: 'latest' },
    tdxImageReference: { publisher: 'Canonical', offer: 'ubuntu-24_04-lts', sku: 'cvm', version: 'latest' },
    subnetId: SUBNET,
    maxCpu: 16,
    maxMemoryMiB: 65536,
    maxDiskGiB: 256,
    tdx: true,
    credential,
    endpoint: arm.url,
    clientOptions: { tlsOptions: { ca: tls.caPem }, retryOptions: { maxRetries: 0 } },
    addressOf: async (vm) => { addressed.push(vm.name ?? ''); return endpointFor(vm.name ?? '') },
    log: quiet,
    pollIntervalMs: 25,
    provisionTimeoutMs: 5000,
    deleteRetryDelaysMs: [20, 40],
    ...extra
  })
  const puts = (): any[] => arm.requests.filter((r) => r.method === 'PUT').map((r) => r.body)

  before(async () => {
    tls = makeTestTls()
    arm = await FakeArm.start({ tls, createDelayMs: 80, deleteDelayMs: 40 })
  })
  after(async () => { await arm.close() })
  beforeEach(() => {
    arm.faults = {}
    arm.requests.length = 0
    arm.vms.clear() // each test checks its own leftovers; one failure must not cascade
    arm.nics.clear()
    arm.publicIps.clear()
    addressed.length = 0
    endpointFor = () => ({ host: '203.0.113.7', hostKey: hostKeyLine, ipv4: '203.0.113.7' })
  })

  it('provisions a Dsv5 VM with the grant key, tag and user_data, reads it back and terminates it', async () => {
    const b = backend()
    const grant = makeGrant()
    const events: ProvisionProgress[] = []
    const instance = await b.provision(grant, { onProgress: (e) => { events.push(e) } })
    const name = azureVmName(grant.id)
    assert.equal(instance.handle, name)
    assert.equal(instance.host, '203.0.113.7')
    assert.equal(instance.port, 22)
    assert.equal(instance.user, 'cmesh')
    assert.equal(instance.hostKey, hostKeyLine)
    assert.equal(instance.hostKeyFingerprint, hostKeyFingerprint(publicKeyBlob(hostKeyLine)))
    assert.deepEqual(events.map((e) => e.type), ['provision:starting', 'provision:booting', 'provision:user-data', 'provision:ready'])
    assert.deepEqual(addressed, [name])

    const [put] = puts()
    assert.equal(put.location, 'westeurope')
    assert.equal(put.tags['cmesh-grant'], grant.id)
    assert.equal(put.properties.hardwareProfile.vmSize, 'Standard_D2s_v5')
    assert.equal(put.properties.securityProfile, undefined)
    assert.equal(put.properties.osProfile.adminUsername, 'cmesh')
    assert.deepEqual(put.properties.osProfile.linuxConfiguration.ssh.publicKeys, [{ path: '/home/cmesh/.ssh/authorized_keys', keyData: key.authorizedKey }])
    assert.equal(put.properties.osProfile.linuxConfiguration.disablePasswordAuthentication, true)
    assert.equal(Buffer.from(put.properties.userData, 'base64').toString('utf8'), Buffer.from(grant.userData).toString('utf8'))
    assert.equal(put.properties.osProfile.customData, undefined)
    assert.equal(put.properties.storageProfile.osDisk.diskSizeGB, 40)
    assert.equal(put.properties.storageProfile.osDisk.deleteOption, 'Delete')
    assert.equal(put.properties.networkProfile.networkInterfaceConfigurations[0].properties.ipConfigurations[0].properties.subnet.id, SUBNET) // wire form nests `properties`
    const putReq = arm.requests.find((r) => r.method === 'PUT')
    assert.ok(putReq?.authorized, 'bearer token sent over TLS')
    assert.ok(arm.requests.some((r) => r.method === 'GET' && /\/operations\//.test(r.path)), 'the SDK polled the async operation')

    // Read back with the SDK itself.
    const sdk = new ComputeManagementClient(credential, SUB, { endpoint: arm.url, $host: arm.url, tlsOptions: { ca: tls.caPem } })
    const vm = await sdk.virtualMachines.get(RG, name)
    assert.equal(vm.provisioningState, 'Succeeded')
    assert.equal(vm.tags?.['cmesh-grant'], grant.id)
    assert.deepEqual(await b.findOrphans(), [{ grantId: grant.id, name, backend: 'azure-test', location: 'westeurope' }])
    assert.deepEqual(b.canSatisfy(grant), { ok: false, reason: 'grant already provisioned' })

    await b.terminate(instance)
    assert.equal(arm.vms.size, 0)
    await b.terminate(instance) // idempotent: already gone
    assert.deepEqual(await b.findOrphans(), [])
    assert.deepEqual(await b.checkHealth(), { ok: true })
  })

  it('provisions a TDX grant as a confidential DCesv5/ECesv5 VM', async () => {
    const b = backend()
    const small = makeGrant({ tdx: true, cpus: 4, memMiB: 8192 })
    const big = makeGrant({ tdx: true, cpus: 4, memMiB: 24 * 1024 })
    const [i1, i2] = await Promise.all([b.provision(small, {}), b.provision(big, {})])
    const bodies = new Map(puts().map((p) => [p.tags['cmesh-grant'], p]))
    assert.equal(bodies.get(small.id).properties.hardwareProfile.vmSize, 'Standard_DC4es_v5')
    assert.equal(bodies.get(big.id).properties.hardwareProfile.vmSize, 'Standard_EC4es_v5')
    for (const put of bodies.values()) {
      assert.match(put.properties.hardwareProfile.vmSize, /^Standard_(DC|EC)\d+es_v5$/)
      assert.deepEqual(put.properties.securityProfile, { securityType: 'ConfidentialVM', uefiSettings: { secureBootEnabled: true, vTpmEnabled: true } })
      assert.equal(put.properties.storageProfile.osDisk.managedDisk.securityProfile.securityEncryptionType, 'VMGuestStateOnly')
      assert.equal(put.properties.storageProfile.imageReference.sku, 'cvm')
    }
    await Promise.all([b.terminate(i1), b.terminate(i2)])
    assert.equal(arm.vms.size, 0)
  })

  it('refuses what it cannot host', () => {
    const b = backend({ tdx: false })
    assert.equal(b.canSatisfy(makeGrant({ tdx: true })).ok, false)
    assert.equal(b.canSatisfy(makeGrant({ region: 'eastus' })).ok, false)
    assert.equal(b.canSatisfy(makeGrant({ cpus: 64 })).ok, false)
    assert.deepEqual(backend({ addressOf: undefined }).canSatisfy(makeGrant()), { ok: true }, 'the built-in resolver serves config without a hook')
    assert.throws(() => backend({ addressOf: undefined, address: 'elastic-ip' as any }), /address must be/)
    assert.throws(() => backend({ addressOf: undefined, hostKeyFrom: 'imds' as any }), /hostKeyFrom must be/)
    assert.throws(() => backend({ addressOf: 'resolver.js' as any }), /addressOf must be a function/)
    assert.throws(() => backend({ networkInterfaceIds: ['/nic/1'] }), /exactly one/)
  })

  it('uses a pre-created NIC from the pool, one VM per NIC', async () => {
    const nic = `/subscriptions/${SUB}/resourceGroups/${RG}/providers/Microsoft.Network/networkInterfaces/nic-1`
    const b = backend({ subnetId: undefined, networkInterfaceIds: [nic] })
    const instance = await b.provision(makeGrant(), {})
    assert.deepEqual(puts()[0].properties.networkProfile, { networkInterfaces: [{ id: nic, properties: { primary: true, deleteOption: 'Detach' } }] })
    assert.match((b.canSatisfy(makeGrant()) as { reason: string }).reason, /in use/)
    await b.terminate(instance)
    assert.deepEqual(b.canSatisfy(makeGrant()), { ok: true })
  })

  async function assertFails (b: AzureBackend, grant: Grant, code: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    await assert.rejects(b.provision(grant, options), (err: unknown) => {
      assert.ok(err instanceof BackendError)
      assert.equal(err.code, code, err.message)
      assert.equal(err.meta.grantId, grant.id)
      return true
    })
    assert.equal(arm.vms.size, 0, 'no VM left behind')
    assert.ok(arm.requests.some((r) => r.method === 'DELETE'), 'the VM was deleted')
    assert.deepEqual(b.canSatisfy(grant), { ok: true }, 'the grant is released')
  }

  it('a failed create operation: the VM is deleted, BACKEND_PROVISION_FAILED with the reason', async () => {
    arm.faults.create = 'fail'
    const b = backend()
    const grant = makeGrant()
    await assert.rejects(b.provision(grant, {}), /AllocationFailed|Allocation failed/)
    assert.equal(arm.vms.size, 0)
    arm.requests.length = 0
    await assertFails(b, grant, 'BACKEND_PROVISION_FAILED')
  })

  it('a stalled create: BACKEND_TIMEOUT at the deadline and the VM is deleted', async () => {
    arm.faults.create = 'stall'
    const b = backend({ provisionTimeoutMs: 400 })
    const started = Date.now()
    await assertFails(b, makeGrant(), 'BACKEND_TIMEOUT')
    assert.ok(Date.now() - started < 3000, 'gave up at the deadline')
  })

  it('the caller aborts mid-provision: BACKEND_ABORTED and the VM is deleted', async () => {
    arm.faults.create = 'stall'
    await assertFails(backend(), makeGrant(), 'BACKEND_ABORTED', { signal: AbortSignal.timeout(200) })
  })

  it('no host key from the hook: fails closed with BACKEND_HOST_KEY_UNKNOWN after deleting the VM', async () => {
    endpointFor = () => ({ host: '203.0.113.7' })
    await assertFails(backend(), makeGrant(), 'BACKEND_HOST_KEY_UNKNOWN')
  })

  /** What a config file can say (JSON round-trip: no functions), plus the fake's credential, endpoint and TLS trust. */
  const fromConfig = (json: Record<string, unknown> = {}, extra: Partial<AzureBackendOptions> = {}): AzureBackend => {
    const config = JSON.parse(JSON.stringify({
      name: 'azure-config',
      subscriptionId: SUB,
      resourceGroup: RG,
      locations: ['westeurope'],
      imageReference: { publisher: 'Canonical', offer: 'ubuntu-24_04-lts', sku: 'server', version: 'latest' },
      subnetId: SUBNET,
      maxCpu: 16,
      maxMemoryMiB: 65536,
      maxDiskGiB: 256,
      tdx: false,
      pollIntervalMs: 25,
      provisionTimeoutMs: 5000,
      deleteRetryDelaysMs: [20, 40],
      ...json
    }))
    return new AzureBackend({ ...config, credential, endpoint: arm.url, clientOptions: { tlsOptions: { ca: tls.caPem }, retryOptions: { maxRetries: 0 } }, log: quiet, ...extra })
  }

  it('config without addressOf: the built-in resolver finds the public IP and the host key in the serial log', async () => {
    const b = fromConfig({ address: 'public-ip', hostKeyFrom: 'boot-diagnostics' })
    const grant = makeGrant()
    const name = azureVmName(grant.id)
    const instance = await b.provision(grant, {})
    const put = puts()[0]
    assert.deepEqual(put.properties.diagnosticsProfile, { bootDiagnostics: { enabled: true } }, 'boot diagnostics on, managed storage')
    const pip = [...arm.publicIps.values()][0]
    assert.equal(instance.host, pip.properties.ipAddress)
    assert.equal(instance.ipv4, pip.properties.ipAddress)
    const hostKey = arm.hostKeys.get(name)
    assert.ok(hostKey !== undefined)
    assert.equal(instance.hostKey, hostKey)
    assert.equal(instance.hostKeyFingerprint, hostKeyFingerprint(publicKeyBlob(hostKey)))
    assert.equal(instance.user, 'cmesh')

    const nicGets = arm.requests.filter((r) => r.method === 'GET' && /\/Microsoft\.Network\/(networkInterfaces|publicIPAddresses)\//.test(r.path))
    assert.equal(nicGets.length, 2)
    assert.ok(nicGets.every((r) => r.authorized && /api-version=2023-09-01/.test(r.query)))
    assert.ok(arm.requests.some((r) => r.method === 'POST' && r.path.endsWith(`/virtualMachines/${name}/retrieveBootDiagnosticsData`) && r.authorized))
    const logGets = arm.requests.filter((r) => r.path.endsWith('.serialconsole.log'))
    assert.ok(logGets.length >= 2, 'polled the serial log until the key block appeared')
    assert.ok(logGets.every((r) => !r.authorized), 'the ARM bearer token never goes to the blob')

    await b.terminate(instance)
    assert.equal(arm.vms.size, 0)
    assert.equal(arm.nics.size, 0, 'the VM-owned NIC went with the VM')
    assert.equal(arm.publicIps.size, 0)
    assert.deepEqual(await b.findOrphans(), [])

    const priv = fromConfig({ address: 'private-ip' })
    const i2 = await priv.provision(makeGrant(), {})
    assert.match(i2.host, /^10\.0\.0\.\d+$/)
    assert.equal(i2.ipv4, i2.host)
    await priv.terminate(i2)
    assert.equal(arm.vms.size, 0)
  })

  it('built-in resolver: a serial log that never shows host keys fails closed with BACKEND_HOST_KEY_UNKNOWN and no VM left', async () => {
    arm.faults.noHostKeys = true
    const b = fromConfig({ provisionTimeoutMs: 600 })
    await assertFails(b, makeGrant(), 'BACKEND_HOST_KEY_UNKNOWN')
    assert.ok(arm.requests.filter((r) => r.path.endsWith('.serialconsole.log')).length >= 2, 'kept polling until the deadline')
    assert.equal(arm.nics.size, 0)
  })

  it('a refused PUT: BACKEND_PROVISION_FAILED, nothing left', async () => {
    arm.faults.create = 'reject'
    await assertFails(backend(), makeGrant(), 'BACKEND_PROVISION_FAILED')
  })

  it('terminate retries a conflicting delete with backoff', async () => {
    const b = backend()
    const instance = await b.provision(makeGrant(), {})
    arm.faults.deleteConflicts = 2
    await b.terminate(instance)
    assert.equal(arm.requests.filter((r) => r.method === 'DELETE').length, 3)
    assert.equal(arm.vms.size, 0)
  })

  it('watchUntilExit deletes the VM at valid-to, and resolves when the VM vanishes', async () => {
    const b = backend({ watchIntervalMs: 50 })
    const expiring = makeGrant()
    const i1 = await b.provision(expiring, {})
    await b.watchUntilExit(i1, Math.floor(Date.now() / 1000) + 1)
    assert.equal(arm.vms.size, 0, 'deleted at valid-to')

    const i2 = await b.provision(makeGrant(), {})
    const watched = b.watchUntilExit(i2, Math.floor(Date.now() / 1000) + 3600)
    arm.vms.clear() // deleted behind the backend's back
    await watched
    assert.deepEqual(b.canSatisfy(expiring), { ok: true }, 'ended grants are released')
  })

  it('checkHealth reports a rejected credential', async () => {
    const bad: TokenCredential = { getToken: async () => ({ token: 'wrong', expiresOnTimestamp: Date.now() + 3_600_000 }) }
    const health = await backend({ credential: bad }).checkHealth()
    assert.equal(health.ok, false)
    assert.doesNotMatch(JSON.stringify(health), /wrong|fake-arm-token/)
  })
})
