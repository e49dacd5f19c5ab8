import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, stat, writeFile, readFile, chmod } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli, spawnCli } from '../helpers/cli.js'

const draft = {
  schemesSupported: ['vm.ssh'],
  capacityPerSecond: 5,
  feePerPartialWei: '1200',
  backends: [{ name: 'local', kind: 'local', regions: ['local'], maxCpu: 2, maxMemoryMiB: 2048, maxDiskGiB: 10 }],
  rates: [{ backend: 'local', cpuHourWei: '10', memoryGiBHourWei: '1', diskGiBHourWei: '0' }]
}

describe('cmesh CLI', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'cmesh-cli-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('keygen writes a 0600 libp2p key and prints DID and peer id; refuses to overwrite', async () => {
    const r = await runCli(['keygen', '--json'], dir)
    assert.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout)
    assert.match(out.did, /^did:key:z6Mk/)
    assert.match(out.peerId, /^12D3KooW/)
    assert.equal((await stat(join(dir, '.cmesh', 'node.key'))).mode & 0o777, 0o600)
    const again = await runCli(['keygen'], dir)
    assert.equal(again.code, 1)
    assert.match(again.stderr, /KEY_FILE_EXISTS/)
  })

  it('card sign → show → audit, with JSON output', async () => {
    await writeFile(join(dir, 'card.json'), JSON.stringify(draft))
    const signed = await runCli(['card', 'sign', 'card.json', '--json'], dir)
    assert.equal(signed.code, 0, signed.stderr)
    const { file, uri, cid } = JSON.parse(signed.stdout)
    assert.equal(file, 'card.card.cbor')
    assert.match(uri, /^at:\/\/did:key:z6Mk[^/]+\/org\.computemesh\.provider\.card\/[2-7a-z]{13}$/)

    const shown = await runCli(['card', 'show', file], dir)
    assert.equal(shown.code, 0, shown.stderr)
    assert.equal(JSON.parse(shown.stdout).cid, cid)

    const audit = await runCli(['audit', file, '--threshold', '1', '--committee', '2', '--burst', '10', '--json'], dir)
    assert.equal(audit.code, 0, audit.stderr)
    const report = JSON.parse(audit.stdout)
    assert.equal(report.shown, 1)
    assert.equal(report.committee.missing, 1)
    assert.equal(report.committee.forecastWei, '1200')
    assert.equal(report.capacity.shortfall, 5)

    const text = await runCli(['audit', file], dir)
    assert.match(text.stdout, /Software\s+1\s+1/)
  })

  it('reports a tampered record on stderr and leaves it out', async () => {
    const bytes = await readFile(join(dir, 'card.card.cbor'))
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 3) ^ 1, bytes.length - 3)
    await writeFile(join(dir, 'tampered.cbor'), bytes)
    const r = await runCli(['audit', 'tampered.cbor', '--json'], dir)
    assert.equal(r.code, 0)
    assert.match(r.stderr, /refused tampered\.cbor#0: RECORD_BAD_SIGNATURE/)
    assert.equal(JSON.parse(r.stdout).shown, 0)
    const show = await runCli(['card', 'show', 'tampered.cbor'], dir)
    assert.equal(show.code, 1)
  })

  it('usage errors exit 2; bad drafts and insecure keys exit 1 with a code', async () => {
    const floor = await runCli(['audit', 'x', '--floor', 'Bogus'], dir)
    assert.equal(floor.code, 2)
    assert.match(floor.stderr, /Allowed choices/)
    await writeFile(join(dir, 'bad.json'), JSON.stringify({ ...draft, feePerPartialWei: '-1' }))
    const bad = await runCli(['card', 'sign', 'bad.json'], dir)
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /INPUT_INVALID: card draft: feePerPartialWei/)
    await chmod(join(dir, '.cmesh', 'node.key'), 0o644)
    const insecure = await runCli(['card', 'sign', 'card.json'], dir)
    assert.equal(insecure.code, 1)
    assert.match(insecure.stderr, /KEY_FILE_INSECURE/)
    const missing = await runCli(['audit', 'nope.cbor'], dir)
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /INPUT_INVALID: cannot read nope\.cbor: ENOENT/)
  })

  it('start: bad --api-port and addresses are usage errors (exit 2); a config bootstrap without /p2p/ is CONFIG_INVALID', async () => {
    for (const args of [['--api-port', 'abc'], ['--api-port', '70000'], ['--listen', 'garbage'], ['--bootstrap', '/ip4/127.0.0.1/tcp/4001']]) {
      const r = await runCli(['start', '--data', join(dir, 'never'), ...args], dir)
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /error: option/)
    }
    await writeFile(join(dir, 'boot.json'), JSON.stringify({ dataDir: join(dir, 'never'), bootstrap: ['/ip4/127.0.0.1/tcp/4001'] }))
    const r = await runCli(['start', '--config', 'boot.json'], dir)
    assert.equal(r.code, 1)
    assert.match(r.stderr, /^cmesh: CONFIG_INVALID: config: bootstrap\.0: .*needs \/p2p\//m)
    await writeFile(join(dir, 'expiry.json'), JSON.stringify({ dataDir: join(dir, 'never'), card: { ...draft, expiresAtUnixSecs: 1 } }))
    const fixed = await runCli(['start', '--config', 'expiry.json'], dir)
    assert.equal(fixed.code, 1)
    assert.match(fixed.stderr, /CONFIG_INVALID: config: card\.expiresAtUnixSecs: set by the node/)
    await assert.rejects(stat(join(dir, 'never')), 'nothing was created for a start that could not begin')
  })

  it('the binary itself: a spawned keygen (smoke test)', async () => {
    const r = await spawnCli(['keygen', '--data', 'spawned', '--json'], dir)
    assert.equal(r.code, 0, r.stderr)
    assert.match(JSON.parse(r.stdout).did, /^did:key:z6Mk/)
  })
})
