import '../../src/node/polyfills.js'
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { request, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ApiError, ApiServer, apiGet, apiRequest, type ApiEvent, type ApiEventSource, type ApiRoute } from '../../src/node/api.js'
import { RecordError } from '../../src/market/errors.js'
import { createLogger } from '../../src/node/logger.js'

class MemoryEvents implements ApiEventSource {
  readonly listeners = new Set<(event: ApiEvent) => void>()
  subscribe (listener: (event: ApiEvent) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  emit (event: ApiEvent): void {
    for (const listener of [...this.listeners]) listener(event)
  }
}

async function waitFor (what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

async function within<T> (what: string, promise: Promise<T>, timeoutMs = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const deadline = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), timeoutMs) })
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}

interface Answer { status: number, headers: IncomingHttpHeaders, text: string, json: any }

/** Routes that echo what the server handed them, and handlers that fail in each way. */
function fakeRoutes (waits: { aborted: number, started: number }): ApiRoute[] {
  return [
    { method: 'GET', path: '/v1/things/:id', handle: (req) => ({ json: { id: req.params.id, q: req.query.get('q'), path: req.path } }) },
    { method: 'GET', path: '/v1/things/special', handle: () => ({ json: { special: true } }) },
    { method: 'DELETE', path: '/v1/things/:id', handle: (req) => ({ json: { deleted: req.params.id, body: req.body ?? null } }) },
    { method: 'POST', path: '/v1/things', handle: (req) => ({ status: 201, json: { got: req.body ?? null } }) },
    { method: 'GET', path: '/v1/conflict', handle: () => { throw new ApiError('CONFLICT', 'thing exists', { status: 409 }) } },
    { method: 'GET', path: '/v1/record', handle: () => { throw new RecordError('RECORD_MALFORMED', 'bad record') } },
    { method: 'GET', path: '/v1/boom', handle: () => { throw new Error('secret internals') } },
    { method: 'GET', path: '/v1/values', handle: () => ({ json: { big: 2n ** 70n, bytes: new Uint8Array([1, 2, 255]), buf: Buffer.from([0xab]) } }) },
    { method: 'GET', path: '/v1/cbor', handle: () => ({ cbor: new Uint8Array([0xa0]) }) },
    {
      method: 'GET',
      path: '/v1/wait',
      handle: async (req) => {
        waits.started++
        await new Promise<void>((resolve) => req.signal.addEventListener('abort', () => resolve(), { once: true }))
        waits.aborted++
        return { json: null }
      }
    }
  ]
}

