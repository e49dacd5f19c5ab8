/** A provider node with a configured cloud backend (AWS against moto_server): start-up check, card, orphans. */
import '../../src/node/polyfills.js'
import { describe, it, after } from 'node:test'
import assert from 'node:assert/strict'
import { EC2Client, RunInstancesCommand, DescribeInstancesCommand } from '@aws-sdk/client-ec2'
import { TestMesh, waitFor } from '../helpers/mesh.js'
import { FAKE_CREDENTIALS, requireMoto, startMoto, type Moto } from '../helpers/moto.js'
import { GRANT_TAG, BACKEND_TAG } from '../../src/backends/aws-ec2.js'
import { runCli } from '../helpers/cli.js'
import { dirname } from 'node:path'

const REGION = 'eu-west-1'
const IMAGE = 'ami-760aaa0f'

describe('a provider node with an AWS backend', () => {
  const mesh = new TestMesh()
  let moto: Moto | undefined
  after(async () => {
    await mesh.cleanup()
    await moto?.stop()
  })

  it('checks it at start, offers it on the card, ends orphaned instances, and leaves out a backend that fails its check', async (t) => {
    if (!requireMoto(t)) return
    moto = await startMoto()
    const ec2 = new EC2Client({ region: REGION, endpoint: moto.endpoint, credentials: FAKE_CREDENTIALS })
    // A machine left by a crash: tagged for this backend, for a grant the node has no contract for.
    const run = await ec2.send(new RunInstancesCommand({ ImageId: IMAGE, InstanceType: 't3.micro', MinCount: 1, MaxCount: 1, TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: GRANT_TAG, Value: 'grant-from-before-a-crash' }, { Key: BACKEND_TAG, Value: 'aws' }] }] }))
    const orphan = run.Instances?.[0]?.InstanceId as string

    const options = { regions: [{ region: REGION, imageId: IMAGE }], maxCpu: 16, maxMemoryMiB: 65536, maxDiskGiB: 500, endpoint: moto.endpoint, credentials: FAKE_CREDENTIALS }
    const node = await mesh.node({
      roles: ['provider'],
      backends: [
        { kind: 'aws-ec2', name: 'aws', rates: [{ cpuHourWei: '100', memoryGiBHourWei: '10', diskGiBHourWei: '1' }], options },
        { kind: 'aws-ec2', name: 'aws-down', rates: [{ cpuHourWei: '1', memoryGiBHourWei: '1', diskGiBHourWei: '1' }], options: { ...options, endpoint: 'http://127.0.0.1:9' } }
      ]
    }, { api: true })

    const card = node.services.ownCard.current?.value
    assert.deepEqual(card?.backends.map((b) => [b.name, b.kind]), [['local', 'local'], ['aws', 'aws-ec2']], 'the failing backend is left out of the card')
    assert.ok(card?.rates.some((r) => r.backend === 'aws' && r.cpuHourWei === 100n))
    const health = node.services.fleet.health.map((h) => [h.name, h.ok])
    assert.deepEqual(health, [['local', true], ['aws', true], ['aws-down', false]])

    const state = (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [orphan] }))).Reservations?.[0]?.Instances?.[0]?.State?.Name
    assert.ok(['shutting-down', 'terminated'].includes(state ?? ''), `the orphan was ended (${state ?? 'unknown'})`)

    const listed = await runCli(['backends', '--data', node.config.dataDir, '--json'], dirname(node.config.dataDir))
    assert.equal(listed.code, 0, listed.stderr)
    const rows = JSON.parse(listed.stdout)
    assert.equal(rows.find((r: any) => r.name === 'aws').capabilities.maxCpu, 16)
    assert.match(rows.find((r: any) => r.name === 'aws-down').reason, /./)

    // The left-out backend recovers (here: its endpoint is pointed at moto) and joins the card.
    const down = node.config.backends.find((b) => b.name === 'aws-down') as { options: Record<string, unknown> }
    down.options.endpoint = moto.endpoint
    const before = node.services.ownCard.current?.cid.toString()
    await node.services.fleet.recheck()
    await waitFor('the card republished with the recovered backend', () => node.services.ownCard.current?.cid.toString() !== before && node.services.ownCard.current?.value.backends.some((b) => b.name === 'aws-down') === true)
    assert.deepEqual(node.services.fleet.health.map((h) => [h.name, h.ok]), [['local', true], ['aws', true], ['aws-down', true]])
  })
})
