/**
 * The node's local HTTP API, for the CLI and local tools. Bound to a loopback address only; the
 * credential is the bearer token in `<data>/api.json` (0600), so only this user can call it. Host is
 * checked against DNS rebinding and Origin against cross-site requests from a browser on this
 * machine. Routes are data (`ApiRoute[]`, matched by api-router.ts); `GET /v1/events` streams
 * server-sent events. Bodies are capped, timeouts are set and every request carries a signal, so a
 * slow or vanished client holds nothing for long. Signed records travel as the same snapshot files
 * the CLI reads, so the CLI verifies every record itself rather than trusting us.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { isIPv4, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { unlink } from 'node:fs/promises'
import { CmeshError } from '../market/errors.js'
import { writeFileAtomic } from './atomic-file.js'
import { NodeError } from './errors.js'
import { createLogger, type Logger } from './logger.js'
import { ApiRouter, type HttpMethod } from './api-router.js'
import { ApiError } from './api-error.js'
import { encodeApiJson, readJsonBody } from './api-json.js'
import { EventStreams, type ApiEventSource } from './api-events.js'
import { API_FILE, type ApiEndpoint } from './api-client.js'

export { ApiError, type ApiErrorMeta } from './api-error.js'
export type { ApiEvent, ApiEventSource } from './api-events.js'
export { API_FILE, apiGet, apiRequest, type ApiEndpoint } from './api-client.js'

export const EVENTS_PATH = '/v1/events'
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024

export interface ApiRequest {
  method: string
  /** The request path without the query, as sent (still percent-encoded). */
  path: string
  /** Path parameters, percent-decoded. */
  params: Record<string, string>
  query: URLSearchParams
  /** Parsed JSON, or undefined when the request had no body. */
  body: unknown
  /** Aborted when the client goes away or the server stops. */
  signal: AbortSignal
}

export type ApiResponse =
  | { status?: number, json: unknown }
  | { status?: number, cbor: Uint8Array }
  | { status?: number, text: string, contentType: string, headers?: Record<string, string> }

/**
 * Who may call a route: `bearer` only with the token from api.json (what returns secrets, such as
 * a receipt's key); `bearer-or-session` (the default) also from a dashboard session; `public`
 * anyone who reaches the loopback port with the right Host (the dashboard's login link only).
 */
export type ApiAccess = 'bearer' | 'bearer-or-session' | 'public'

export interface ApiRoute {
  method: HttpMethod
  /** Literal segments and `:name` parameters, e.g. `/v1/contracts/:id`. */
  path: string
  access?: ApiAccess
  handle: (req: ApiRequest) => ApiResponse | Promise<ApiResponse>
}

/** Dashboard sessions (dashboard-sessions.ts): whether a request's Cookie header holds a live one. */
export interface ApiSessions {
  validCookie: (cookieHeader: string | undefined) => boolean
}

export interface ApiServerInit {
  host: string
  port: number
  dataDir: string
  routes: ApiRoute[]
  /** Serves `GET /v1/events` when given. */
  events?: ApiEventSource
  /** Accepts dashboard session cookies besides the bearer token when given. */
  sessions?: ApiSessions
  /** Default DEFAULT_MAX_BODY_BYTES (64 KiB). */
  maxBodyBytes?: number
  log?: Logger
}

const HEADERS_TIMEOUT_MS = 10_000
const REQUEST_TIMEOUT_MS = 30_000
const COMMON_HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' }

export class ApiServer {
  private server: Server | undefined
  private endpoint: ApiEndpoint | undefined
  private port = 0
  private streams: EventStreams | undefined
  private readonly token = randomBytes(32).toString('hex')
  private readonly tokenDigest = sha256(this.token)
  private readonly inflight = new Set<AbortController>()
  private readonly router: ApiRouter<ApiRoute>
  private readonly eventsRoute: ApiRoute | undefined
  private readonly maxBodyBytes: number
  private readonly log: Logger

