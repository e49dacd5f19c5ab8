/**
 * The operator's dashboard, served by the node on its local API address (no new port): the login
 * link, the page and its modules, and the JSON views the page reads that the CLI does not need —
 * the market as an auditor sees it, the trust graph at the policy's depth, metrics as JSON, a
 * contract's ssh command without its key. While a page is open (an event stream is subscribed)
 * a `metrics` event goes out every METRICS_EVENT_SECS, so no page polls.
 */
import type { Startable } from '@libp2p/interface'
import { z } from 'zod'
import { ApiError, type ApiRoute } from '../api.js'
import { ATTESTATION_LEVELS, type AttestationLevel } from '../../market/ladder.js'
import { capabilityUnion, type ProviderCard } from '../../market/provider-card.js'
import type { Did } from '../../market/identity.js'
import { buildAuditReport } from '../audit-report.js'
import { trustView } from '../../market/contract-policy.js'
import { isVouch } from '../../market/trust.js'
import { openReceipt } from '../../market/sealed-receipt.js'
import { cidForBytes } from '../../market/cbor.js'
import { DashboardSessions, sessionCookie } from '../dashboard-sessions.js'
import { receiptKeyFile, receiptSshCommand } from '../receipt-login.js'
import { dashboardAssetRoutes, DASHBOARD_HEADERS } from '../dashboard-assets.js'
import { every, nowSecs, type NodeComponents } from '../components.js'
import type { NodeServices } from './index.js'

export const METRICS_EVENT_SECS = 5

const count = z.coerce.number().int().min(0).max(1_000_000)
const marketQuery = z.strictObject({
  floor: z.enum(ATTESTATION_LEVELS).default('Software'),
  scheme: z.string().min(1).max(64).optional(),
  region: z.string().min(1).max(64).optional(),
  burst: z.coerce.number().min(0).max(1e12).optional(),
  threshold: count.optional(),
  committee: count.optional()
})

export interface DashboardInit {
  /** The node's services (read at request time: the API starts last). */
  services: () => NodeServices
}