describe('ApiServer', () => {
  let dir: string
  let server: ApiServer
  let url: string
  let token: string
  let port: number
  const events = new MemoryEvents()
  const waits = { aborted: 0, started: 0 }

  /** Raw HTTP, so Host, Origin and Authorization are exactly what the test says (null drops one). */
  function send (method: string, path: string, opts: { headers?: Record<string, string | null>, body?: string } = {}): Promise<Answer> {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` }
    // Node sends DELETE and GET bodies only with an explicit length.
    if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body))
    for (const [k, v] of Object.entries(opts.headers ?? {})) {
      if (v === null) delete headers[k]
      else headers[k] = v
    }
    return new Promise((resolve, reject) => {
      const req = request(url + path, { method, headers, agent: false }, (res) => {
        let text = ''
        res.setEncoding('utf8').on('data', (d) => { text += d }).on('end', () => {
          let json: any
          try { json = JSON.parse(text) } catch {}
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json })
        })
      })
      req.on('error', reject)
      req.end(opts.body)
    })
  }

  function openStream (headers: Record<string, string> = {}): Promise<{ req: ClientRequest, res: IncomingMessage }> {
    return new Promise((resolve, reject) => {
      const req = request(url + '/v1/events', { headers: { authorization: `Bearer ${token}`, ...headers }, agent: false }, (res) => resolve({ req, res }))
      req.on('error', reject)
      req.end()
    })
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cmesh-api-server-'))
    server = new ApiServer({ host: '127.0.0.1', port: 0, dataDir: dir, routes: fakeRoutes(waits), events, log: createLogger('test', 'silent') })
    ;({ url, token } = await server.start())
    port = Number(new URL(url).port)
  })
  after(async () => {
    await server.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('writes api.json 0600 with the url and token', async () => {
    assert.equal((await stat(join(dir, 'api.json'))).mode & 0o777, 0o600)
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'api.json'), 'utf8')), { url, token })
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.equal(server.url, url)
  })

  it('matches path parameters (decoded), the query, and prefers a literal segment', async () => {
    const r = await send('GET', '/v1/things/a%20b%2Fc?q=1')
    assert.equal(r.status, 200)
    assert.deepEqual(r.json, { id: 'a b/c', q: '1', path: '/v1/things/a%20b%2Fc' })
    assert.deepEqual((await send('GET', '/v1/things/special')).json, { special: true })
    const cbor = await send('GET', '/v1/cbor')
    assert.equal(cbor.headers['content-type'], 'application/cbor')
  })

  it('tells an unknown path (404) from a wrong method (405 with Allow), and refuses bad encoding (400)', async () => {
    const missing = await send('GET', '/v1/nothing')
    assert.equal(missing.status, 404)
    assert.equal(missing.json.error, 'NOT_FOUND')
    assert.equal((await send('GET', '/v1/things/')).status, 404, 'a parameter never matches an empty segment')
    const wrong = await send('PUT', '/v1/things/x', { headers: { 'content-type': 'application/json' }, body: '{}' })
    assert.equal(wrong.status, 405)
    assert.equal(wrong.json.error, 'METHOD_NOT_ALLOWED')
    assert.equal(wrong.headers.allow, 'GET, DELETE')
    assert.equal((await send('POST', '/v1/events')).headers.allow, 'GET')
    const bad = await send('GET', '/v1/things/%E0%A4%A')
    assert.equal(bad.status, 400)
    assert.equal(bad.json.error, 'BAD_PATH')
  })

  it('accepts exactly `Bearer <token>` and never echoes the token', async () => {
    for (const authorization of [null, `Bearer ${'0'.repeat(token.length)}`, `Basic ${token}`, token, `bearer ${token}`, `Bearer  ${token}`, 'Bearer ']) {
      const r = await send('GET', '/v1/things/x', { headers: { authorization } })
      assert.equal(r.status, 401, `authorization ${JSON.stringify(authorization?.replace(token, '<token>'))}`)
      assert.equal(r.json.error, 'UNAUTHORIZED')
      assert.ok(!r.text.includes(token))
    }
    assert.equal((await send('GET', '/v1/things/x')).status, 200)
  })

  it('refuses a foreign Host (421) and a foreign Origin (403), allows its own origin', async () => {
    const host = await send('GET', '/v1/things/x', { headers: { host: 'evil.example:80' } })
    assert.equal(host.status, 421)
    assert.equal(host.json.error, 'BAD_HOST')
    for (const origin of ['http://evil.example', 'null', `https://127.0.0.1:${port}`, `http://127.0.0.1:${port + 1}`]) {
      const r = await send('GET', '/v1/things/x', { headers: { origin } })
      assert.equal(r.status, 403, origin)
      assert.equal(r.json.error, 'BAD_ORIGIN')
    }
    for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`, `http://[::1]:${port}`]) {
      assert.equal((await send('POST', '/v1/things', { headers: { origin, 'content-type': 'application/json' }, body: '{}' })).status, 201, origin)
    }
  })

  it('takes JSON bodies only: 415 for other types, 400 for invalid JSON, GET bodies ignored', async () => {
    const ok = await send('POST', '/v1/things', { headers: { 'content-type': 'application/json; charset=UTF-8' }, body: '{"a":[1,"b"]}' })
    assert.equal(ok.status, 201)
    assert.deepEqual(ok.json, { got: { a: [1, 'b'] } })
    assert.deepEqual((await send('POST', '/v1/things')).json, { got: null }, 'no body at all')
    const del = await send('DELETE', '/v1/things/7', { headers: { 'content-type': 'application/json' }, body: '{"why":"done"}' })
    assert.deepEqual(del.json, { deleted: '7', body: { why: 'done' } })
    for (const type of [null, 'text/plain', 'application/json; charset=latin1', 'application/jsonx', 'application/json;']) {
      const r = await send('POST', '/v1/things', { headers: { 'content-type': type }, body: '{}' })
      assert.equal(r.status, 415, String(type))
      assert.equal(r.json.error, 'UNSUPPORTED_MEDIA_TYPE')
    }
    const invalid = await send('POST', '/v1/things', { headers: { 'content-type': 'application/json' }, body: '{"a":' })
    assert.equal(invalid.status, 400)
    assert.equal(invalid.json.error, 'BODY_INVALID')
    assert.equal((await send('GET', '/v1/things/x', { headers: { 'content-type': 'text/plain' }, body: 'ignored' })).status, 200)
  })

  it('refuses a body over the cap by content-length before reading it (413)', async () => {
    const answer = await within('413 by content-length', new Promise<{ status: number, connection: string | undefined }>((resolve, reject) => {
      const req = request(url + '/v1/things', {
        method: 'POST',
        agent: false,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': String(64 * 1024 + 1) }
      }, (res) => {
        res.resume()
        resolve({ status: res.statusCode ?? 0, connection: res.headers.connection })
        req.destroy()
      })
      req.on('error', (err) => { if (!req.destroyed) reject(err) })
      req.flushHeaders() // headers only: the server must answer without any body byte
    }))
    assert.equal(answer.status, 413)
    assert.equal(answer.connection, 'close')
  })

  it('stops reading a chunked body once it passes the cap (413)', async () => {
    let written = 0
    const answer = await within('413 by streamed bytes', new Promise<{ status: number, json: any }>((resolve, reject) => {
      let answered = false
      const req = request(url + '/v1/things', { method: 'POST', agent: false, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }, (res) => {
        answered = true
        let text = ''
        res.setEncoding('utf8').on('data', (d) => { text += d }).on('end', () => { resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }); req.destroy() })
      })
      req.on('error', (err) => { if (!answered) reject(err) })
      const chunk = '[' + ' '.repeat(4094) + ','
      // One chunk at a time until the server answers; it must answer soon after 64 KiB.
      const pump = (): void => {
        if (answered || req.destroyed) return
        if (written > 1024 * 1024) return reject(new Error('server kept reading past the cap'))
        written += chunk.length
        req.write(chunk, () => setImmediate(pump))
      }
      pump()
    }))
    assert.equal(answer.status, 413)
    assert.equal(answer.json.error, 'BODY_TOO_LARGE')
    assert.equal((await send('GET', '/v1/things/x')).status, 200, 'the server is fine afterwards')
  })

  it('maps handler errors: ApiError as given, CmeshError to 400, anything else to a bare 500', async () => {
    const conflict = await send('GET', '/v1/conflict')
    assert.equal(conflict.status, 409)
    assert.deepEqual(conflict.json, { error: 'CONFLICT', message: 'thing exists' })
    const record = await send('GET', '/v1/record')
    assert.equal(record.status, 400)
    assert.deepEqual(record.json, { error: 'RECORD_MALFORMED', message: 'bad record' })
    const boom = await send('GET', '/v1/boom')
    assert.equal(boom.status, 500)
    assert.deepEqual(boom.json, { error: 'INTERNAL' })
    assert.ok(!boom.text.includes('secret') && !boom.text.includes('at '))
  })

  it('writes bigint as a decimal string and bytes as hex', async () => {
    const r = await send('GET', '/v1/values')
    assert.equal(r.headers['content-type'], 'application/json')
    assert.deepEqual(r.json, { big: (2n ** 70n).toString(), bytes: '0102ff', buf: 'ab' })
  })

  it('aborts a handler\'s signal when its client goes away', async () => {
    const before = waits.aborted
    const req = request(url + '/v1/wait', { headers: { authorization: `Bearer ${token}` }, agent: false })
    req.on('error', () => {})
    req.end()
    await waitFor('the handler to start', () => waits.started > before)
    req.destroy()
    await waitFor('the handler to see the abort', () => waits.aborted > before)
  })

  it('apiGet and apiRequest find the node through api.json and raise typed errors', async () => {
    assert.deepEqual(await (await apiGet(dir, '/v1/things/z')).json(), { id: 'z', q: null, path: '/v1/things/z' })
    const posted = await apiRequest(dir, 'POST', '/v1/things', { n: 5n, b: new Uint8Array([16]) })
    assert.equal(posted.status, 201)
    assert.deepEqual(await posted.json(), { got: { n: '5', b: '10' } })
    await assert.rejects(apiGet(dir, '/v1/conflict'), (err: any) => err.code === 'NODE_API_ERROR' && err.meta.status === 409 && err.meta.code === 'CONFLICT')
    await assert.rejects(apiGet(join(dir, 'nowhere'), '/v1/things/z'), { code: 'NODE_NOT_RUNNING' })
  })

  describe('server-sent events', () => {
    it('streams events in order with increasing ids, and unsubscribes when the client goes', async () => {
      const { req, res } = await openStream()
      assert.equal(res.statusCode, 200)
      assert.equal(res.headers['content-type'], 'text/event-stream')
      assert.equal(res.headers['cache-control'], 'no-cache')
      let text = ''
      res.setEncoding('utf8').on('data', (d) => { text += d })
      await waitFor('the subscription', () => events.listeners.size === 1)
      events.emit({ type: 'card', data: { n: 1n, line: 'a\nb' } })
      events.emit({ type: 'rfp', data: [2] })
      const frames = (): string[] => text.split('\n\n').filter((f) => f !== '' && !f.startsWith(':'))
      await waitFor('two events', () => frames().length >= 2)
      assert.deepEqual(frames(), ['id: 1\nevent: card\ndata: {"n":"1","line":"a\\nb"}', 'id: 2\nevent: rfp\ndata: [2]'])
      req.destroy()
      await waitFor('the unsubscribe', () => events.listeners.size === 0)
    })

    it('checks the token and Origin like every route', async () => {
      assert.equal((await openStream({ authorization: 'Bearer nope' })).res.statusCode, 401)
      assert.equal((await openStream({ origin: 'http://evil.example' })).res.statusCode, 403)
      assert.equal(events.listeners.size, 0)
    })

    it('refuses the 33rd concurrent stream with 503', async () => {
      const open = await Promise.all(Array.from({ length: 32 }, async () => await openStream()))
      try {
        assert.ok(open.every(({ res }) => res.statusCode === 200))
        await waitFor('32 subscriptions', () => events.listeners.size === 32)
        const extra = await send('GET', '/v1/events')
        assert.equal(extra.status, 503)
        assert.equal(extra.json.error, 'TOO_MANY_STREAMS')
      } finally {
        for (const { req } of open) req.destroy()
      }
      await waitFor('all unsubscribed', () => events.listeners.size === 0)
    })

    it('cuts off a reader that lets more than 1 MiB pile up', async () => {
      const { req, res } = await openStream()
      res.pause() // reads nothing more: the kernel buffers fill, then the server's
      let closed = false
      res.on('close', () => { closed = true }).on('error', () => {})
      await waitFor('the subscription', () => events.listeners.size === 1)
      const big = 'x'.repeat(256 * 1024)
      for (let i = 0; i < 400 && events.listeners.size > 0; i++) {
        events.emit({ type: 'bulk', data: big })
        await new Promise((resolve) => setImmediate(resolve))
      }
      assert.equal(events.listeners.size, 0, 'the slow reader was disconnected')
      res.resume()
      await waitFor('the client to see the close', () => closed)
      req.destroy()
    })
  })
})

