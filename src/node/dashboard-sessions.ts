/**
 * Who may use the dashboard: one-time login links (what `cmesh start` and `cmesh dashboard` print)
 * exchanged for a browser session held in an HttpOnly, SameSite=Strict cookie. The link's token
 * works once, so a URL left in a terminal's scrollback or a browser's history opens nothing later;
 * the session id never reaches a page's scripts. Both live in memory: a restarted node asks for a
 * new link. Secrets are compared by their SHA-256 digests, so a lookup leaks neither.
 */
import { createHash, randomBytes } from 'node:crypto'

export const SESSION_COOKIE = 'cmesh_session'
/** A login link not used within this long is void. */
export const LOGIN_TOKEN_TTL_SECS = 24 * 3600
/** A session unused for this long ends (the page's event stream keeps an open one in use). */
export const SESSION_IDLE_SECS = 12 * 3600
/** Links and sessions held at once; the oldest goes first. */
export const MAX_LOGIN_TOKENS = 16
export const MAX_SESSIONS = 32

const digest = (secret: string): string => createHash('sha256').update(secret).digest('hex')

export class DashboardSessions {
  /** digest(token) → expiry (unix seconds). */
  private readonly tokens = new Map<string, number>()
  /** digest(session id) → last use (unix seconds). */
  private readonly sessions = new Map<string, number>()

  constructor (private readonly now: () => number) {}

  /** A new one-time login token. */
  issueLoginToken (): string {
    const token = randomBytes(32).toString('base64url')
    this.prune()
    if (this.tokens.size >= MAX_LOGIN_TOKENS) this.tokens.delete(this.tokens.keys().next().value as string)
    this.tokens.set(digest(token), this.now() + LOGIN_TOKEN_TTL_SECS)
    return token
  }

  /** Spends `token`: a new session id when it was valid and unused, else undefined. */
  login (token: string): string | undefined {
    const key = digest(token)
    const expires = this.tokens.get(key)
    this.tokens.delete(key)
    if (expires === undefined || expires < this.now()) return undefined
    this.prune()
    if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value as string)
    const id = randomBytes(32).toString('base64url')
    this.sessions.set(digest(id), this.now())
    return id
  }

  /** Whether the request's Cookie header carries a live session; a live one is marked used. */
  validCookie (cookieHeader: string | undefined): boolean {
    const id = sessionIdFromCookie(cookieHeader)
    if (id === undefined) return false
    const key = digest(id)
    const last = this.sessions.get(key)
    if (last === undefined) return false
    if (last + SESSION_IDLE_SECS < this.now()) {
      this.sessions.delete(key)
      return false
    }
    // Re-inserted: the map's order stays oldest use first, for eviction.
    this.sessions.delete(key)
    this.sessions.set(key, this.now())
    return true
  }

  get sessionCount (): number {
    return this.sessions.size
  }

  private prune (): void {
    const now = this.now()
    for (const [key, expires] of this.tokens) if (expires < now) this.tokens.delete(key)
    for (const [key, last] of this.sessions) if (last + SESSION_IDLE_SECS < now) this.sessions.delete(key)
  }
}

export function sessionIdFromCookie (cookieHeader: string | undefined): string | undefined {
  if (cookieHeader === undefined) return undefined
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) {
      const value = part.slice(eq + 1).trim()
      return /^[A-Za-z0-9_-]{43}$/.test(value) ? value : undefined
    }
  }
  return undefined
}

/** The Set-Cookie value for a session: not readable by scripts, never sent cross-site. */
export function sessionCookie (id: string): string {
  return `${SESSION_COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_IDLE_SECS}`
}
