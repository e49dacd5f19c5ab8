/**
 * GcpBackend through the real `@google-cloud/compute` client (REST fallback) against a local fake of
 * the Compute Engine endpoints it uses: provision (plain and TDX), read-back, terminate, orphans,
 * and faults mid-provision (operation error, stalled operation, abort) that must leave nothing behind.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import compute from '@google-cloud/compute'
import { createLogger } from '../../src/node/logger.js'
import { BackendError, type Grant, type ProvisionProgress } from '../../src/backends/backend.js'
import { GcpBackend, instanceName, labelValue, type GcpBackendOptions } from '../../src/backends/gcp.js'
import { generateGrantKeyPair, hostKeyFingerprint, publicKeyBlob } from '../../src/backends/ssh-keys.js'
import { FakeGce } from '../helpers/fake-gce.js'

const quiet = createLogger('test', 'silent')
const PROJECT = 'cmesh-test'
const keys = generateGrantKeyPair('grant-key')
let seq = 0

function makeGrant (overrides: Partial<Grant> = {}): Grant {
  return {
    id: `did:plc:Provider${process.pid}/grant-${++seq}`,
    cpus: 2,
    memMiB: 4096,
    diskGiB: 20,
    region: 'us-central1',
    tdx: false,
    userData: new TextEncoder().encode('#!/bin/sh\necho "it\'s $(id -u)" > /tmp/x; rm -rf \'/tmp/y\'\n'),
    validToUnixSecs: Math.floor(Date.now() / 1000) + 3600,
    authorizedKey: keys.authorizedKey,
    ...overrides
  }
}

function metadata (body: any): Record<string, string> {
  return Object.fromEntries((body?.metadata?.items ?? []).map((i: any) => [i.key, i.value]))
}

describe('GcpBackend against a fake Compute Engine', () => {
  const fake = new FakeGce({ opDelayMs: 40, waitHoldMs: 60, hostKeyDelayMs: 30 })
  const backends: GcpBackend[] = []
  const make = (overrides: Partial<GcpBackendOptions> = {}): GcpBackend => {
    const b = new GcpBackend({
      project: PROJECT,
      zones: [{ zone: 'us-central1-a', region: 'us-central1' }, { zone: 'us-central1-b', region: 'us-central1' }, { zone: 'europe-west4-a', region: 'europe-west4', tdx: false }],
      tdx: true,
      clientOptions: fake.clientOptions(),
      log: quiet,
      pollIntervalMs: 20,
      provisionTimeoutMs: 5000,
      terminateTimeoutMs: 5000,
      retry: { attempts: 4, baseDelayMs: 20 },
      ...overrides
    })
    backends.push(b)
    return b
  }
  let gcp: GcpBackend

  before(async () => {
    await fake.start()
    gcp = make()
  })
  after(async () => {
    await Promise.all(backends.map(async (b) => { await b.close() }))
    await fake.stop()
  })

  it('provisions an e2 VM whose only login is the grant key, then reads it back and deletes it', async () => {
    const grant = makeGrant()
    const events: ProvisionProgress[] = []
    const instance = await gcp.provision(grant, { onProgress: (e) => events.push(e) })
    const name = instanceName(grant.id)
    assert.equal(instance.handle, `us-central1-a/${name}`)
    assert.deepEqual(events.map((e) => e.type), ['provision:starting', 'provision:booting', 'provision:user-data', 'provision:ready'])

    const [insert] = fake.requestsTo('POST', /\/zones\/us-central1-a\/instances$/)
    const body = insert?.body
    assert.equal(body.name, name)
    assert.match(body.machineType, /machineTypes\/e2-standard-2$/)
    assert.equal(body.confidentialInstanceConfig, undefined)
    assert.equal(body.labels['cmesh-grant'], labelValue(grant.id))
    assert.match(body.labels['cmesh-grant'], /^[a-z0-9_-]{1,63}$/)
    assert.equal(body.labels['cmesh-backend'], 'gcp')
    const md = metadata(body)
    assert.equal(md['cmesh-grant'], grant.id)
    assert.equal(md['ssh-keys'], `cmesh:${keys.authorizedKey.split(' ').slice(0, 2).join(' ')}`)
    assert.equal(md['user-data'], new TextDecoder().decode(grant.userData)) // verbatim, its own value
    assert.equal(md['startup-script'], undefined)
    assert.equal(md['block-project-ssh-keys'], 'TRUE')
    assert.equal(md['enable-oslogin'], 'FALSE')
    assert.equal(md['enable-guest-attributes'], 'TRUE')
    assert.equal(body.serviceAccounts, undefined) // none: the VM holds no identity in the project
    assert.equal(body.disks[0].initializeParams.diskSizeGb, '20')
    assert.equal(body.scheduling.terminationTime, new Date(grant.validToUnixSecs * 1000).toISOString())
    assert.equal(body.scheduling.instanceTerminationAction, 'DELETE')

    const held = fake.instance('us-central1-a', name)
    assert.ok(held)
    const natIP = held.resource.networkInterfaces[0].accessConfigs[0].natIP
    assert.equal(instance.host, natIP)
    assert.equal(instance.ipv4, natIP)
    assert.equal(instance.port, 22)
    assert.equal(instance.user, 'cmesh')
    assert.equal(instance.hostKey, `${held.hostKey.type} ${held.hostKey.base64}`)
    assert.equal(instance.hostKeyFingerprint, hostKeyFingerprint(publicKeyBlob(instance.hostKey)))
    assert.ok(fake.requestsTo('GET', /\/getGuestAttributes$/).some((r) => r.query.queryPath === 'hostkeys/'))
    assert.ok(fake.requestsTo('POST', /\/operations\/[^/]+\/wait$/).length > 0)

    // Read back through the SDK itself.
    const client = new compute.InstancesClient(fake.clientOptions())
    const [got] = await client.get({ project: PROJECT, zone: 'us-central1-a', instance: name })
    assert.equal(got.status, 'RUNNING')
    assert.equal(got.labels?.['cmesh-grant'], labelValue(grant.id))
    await client.close()

    assert.equal(gcp.canSatisfy(grant).ok, false) // never provisioned twice
    await gcp.terminate(instance)
    assert.equal(fake.instance('us-central1-a', name), undefined)
    await gcp.terminate(instance) // idempotent: a 404 is fine
    assert.equal(gcp.canSatisfy(grant).ok, true)
  })

  it('provisions a TDX grant as a C3 confidential VM', async () => {
    const grant = makeGrant({ tdx: true, cpus: 4, memMiB: 8192 })
    const instance = await gcp.provision(grant, {})
    const body = fake.requestsTo('POST', /\/instances$/).find((r) => r.body?.name === instanceName(grant.id))?.body
    assert.ok(body)
    assert.match(body.machineType, /machineTypes\/c3-standard-4$/)
    assert.deepEqual(body.confidentialInstanceConfig, { confidentialInstanceType: 'TDX' })
    assert.equal(body.scheduling.onHostMaintenance, 'TERMINATE')
    await gcp.terminate(instance)
    assert.equal(fake.instances.size, 0)
  })

  it('refuses what it cannot host', () => {
    assert.match(make({ tdx: false }).canSatisfy(makeGrant({ tdx: true })).ok ? '' : 'refused', /refused/)
    const tdxElsewhere = gcp.canSatisfy(makeGrant({ tdx: true, region: 'europe-west4' }))
    assert.equal(tdxElsewhere.ok, false)
    assert.equal(gcp.canSatisfy(makeGrant({ cpus: 1000 })).ok, false)
    assert.equal(gcp.canSatisfy(makeGrant({ region: 'asia-east1' })).ok, false)
    assert.equal(gcp.canSatisfy(makeGrant({ userData: new Uint8Array([0xff, 0xfe]) })).ok, false)
    assert.equal(gcp.canSatisfy(makeGrant({ authorizedKey: 'not a key' })).ok, false)
  })

  it('finds orphans by label after a restart, only its own', async () => {
    const a = makeGrant()
    const b = makeGrant({ region: 'europe-west4' })
    const ia = await gcp.provision(a, {})
    const ib = await gcp.provision(b, {})
    assert.deepEqual(await gcp.findOrphans(), []) // both are live in this object
    const other = make({ name: 'gcp-other' })
    const client = new compute.InstancesClient(fake.clientOptions())
    await client.insert({ project: PROJECT, zone: 'us-central1-a', instanceResource: { name: 'unrelated-vm', labels: { team: 'x' } } })
    await client.close()

    const restarted = make() // same name, fresh process state
    const orphans = await restarted.findOrphans()
    assert.deepEqual(
      orphans.map((o) => ({ grantId: o.grantId, name: o.name, zone: o.zone, handle: o.handle })).sort((x, y) => x.zone.localeCompare(y.zone)),
      [
        { grantId: b.id, name: instanceName(b.id), zone: 'europe-west4-a', handle: ib.handle },
        { grantId: a.id, name: instanceName(a.id), zone: 'us-central1-a', handle: ia.handle }
      ])
    const filters = fake.requestsTo('GET', /\/aggregated\/instances$/).map((r) => r.query.filter)
    assert.ok(filters.includes('labels.cmesh-backend = "gcp"'))
    assert.deepEqual(await other.findOrphans(), [])

    for (const o of orphans) await restarted.terminate({ grantId: o.grantId, backend: restarted.name, host: '', port: 22, user: 'cmesh', hostKey: '', hostKeyFingerprint: '', handle: o.handle })
    assert.deepEqual(await restarted.findOrphans(), [])
    assert.deepEqual([...fake.instances.values()].map((i) => i.resource.name), ['unrelated-vm'])
    fake.instances.clear()
  })

  it('checks health with an authenticated list', async () => {
    assert.deepEqual(await gcp.checkHealth(), { ok: true })
    const wrongKey = make({ clientOptions: { ...fake.clientOptions(), apiKey: 'wrong' } })
    const health = await wrongKey.checkHealth()
    assert.equal(health.ok, false)
    assert.match(health.ok ? '' : health.reason, /401/)
    assert.doesNotMatch(health.ok ? '' : health.reason, /wrong/) // the credential never appears
  })

  it('an operation error mid-provision deletes the half-made VM and fails typed', async () => {
    const grant = makeGrant({ region: 'europe-west4' })
    fake.faults.failNextInsert = { code: 'QUOTA_EXCEEDED', message: "Quota 'CPUS' exceeded. Limit: 0.0 in region europe-west4." }
    await assert.rejects(gcp.provision(grant, {}), (err: unknown) => {
      assert.ok(err instanceof BackendError)
      assert.equal(err.code, 'BACKEND_PROVISION_FAILED')
      assert.match(err.message, /QUOTA_EXCEEDED/)
      return true
    })
    assert.equal(fake.instances.size, 0)
    assert.ok(fake.requestsTo('DELETE', new RegExp(`/instances/${instanceName(grant.id)}$`)).length > 0)
    assert.equal(gcp.canSatisfy(grant).ok, true) // the claim was released
  })

  it('a stockout in one zone moves on to the next zone of the region', async () => {
    const grant = makeGrant()
    fake.faults.failNextInsert = { code: 'ZONE_RESOURCE_POOL_EXHAUSTED', message: 'The zone does not have enough resources available.' }
    const instance = await gcp.provision(grant, {})
    assert.equal(instance.handle, `us-central1-b/${instanceName(grant.id)}`)
    assert.equal(fake.instance('us-central1-a', instanceName(grant.id)), undefined)
    await gcp.terminate(instance)
    assert.equal(fake.instances.size, 0)
  })

  it('a stalled operation hits the deadline: BACKEND_TIMEOUT and nothing left behind', async () => {
    const impatient = make({ provisionTimeoutMs: 1500 })
    const grant = makeGrant({ region: 'europe-west4' })
    fake.faults.stallInserts = true
    try {
      const started = Date.now()
      await assert.rejects(impatient.provision(grant, {}), (err: unknown) => {
        assert.ok(err instanceof BackendError)
        assert.equal(err.code, 'BACKEND_TIMEOUT')
        assert.match(err.message, /1500 ms/)
        return true
      })
      assert.ok(Date.now() - started < 6000)
      // It stalled mid-provision: the insert landed and its operation was waited on, never DONE.
      const name = instanceName(grant.id)
      const insertAt = fake.requests.findIndex((r) => r.method === 'POST' && r.body?.name === name)
      assert.ok(insertAt >= 0)
      assert.ok(fake.requests.slice(insertAt).some((r) => r.method === 'POST' && r.path.endsWith('/wait')))
      assert.ok(fake.requests.slice(insertAt).some((r) => r.method === 'DELETE' && r.path.endsWith(`/instances/${name}`)))
    } finally {
      fake.faults.stallInserts = false
    }
    assert.equal(fake.instances.size, 0)
  })

  it('an abort mid-provision: BACKEND_ABORTED and nothing left behind', async () => {
    const grant = makeGrant()
    fake.faults.stallInserts = true
    const controller = new AbortController()
    try {
      const pending = gcp.provision(grant, { signal: controller.signal })
      // Abort once the insert has landed (polled to a deadline, not slept).
      const deadline = Date.now() + 3000
      while (fake.instance('us-central1-a', instanceName(grant.id)) === undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
      assert.ok(fake.instance('us-central1-a', instanceName(grant.id)))
      controller.abort()
      await assert.rejects(pending, (err: unknown) => err instanceof BackendError && err.code === 'BACKEND_ABORTED')
    } finally {
      fake.faults.stallInserts = false
    }
    assert.equal(fake.instances.size, 0)
  })

  it('terminate retries a failing delete with back-off', async () => {
    const grant = makeGrant()
    const instance = await gcp.provision(grant, {})
    const before = fake.requestsTo('DELETE', /\/instances\//).length
    fake.faults.failDeletes = 2
    await gcp.terminate(instance)
    assert.equal(fake.requestsTo('DELETE', /\/instances\//).length - before, 3)
    assert.equal(fake.instances.size, 0)
  })

  it('watchUntilExit resolves once the VM is deleted', async () => {
    const instance = await gcp.provision(makeGrant(), {})
    const exited = gcp.watchUntilExit(instance, Math.floor(Date.now() / 1000) + 3600)
    await gcp.terminate(instance)
    await exited
    assert.equal(fake.instances.size, 0)
  })
})
