/**
 * The Fleet: one provider identity over many backends (DESIGN.md §7). For a grant it picks the
 * cheapest backend that can satisfy it (price from the card's rate table, the same arithmetic the
 * bid engine quotes with; ties: most free CPUs), sends TDX grants only to TDX-capable backends,
 * remembers which backend owns each instance, and never provisions one grant twice. What it can
 * host (the union of its backends' capabilities, minus what is in use) feeds the provider's card.
 */
import type { Rate } from '../market/provider-card.js'
import { contractCostWei, rateFor } from '../market/bid-engine.js'
import { BackendError, type Backend, type BackendCapabilities, type BackendUsage, type Grant, type Instance, type ProvisionOptions } from './backend.js'

export interface FleetChoice { backend: Backend, costWei: bigint }
export interface FleetRefusal { backend: string, reason: string }

export class Fleet {
  private readonly backends = new Map<string, Backend>()
  /** grant id → the backend and instance that hold it (or are being provisioned for it). */
  private readonly owners = new Map<string, { backend: Backend, grant?: Grant, instance?: Instance }>()

  constructor (backends: Backend[], private readonly rates: () => Rate[], private readonly now: () => number = Date.now) {
    for (const b of backends) {
      if (this.backends.has(b.name)) throw new BackendError('BACKEND_PROVISION_FAILED', `two backends named ${b.name}`)
      this.backends.set(b.name, b)
    }
  }

  /** A backend that passed its check later (it was left out at start). */
  add (backend: Backend): void {
    if (this.backends.has(backend.name)) throw new BackendError('BACKEND_PROVISION_FAILED', `two backends named ${backend.name}`)
    this.backends.set(backend.name, backend)
  }

  get names (): string[] {
    return [...this.backends.keys()]
  }

  get (name: string): Backend | undefined {
    return this.backends.get(name)
  }

  /** CPUs, memory and disk held by live grants on a backend. */
  used (name: string): { cpus: number, memMiB: number, diskGiB: number, instances: number } {
    const out = { cpus: 0, memMiB: 0, diskGiB: 0, instances: 0 }
    for (const o of this.owners.values()) {
      if (o.backend.name !== name || o.instance === undefined || o.grant === undefined) continue
      out.cpus += o.grant.cpus
      out.memMiB += o.grant.memMiB
      out.diskGiB += o.grant.diskGiB
      out.instances++
    }
    return out
  }

  /** Every backend that could host the grant, cheapest first; and why the others cannot. */
  rank (grant: Grant, durationSecs: number): { choices: FleetChoice[], refused: FleetRefusal[] } {
    const nowSecs = Math.floor(this.now() / 1000)
    const choices: FleetChoice[] = []
    const refused: FleetRefusal[] = []
    for (const backend of this.backends.values()) {
      const fit = backend.canSatisfy(grant)
      if (!fit.ok) {
        refused.push({ backend: backend.name, reason: fit.reason })
        continue
      }
      if (grant.validToUnixSecs <= nowSecs) {
        refused.push({ backend: backend.name, reason: 'grant already expired' })
        continue
      }
      const rate = rateFor(this.rates(), backend.name, grant.region)
      if (rate === undefined) {
        refused.push({ backend: backend.name, reason: `no rate for ${backend.name} in ${grant.region}` })
        continue
      }
      choices.push({ backend, costWei: contractCostWei(rate, grant, durationSecs) })
    }
    const freeCpu = (b: Backend): number => b.capabilities().maxCpu - this.used(b.name).cpus
    choices.sort((a, b) => (a.costWei < b.costWei ? -1 : a.costWei > b.costWei ? 1 : freeCpu(b.backend) - freeCpu(a.backend)))
    return { choices, refused }
  }

  /** The cheapest backend for the grant, or why none can host it. */
  choose (grant: Grant, durationSecs: number): FleetChoice | { reason: string } {
    const { choices, refused } = this.rank(grant, durationSecs)
    return choices[0] ?? { reason: refused.map((r) => `${r.backend}: ${r.reason}`).join('; ') || 'no backend configured' }
  }

