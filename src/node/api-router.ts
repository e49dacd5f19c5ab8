/**
 * Path matching for the local API, kept pure (no I/O, no HTTP objects) so it is tested alone.
 * Patterns are split into segments once; a request path is compared segment by segment, so no
 * regular expression is ever built from a request. It tells "unknown path" (404) apart from "known
 * path, other method" (405 with `Allow`), and a literal segment beats a `:param` where both match.
 */
import { CmeshError } from '../market/errors.js'

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE'

export interface RouteSpec {
  method: HttpMethod
  path: string
}

export type RouteMatch<R extends RouteSpec> =
  | { kind: 'found', route: R, params: Record<string, string> }
  | { kind: 'method-not-allowed', allow: HttpMethod[] }
  | { kind: 'not-found' }
  | { kind: 'bad-path' }

export type RouteErrorCode = 'ROUTE_INVALID' | 'ROUTE_DUPLICATE'

/** A route table the program itself got wrong: thrown at construction, never per request. */
export class RouteError extends CmeshError<RouteErrorCode> {}

type Segment = { literal: string } | { param: string }

interface Compiled<R> {
  route: R
  segments: Segment[]
}

const METHODS: readonly HttpMethod[] = ['GET', 'POST', 'PUT', 'DELETE']
const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

export class ApiRouter<R extends RouteSpec> {
  private readonly compiled: Array<Compiled<R>>

  constructor (routes: readonly R[]) {
    this.compiled = routes.map((route) => ({ route, segments: compile(route) }))
    const seen = new Set<string>()
    for (const { route, segments } of this.compiled) {
      // Two patterns that differ only in parameter names match the same requests.
      const shape = route.method + ' ' + segments.map((s) => ('param' in s ? ':' : s.literal)).join('/')
      if (seen.has(shape)) throw new RouteError('ROUTE_DUPLICATE', `route ${route.method} ${route.path} is defined twice`)
      seen.add(shape)
    }
  }

  /** `pathname` is the raw request path without the query string, still percent-encoded. */
  match (method: string, pathname: string): RouteMatch<R> {
    if (!pathname.startsWith('/')) return { kind: 'not-found' }
    const parts: string[] = []
    for (const raw of pathname.slice(1).split('/')) {
      try {
        parts.push(decodeURIComponent(raw))
      } catch {
        return { kind: 'bad-path' }
      }
    }
    let best: { route: R, params: Record<string, string>, rank: string } | undefined
    const allow = new Set<HttpMethod>()
    for (const { route, segments } of this.compiled) {
      const params = matchSegments(segments, parts)
      if (params === undefined) continue
      allow.add(route.method)
      if (route.method !== method) continue
      const rank = segments.map((s) => ('param' in s ? '1' : '0')).join('')
      if (best === undefined || rank < best.rank) best = { route, params, rank }
    }
    if (best !== undefined) return { kind: 'found', route: best.route, params: best.params }
    if (allow.size > 0) return { kind: 'method-not-allowed', allow: METHODS.filter((m) => allow.has(m)) }
    return { kind: 'not-found' }
  }
}

function compile (route: RouteSpec): Segment[] {
  if (!METHODS.includes(route.method)) throw new RouteError('ROUTE_INVALID', `route ${route.path}: unknown method ${String(route.method)}`)
  if (!route.path.startsWith('/') || route.path.includes('?') || route.path.includes('#')) {
    throw new RouteError('ROUTE_INVALID', `route path ${route.path} must start with / and carry no query`)
  }
  const names = new Set<string>()
  return route.path.slice(1).split('/').map((segment) => {
    if (!segment.startsWith(':')) return { literal: segment }
    const name = segment.slice(1)
    if (!PARAM_NAME.test(name) || name === '__proto__' || names.has(name)) throw new RouteError('ROUTE_INVALID', `route ${route.path}: bad or repeated parameter :${name}`)
    names.add(name)
    return { param: name }
  })
}

/** Parameters of a match, or undefined; a parameter never matches an empty segment. */
function matchSegments (segments: readonly Segment[], parts: readonly string[]): Record<string, string> | undefined {
  if (segments.length !== parts.length) return undefined
  const params: Record<string, string> = {}
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as Segment
    const part = parts[i] as string
    if ('param' in segment) {
      if (part === '') return undefined
      params[segment.param] = part
    } else if (segment.literal !== part) {
      return undefined
    }
  }
  return params
}