  constructor (private readonly init: ApiServerInit) {
    if (!isLoopback(init.host)) throw new NodeError('CONFIG_INVALID', `the API binds to a loopback address only, not ${init.host}`)
    this.maxBodyBytes = init.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES
    if (!Number.isSafeInteger(this.maxBodyBytes) || this.maxBodyBytes < 1) throw new NodeError('CONFIG_INVALID', 'maxBodyBytes must be a positive integer')
    this.log = init.log ?? createLogger('cmesh').forComponent('api')
    // A marker route: the router then answers 405 for POST /v1/events like for any other path.
    this.eventsRoute = init.events === undefined ? undefined : { method: 'GET', path: EVENTS_PATH, handle: () => ({ status: 500, json: null }) }
    this.router = new ApiRouter(this.eventsRoute === undefined ? init.routes : [...init.routes, this.eventsRoute])
  }

  get url (): string | undefined {
    return this.endpoint?.url
  }

  async start (): Promise<ApiEndpoint> {
    if (this.endpoint !== undefined) return this.endpoint
    const server = createServer({
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      connectionsCheckingInterval: 5_000
    }, (req, res) => { void this.serve(req, res) })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.init.port, this.init.host, () => { server.off('error', reject); resolve() })
    })
    this.server = server
    this.port = (server.address() as AddressInfo).port
    this.streams = this.init.events === undefined ? undefined : new EventStreams(this.init.events)
    const host = this.init.host.includes(':') ? `[${this.init.host}]` : this.init.host
    const endpoint = { url: `http://${host}:${this.port}`, token: this.token }
    try {
      await writeFileAtomic(join(this.init.dataDir, API_FILE), new TextEncoder().encode(JSON.stringify(endpoint) + '\n'), 0o600)
    } catch (err) {
      await this.stop()
      throw err
    }
    this.endpoint = endpoint
    return endpoint
  }

  /** Ends open event streams and in-flight requests, closes every connection, removes api.json. */
  async stop (): Promise<void> {
    const server = this.server
    this.server = undefined
    this.endpoint = undefined
    if (server === undefined) return
    await unlink(join(this.init.dataDir, API_FILE)).catch(() => {})
    for (const controller of this.inflight) controller.abort()
    this.inflight.clear()
    this.streams?.closeAll()
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeAllConnections()
    await closed
  }

  private async serve (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const controller = new AbortController()
    this.inflight.add(controller)
    res.once('close', () => {
      this.inflight.delete(controller)
      if (!res.writableFinished) controller.abort()
    })
    try {
      this.checkHostAndOrigin(req)
      const url = req.url ?? ''
      const q = url.indexOf('?')
      const path = q < 0 ? url : url.slice(0, q)
      const match = this.router.match(req.method ?? '', path)
      // Who may ask is checked before anything is said about the path: without a credential every
      // path answers 401, so nothing (not even which pages exist) is served to an anonymous caller.
      this.checkCredential(req, match.kind === 'found' ? match.route.access ?? 'bearer-or-session' : 'bearer-or-session')
      if (match.kind === 'bad-path') throw new ApiError('BAD_PATH', 'the path is not valid percent-encoding', { status: 400 })
      if (match.kind === 'not-found') throw new ApiError('NOT_FOUND', 'no such path', { status: 404 })
      if (match.kind === 'method-not-allowed') {
        res.setHeader('allow', match.allow.join(', '))
        throw new ApiError('METHOD_NOT_ALLOWED', `allowed: ${match.allow.join(', ')}`, { status: 405 })
      }
      if (match.route === this.eventsRoute) return this.openStream(res)
      const body = req.method === 'GET' ? undefined : await readJsonBody(req, this.maxBodyBytes)
      const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1))
      const out = await match.route.handle({ method: req.method ?? '', path, params: match.params, query, body, signal: controller.signal })
      this.send(res, out)
    } catch (err) {
      this.fail(req, res, err)
    }
  }

  private checkHostAndOrigin (req: IncomingMessage): void {
    const hosts = [`127.0.0.1:${this.port}`, `localhost:${this.port}`, `[::1]:${this.port}`]
    if (!hosts.includes(req.headers.host ?? '')) throw new ApiError('BAD_HOST', 'the Host header does not name this API', { status: 421 })
    const origin = req.headers.origin
    if (origin !== undefined && !hosts.some((h) => origin === `http://${h}`)) {
      throw new ApiError('BAD_ORIGIN', 'cross-origin requests are refused', { status: 403 })
    }
  }

  private checkCredential (req: IncomingMessage, access: ApiAccess): void {
    if (access === 'public') return
    // Digests of equal length, so the comparison leaks neither the token nor its length.
    const auth = req.headers.authorization
    if (auth !== undefined && auth.startsWith('Bearer ') && timingSafeEqual(sha256(auth.slice('Bearer '.length)), this.tokenDigest)) return
    if (access === 'bearer-or-session' && this.init.sessions?.validCookie(req.headers.cookie) === true) {
      // A browser always sends Origin with a write; one without it is not our page (SameSite=Strict is the other half).
      if (req.method === 'GET' || req.method === 'HEAD' || req.headers.origin !== undefined) return
      throw new ApiError('BAD_ORIGIN', 'a write with a session cookie must carry this API\'s Origin', { status: 403 })
    }
    if (access === 'bearer' && auth === undefined && this.init.sessions?.validCookie(req.headers.cookie) === true) {
      throw new ApiError('BEARER_REQUIRED', 'this path answers only to the bearer token from api.json, not to a dashboard session', { status: 403 })
    }
    throw new ApiError('UNAUTHORIZED', 'send `authorization: Bearer <token>` with the token from api.json, or log in to the dashboard with the link `cmesh dashboard` prints', { status: 401 })
  }

  private openStream (res: ServerResponse): void {
    if (this.streams?.attach(res) !== true) {
      throw new ApiError('TOO_MANY_STREAMS', 'too many open event streams', { status: 503 })
    }
  }

  private send (res: ServerResponse, out: ApiResponse): void {
    if (res.destroyed) return
    const status = out.status ?? 200
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new Error(`handler answered status ${status}`)
    let body: string | Uint8Array
    let type: string
    let extra: Record<string, string> = {}
    if ('json' in out) [body, type] = [encodeApiJson(out.json), 'application/json']
    else if ('cbor' in out) [body, type] = [out.cbor, 'application/cbor']
    else if ('text' in out) [body, type, extra] = [out.text, out.contentType, out.headers ?? {}]
    else throw new Error('handler answered no body')
    res.writeHead(status, { ...COMMON_HEADERS, ...extra, 'content-type': type, 'content-length': Buffer.byteLength(body) }).end(body)
  }

  private fail (req: IncomingMessage, res: ServerResponse, err: unknown): void {
    let status = 500
    let error = 'INTERNAL'
    let message: string | undefined
    if (err instanceof ApiError) {
      const s = err.meta.status
      if (Number.isInteger(s) && s >= 400 && s <= 599) [status, error, message] = [s, err.code, err.message]
    } else if (err instanceof CmeshError) {
      [status, error, message] = [400, err.code, err.message]
    }
    if (message === undefined) this.log.warn(`${req.method} ${req.url?.split('?')[0]} failed: ${(err as Error)?.message ?? String(err)}`)
    if (res.headersSent || res.destroyed) {
      res.destroy()
      return
    }
    // An unread body stays unread: answer and close rather than drain it.
    if (!req.complete) res.setHeader('connection', 'close')
    const body = JSON.stringify(message === undefined ? { error } : { error, message })
    res.writeHead(status, { ...COMMON_HEADERS, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body)
  }
}

function sha256 (text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

function isLoopback (host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIPv4(host) && host.startsWith('127.'))
}