  /**
   * Provisions the grant on `backendName` (the backend its bid was priced for) or, when none is
   * named, on the cheapest that fits. A grant id the fleet has seen is refused: one grant, one machine.
   */
  async provision (grant: Grant, durationSecs: number, options: ProvisionOptions & { backend?: string } = {}): Promise<Instance> {
    if (this.owners.has(grant.id)) throw new BackendError('BACKEND_PROVISION_FAILED', `grant ${grant.id} was already provisioned (or is being)`)
    let backend: Backend
    if (options.backend !== undefined) {
      const named = this.backends.get(options.backend)
      if (named === undefined) throw new BackendError('BACKEND_CANNOT_SATISFY', `no backend ${options.backend} on this node`)
      const fit = named.canSatisfy(grant)
      if (!fit.ok) throw new BackendError('BACKEND_CANNOT_SATISFY', `${named.name}: ${fit.reason}`)
      backend = named
    } else {
      const choice = this.choose(grant, durationSecs)
      if ('reason' in choice) throw new BackendError('BACKEND_CANNOT_SATISFY', choice.reason)
      backend = choice.backend
    }
    // Known from here on, failed or not: a grant id is never provisioned twice.
    this.owners.set(grant.id, { backend, grant })
    const instance = await backend.provision(grant, options)
    this.owners.set(grant.id, { backend, grant, instance })
    return instance
  }

  /** Marks grants provisioned before a restart as seen, so they are never provisioned again. */
  remember (grantId: string, backendName: string, instance?: Instance): void {
    const backend = this.backends.get(backendName)
    if (backend !== undefined) this.owners.set(grantId, { backend, ...(instance !== undefined ? { instance } : {}) })
  }

  owner (grantId: string): { backend: string, instance?: Instance } | undefined {
    const o = this.owners.get(grantId)
    return o === undefined ? undefined : { backend: o.backend.name, ...(o.instance !== undefined ? { instance: o.instance } : {}) }
  }

  async terminate (grantId: string): Promise<void> {
    const o = this.owners.get(grantId)
    if (o?.instance === undefined) return
    await o.backend.terminate(o.instance)
    this.owners.set(grantId, { backend: o.backend, ...(o.grant !== undefined ? { grant: o.grant } : {}) })
  }

  /**
   * What a grant's instance has used so far: undefined when the fleet holds no instance for it or
   * its backend cannot measure; BackendError `BACKEND_UNKNOWN_INSTANCE` when the backend says it is gone.
   */
  async usage (grantId: string): Promise<BackendUsage | undefined> {
    const o = this.owners.get(grantId)
    if (o?.instance === undefined || o.backend.usage === undefined) return undefined
    return await o.backend.usage(o.instance)
  }

  /**
   * At node shutdown: ends the live instances of backends whose instances cannot outlive this
   * process (the local one). A cloud VM or a bare-metal grant is the customer's until valid-to,
   * whatever the provider's node does.
   */
  async stopAll (kinds: string[] = ['local']): Promise<void> {
    for (const [id, o] of this.owners) if (kinds.includes(o.backend.kind)) await this.terminate(id).catch(() => {})
  }

  /** The union of what the backends can host, for the card. */
  capabilities (): BackendCapabilities {
    const all = [...this.backends.values()].map((b) => b.capabilities())
    return {
      regions: [...new Set(all.flatMap((c) => c.regions))].sort(),
      maxCpu: Math.max(0, ...all.map((c) => c.maxCpu)),
      maxMemoryMiB: Math.max(0, ...all.map((c) => c.maxMemoryMiB)),
      maxDiskGiB: Math.max(0, ...all.map((c) => c.maxDiskGiB)),
      tdx: all.some((c) => c.tdx)
    }
  }
}
