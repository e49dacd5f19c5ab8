import '../../src/node/polyfills.js'
import { describe, it, after, before } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CmeshNode } from '../../src/node/node.js'
import { resolveConfig } from '../../src/node/config.js'
import { quietLog, testNetwork, waitFor } from '../helpers/mesh.js'
import { runCli } from '../helpers/cli.js'

describe('local API and the CLI commands that read the running node', () => {
  let dir: string
  let node: CmeshNode
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cmesh-api-'))
    node = new CmeshNode({ config: resolveConfig({ network: testNetwork(), dataDir: join(dir, '.cmesh'), dht: false }), log: quietLog })
    await node.start()
  })
  after(async () => {
    await node.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('writes api.json 0600 and refuses requests without the token or with a foreign Host', async () => {
    const apiFile = join(dir, '.cmesh', 'api.json')
    assert.equal((await stat(apiFile)).mode & 0o777, 0o600)
    const { url, token } = JSON.parse(await readFile(apiFile, 'utf8'))
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.equal((await fetch(url + '/v1/status')).status, 401)
    assert.equal((await fetch(url + '/v1/status', { headers: { authorization: 'Bearer ' + 'x'.repeat(64) } })).status, 401)
    const ok = await fetch(url + '/v1/status', { headers: { authorization: `Bearer ${token}` } })
    assert.equal(ok.status, 200)
    assert.equal(((await ok.json()) as { did: string }).did, node.identity.did)
    // DNS rebinding: a browser sends the attacker's host name.
    const { request } = await import('node:http')
    const status = await new Promise<number>((resolve, reject) => {
      request(url + '/v1/status', { headers: { host: 'evil.example:80', authorization: `Bearer ${token}` } }, (res) => { res.resume(); resolve(res.statusCode ?? 0) }).on('error', reject).end()
    })
    assert.equal(status, 421)
  })

  it('cmesh cards, audit and status read the running node', async () => {
    const cards = await runCli(['cards', '--json'], dir)
    assert.equal(cards.code, 0, cards.stderr)
    const list = JSON.parse(cards.stdout)
    assert.equal(list.length, 1)
    assert.equal(list[0].card.providerId, node.identity.did)

    const audit = await runCli(['audit', '--json', '--threshold', '1', '--committee', '1'], dir)
    assert.equal(audit.code, 0, audit.stderr)
    assert.equal(JSON.parse(audit.stdout).committee.missing, 0)

    const status = await runCli(['status'], dir)
    assert.equal(status.code, 0, status.stderr)
    assert.equal(JSON.parse(status.stdout).peerId, node.libp2p.peerId.toString())
  })

  it('streams node events (collection changes, RFPs) as server-sent events', async () => {
    const { url, token } = JSON.parse(await readFile(join(dir, '.cmesh', 'api.json'), 'utf8'))
    // The node's own services listen too (the contract lifecycle): only the stream's listener comes and goes.
    const own = node.events.listenerCount
    const abort = new AbortController()
    const res = await fetch(url + '/v1/events', { headers: { authorization: `Bearer ${token}` }, signal: abort.signal })
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/)
    let text = ''
    const reading = (async () => {
      const decoder = new TextDecoder()
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) text += decoder.decode(chunk, { stream: true })
    })().catch(() => {})
    await waitFor('the event stream is subscribed', () => node.events.listenerCount > own)
    const card = await node.services.ownCard.publish()
    await waitFor('a collection event for the new card', () => text.includes(card.cid.toString()))
    const event = text.split('\n\n').find((e) => e.includes(card.cid.toString())) ?? ''
    assert.match(event, /^id: \d+$/m)
    assert.match(event, /^event: collection$/m)
    assert.deepEqual(JSON.parse(/^data: (.*)$/m.exec(event)?.[1] ?? '{}'), { kind: 'replaced', providerId: node.identity.did, cid: card.cid.toString() })
    abort.abort()
    await reading
    await waitFor('the subscription ended with the client', () => node.events.listenerCount === own)
  })

  it('says plainly when no node is running', async () => {
    const r = await runCli(['cards', '--data', join(dir, 'nowhere')], dir)
    assert.equal(r.code, 1)
    assert.match(r.stderr, /NODE_NOT_RUNNING/)
  })
})

describe('cmesh start on embedded defaults', () => {
  it('runs with no config, says what it did, and stops cleanly on SIGINT', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'cmesh-start-'))
    const bin = fileURLToPath(new URL('../../src/node/bin.ts', import.meta.url))
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), bin, 'start', '--network', testNetwork()], { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (d) => { out += d })
    child.stderr.resume()
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
    try {
      await waitFor('startup banner', () => out.includes('(Ctrl-C stops)'), 30_000)
      assert.match(out, /embedded defaults/)
      assert.match(out, /peer id:\s+12D3KooW/)
      assert.match(out, /listen:\s+\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//)
      assert.equal((await stat(join(cwd, '.cmesh', 'node.key'))).mode & 0o777, 0o600)
      child.kill('SIGINT')
      assert.equal(await exited, 0)
    } finally {
      child.kill('SIGKILL')
      await rm(cwd, { recursive: true, force: true })
    }
  })
})