describe('ApiServer.stop', () => {
  it('ends open event streams and in-flight requests promptly and removes api.json', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cmesh-api-stop-'))
    const events = new MemoryEvents()
    const waits = { aborted: 0, started: 0 }
    const server = new ApiServer({ host: '127.0.0.1', port: 0, dataDir: dir, routes: fakeRoutes(waits), events, log: createLogger('test', 'silent') })
    try {
      const { url, token } = await server.start()
      const headers = { authorization: `Bearer ${token}` }
      const stream = await new Promise<IncomingMessage>((resolve, reject) => {
        request(url + '/v1/events', { headers, agent: false }, resolve).on('error', reject).end()
      })
      let ended = false
      stream.on('close', () => { ended = true }).on('error', () => {}).resume()
      const pending = request(url + '/v1/wait', { headers, agent: false }).on('error', () => {})
      pending.end()
      await waitFor('stream and request open', () => events.listeners.size === 1 && waits.started === 1)

      await within('stop()', server.stop(), 5_000)
      assert.equal(server.url, undefined)
      await assert.rejects(stat(join(dir, 'api.json')), { code: 'ENOENT' })
      assert.equal(events.listeners.size, 0)
      assert.equal(waits.aborted, 1)
      await waitFor('the client to see the stream end', () => ended)
    } finally {
      await server.stop()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('binds to loopback only', () => {
    assert.throws(() => new ApiServer({ host: '0.0.0.0', port: 0, dataDir: '/nonexistent', routes: [] }), { code: 'CONFIG_INVALID' })
  })
})