export class DashboardService implements Startable {
  readonly sessions: DashboardSessions
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly components: NodeComponents, private readonly init: DashboardInit) {
    this.sessions = new DashboardSessions(() => nowSecs(components))
  }

  async start (): Promise<void> {
    const { events } = this.components
    this.timer = every(METRICS_EVENT_SECS, () => {
      // Only for an open page: the JSON is built from every series, not free.
      if (events.listenerCount === 0) return
      void this.metricsJson().then((json) => { events.publish('metrics', json) }, () => {})
    })
  }

  async stop (): Promise<void> {
    clearInterval(this.timer)
  }

  /** A one-time login link on the API's address (undefined while the API is off). */
  loginUrl (): string | undefined {
    const url = this.init.services().api.url
    return url === undefined ? undefined : `${url}/login?token=${this.sessions.issueLoginToken()}`
  }

  routes (): ApiRoute[] {
    return [
      ...dashboardAssetRoutes(),
      { method: 'GET', path: '/login', access: 'public', handle: (req) => this.login(req.query.get('token') ?? '') },
      {
        method: 'POST',
        path: '/v1/dashboard/login',
        access: 'bearer',
        handle: () => {
          const url = this.loginUrl()
          if (url === undefined) throw new ApiError('NOT_FOUND', 'the local API is not running', { status: 404 })
          return { json: { url } }
        }
      },
      { method: 'GET', path: '/v1/market', handle: (req) => ({ json: this.market(req.query) }) },
      { method: 'GET', path: '/v1/trust/graph', handle: () => ({ json: this.trustGraph() }) },
      { method: 'GET', path: '/v1/metrics', handle: async () => ({ json: await this.metricsJson() }) },
      { method: 'GET', path: '/v1/contracts/:id/ssh', handle: async (req) => ({ json: await this.ssh(req.params.id ?? '') }) }
    ]
  }

  private login (token: string): { status: number, text: string, contentType: string, headers: Record<string, string> } {
    const session = this.sessions.login(token)
    if (session === undefined) {
      return {
        status: 401,
        contentType: 'text/html; charset=utf-8',
        headers: DASHBOARD_HEADERS,
        text: '<!doctype html><html lang="en"><meta charset="utf-8"><title>compute-mesh: login link not valid</title>' +
          '<h1>This login link is not valid</h1><p>It was already used, has expired, or belongs to an earlier run of the node. ' +
          'Run <code>cmesh dashboard</code> on the node\'s machine for a new one.</p></html>'
      }
    }
    return { status: 303, contentType: 'text/plain; charset=utf-8', text: 'logged in\n', headers: { location: '/', 'set-cookie': sessionCookie(session), 'referrer-policy': 'no-referrer' } }
  }

  /** The auditor's report (audit-report.ts) over the cards shown now, with each provider's offer. */
  market (query: URLSearchParams): Record<string, unknown> {
    const parsed = marketQuery.safeParse(Object.fromEntries(query))
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      throw new ApiError('QUERY_INVALID', `${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`, { status: 400 })
    }
    const q = parsed.data
    const now = nowSecs(this.components)
    const results = this.init.services().verifiedLevels.levels
    const verified = new Map<string, AttestationLevel>()
    const simulated = new Set<string>()
    for (const [providerId, v] of results) {
      verified.set(providerId, v.level)
      if (v.simulated && v.level !== 'Software') simulated.add(providerId)
    }
    const cards = this.components.collection.cards(now).map((c) => c.value)
      .filter((c) => q.region === undefined || capabilityUnion(c).regions.includes(q.region))
    const report = buildAuditReport(cards, verified, {
      floor: q.floor,
      ...(q.scheme !== undefined ? { scheme: q.scheme } : {}),
      ...(q.threshold !== undefined ? { threshold: q.threshold } : {}),
      ...(q.committee !== undefined ? { committee: q.committee } : {}),
      ...(q.burst !== undefined ? { burst: q.burst } : {})
    }, now, simulated)
    const byId = new Map<string, ProviderCard>(cards.map((c) => [c.providerId, c]))
    const providers = report.ranked.map((r) => {
      const card = byId.get(r.providerId)
      const result = results.get(r.providerId as Did)
      return {
        ...r,
        ...(result?.code !== undefined ? { code: result.code } : {}),
        ...(result?.reason !== undefined ? { reason: result.reason } : {}),
        schemes: card?.schemesSupported ?? [],
        backends: card?.backends ?? [],
        expiresAtUnixSecs: card?.expiresAtUnixSecs
      }
    })
    const feesByLevel = ATTESTATION_LEVELS.map((level) => ({
      level,
      fees: cards.filter((c) => (verified.get(c.providerId) ?? 'Software') === level).map((c) => c.feePerPartialWei).sort((a, b) => a < b ? -1 : a > b ? 1 : 0)
    }))
    const { ranked: _ranked, ...rest } = report
    return { ...rest, filter: { ...report.filter, ...(q.region !== undefined ? { region: q.region } : {}) }, providers, feesByLevel }
  }

  /** Every trust statement this node holds, and what the policy makes of them from here. */
  trustGraph (): Record<string, unknown> {
    const { identity, config } = this.components
    const statements = this.init.services().trust.all()
    const view = trustView(identity.did, statements, config.contracts.depth)
    return {
      me: identity.did,
      mode: config.contracts.mode,
      depth: config.contracts.depth,
      statements: statements.map((r) => ({ kind: isVouch(r) ? 'vouch' : 'denounce', truster: r.value.truster, subject: r.value.subject, createdAtUnixSecs: r.value.createdAtUnixSecs })),
      direct: [...view.direct],
      vouched: [...view.vouched],
      mutuals: [...view.mutuals],
      denounced: [...view.denounced]
    }
  }

  async metricsJson (): Promise<{ at: number, metrics: unknown }> {
    const api = this.init.services().api
    api.refreshGauges()
    return { at: nowSecs(this.components), metrics: await this.components.metrics.registry.getMetricsAsJSON() }
  }

  /** How to log in to a ready contract's machine, without the key: the page shows the commands, `cmesh receipt open` writes the key. */
  private async ssh (id: string): Promise<Record<string, unknown>> {
    const sealed = await this.init.services().requester.receipt(id)
    if (sealed === undefined) throw new ApiError('NOT_FOUND', 'no receipt for this contract (not a requester contract here, or not provisioned yet)', { status: 404 })
    const receipt = await openReceipt({ enc: sealed.enc, ct: sealed.ct }, sealed.receiptKey, cidForBytes(sealed.ccr).bytes)
    const keyFile = receiptKeyFile(this.components.dataDir, id)
    return {
      host: receipt.host,
      port: receipt.port,
      user: receipt.user,
      hostKeyFingerprint: receipt.hostKeyFingerprint,
      validToUnixSecs: receipt.validToUnixSecs,
      open: `cmesh receipt open ${id} --data ${this.components.dataDir}`,
      ssh: receiptSshCommand(receipt, keyFile).join(' ')
    }
  }
}
