/**
 * Who gets what from the API once the dashboard is on it: one-time login links, the session
 * cookie's flags, bearer-only routes, writes without Origin, expired sessions, and the page and its
 * files served only to a credential, under the Content-Security-Policy.
 */
import '../../src/node/polyfills.js'
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ApiServer, type ApiRoute } from '../../src/node/api.js'
import { DashboardSessions, SESSION_COOKIE, SESSION_IDLE_SECS, LOGIN_TOKEN_TTL_SECS, sessionIdFromCookie } from '../../src/node/dashboard-sessions.js'
import { dashboardAssetRoutes, dashboardFiles, DASHBOARD_CSP } from '../../src/node/dashboard-assets.js'
import { createLogger } from '../../src/node/logger.js'

describe('dashboard access', () => {
  let dir: string
  let server: ApiServer
  let url: string
  let token: string
  let nowSecs = 1_800_000_000
  const sessions = new DashboardSessions(() => nowSecs)

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cmesh-dash-'))
    const routes: ApiRoute[] = [
      ...dashboardAssetRoutes(),
      {
        method: 'GET',
        path: '/login',
        access: 'public',
        handle: (req) => {
          const id = sessions.login(req.query.get('token') ?? '')
          return id === undefined
            ? { status: 401, text: 'no', contentType: 'text/plain' }
            : { status: 303, text: '', contentType: 'text/plain', headers: { location: '/', 'set-cookie': `${SESSION_COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/` } }
        }
      },
      { method: 'GET', path: '/v1/status', handle: () => ({ json: { ok: true } }) },
      { method: 'POST', path: '/v1/things', handle: () => ({ status: 201, json: { made: true } }) },
      { method: 'GET', path: '/v1/secret', access: 'bearer', handle: () => ({ json: { key: 'k' } }) }
    ]
    server = new ApiServer({ host: '127.0.0.1', port: 0, dataDir: dir, routes, sessions, log: createLogger('test', 'silent') })
    const endpoint = await server.start()
    url = endpoint.url
    token = endpoint.token
  })

  after(async () => {
    await server.stop()
    await rm(dir, { recursive: true, force: true })
  })

  async function login (): Promise<string> {
    const res = await fetch(`${url}/login?token=${sessions.issueLoginToken()}`, { redirect: 'manual' })
    assert.equal(res.status, 303)
    assert.equal(res.headers.get('location'), '/')
    const cookie = res.headers.get('set-cookie') ?? ''
    assert.match(cookie, /HttpOnly/)
    assert.match(cookie, /SameSite=Strict/)
    const id = sessionIdFromCookie(cookie.split(';')[0])
    assert.ok(id !== undefined)
    return `${SESSION_COOKIE}=${id}`
  }

  it('serves nothing without a credential: the page, its modules, the vendored libraries and the API all answer 401', async () => {
    const paths = ['/', '/ui/app.js', '/ui/style.css', '/ui/vendor/htm-preact.mjs', '/ui/vendor/uplot.mjs', '/v1/status', '/ui/no-such-file.js', '/anything']
    for (const path of paths) {
      const res = await fetch(url + path)
      assert.equal(res.status, 401, path)
      const body = await res.json() as { error: string }
      assert.equal(body.error, 'UNAUTHORIZED', path)
    }
  })

  it('a login link works once; the session then gets the page under the CSP, and the API', async () => {
    const link = `${url}/login?token=${sessions.issueLoginToken()}`
    const first = await fetch(link, { redirect: 'manual' })
    assert.equal(first.status, 303)
    const again = await fetch(link, { redirect: 'manual' })
    assert.equal(again.status, 401, 'the same link a second time opens nothing')
    const cookie = await login()
    const page = await fetch(`${url}/`, { headers: { cookie } })
    assert.equal(page.status, 200)
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/)
    assert.equal(page.headers.get('content-security-policy'), DASHBOARD_CSP)
    assert.doesNotMatch(DASHBOARD_CSP, /unsafe-inline|unsafe-eval/)
    const html = await page.text()
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i, 'no inline script in the page')
    assert.doesNotMatch(html, /\son[a-z]+=/i, 'no inline event handler')
    assert.doesNotMatch(html, /https?:\/\//i, 'no external URL')
    for (const path of dashboardFiles().keys()) {
      const res = await fetch(url + path, { headers: { cookie } })
      assert.equal(res.status, 200, path)
    }
    assert.equal((await fetch(`${url}/v1/status`, { headers: { cookie } })).status, 200)
  })

  it('a session cannot read a bearer-only route; a write needs the page\'s Origin; the bearer token still works for everything', async () => {
    const cookie = await login()
    const secret = await fetch(`${url}/v1/secret`, { headers: { cookie } })
    assert.equal(secret.status, 403)
    assert.equal((await secret.json() as { error: string }).error, 'BEARER_REQUIRED')
    const noOrigin = await fetch(`${url}/v1/things`, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: '{}' })
    assert.equal(noOrigin.status, 403)
    const fromPage = await fetch(`${url}/v1/things`, { method: 'POST', headers: { cookie, origin: url, 'content-type': 'application/json' }, body: '{}' })
    assert.equal(fromPage.status, 201)
    const otherSite = await fetch(`${url}/v1/things`, { method: 'POST', headers: { cookie, origin: 'http://evil.example', 'content-type': 'application/json' }, body: '{}' })
    assert.equal(otherSite.status, 403)
    for (const path of ['/v1/secret', '/v1/status', '/']) {
      assert.equal((await fetch(url + path, { headers: { authorization: `Bearer ${token}` } })).status, 200, path)
    }
  })

  it('a session unused past its idle time and a link past its lifetime are refused; a forged cookie is nothing', async () => {
    const cookie = await login()
    const staleLink = `${url}/login?token=${sessions.issueLoginToken()}`
    nowSecs += Math.max(SESSION_IDLE_SECS, LOGIN_TOKEN_TTL_SECS) + 1
    assert.equal((await fetch(`${url}/v1/status`, { headers: { cookie } })).status, 401)
    assert.equal((await fetch(staleLink, { redirect: 'manual' })).status, 401)
    assert.equal((await fetch(`${url}/v1/status`, { headers: { cookie: `${SESSION_COOKIE}=${'A'.repeat(43)}` } })).status, 401)
  })
})
