/**
 * The node's services, built from the components in dependency order. The order of the
 * NodeServices keys is the start order (node.ts starts them in it and stops them in reverse).
 */
import type { NodeComponents } from '../components.js'
import type { AttestationSetup } from '../attestation-setup.js'
import { CollectionUpkeep } from './collection-upkeep.js'
import { GossipService } from './gossip.js'
import { SyncScheduler } from './sync-scheduler.js'
import { AttestationService } from './attestation.js'
import { Bonding } from './bonding.js'
import { VerifiedLevels } from './verified-levels.js'
import { OwnCard } from './own-card.js'
import { FleetService } from './fleet.js'
import { TrustService } from './trust.js'
import { ProviderService } from './provider.js'
import { BootstrapRedial } from './bootstrap-redial.js'
import { Requester } from './requester.js'
import { ContractWatch } from './contract-watch.js'
import { ContractLifecycle } from './contract-lifecycle.js'
import { ApiService } from './api.js'
import { DashboardService } from './dashboard.js'
import { PublicHttp } from './public-http.js'
import { PaymentService } from './payments.js'
import { WifIssuer } from './wif-issuer.js'
import { PeriodicCharges } from './periodic-charges.js'
import { PeriodicPayer } from './periodic-payer.js'

export interface NodeServices {
  publicHttp: PublicHttp
  payments: PaymentService
  wif: WifIssuer
  upkeep: CollectionUpkeep
  gossip: GossipService
  sync: SyncScheduler
  attestation: AttestationService
  bonding: Bonding
  verifiedLevels: VerifiedLevels
  fleet: FleetService
  ownCard: OwnCard
  trust: TrustService
  provider: ProviderService
  bootstrap: BootstrapRedial
  requester: Requester
  contractWatch: ContractWatch
  contractLifecycle: ContractLifecycle
  periodicCharges: PeriodicCharges
  periodicPayer: PeriodicPayer
  dashboard: DashboardService
  api: ApiService
}

export function createServices (components: NodeComponents, setup: AttestationSetup, options: { api: boolean }): NodeServices {
  // Routes are added by the services that serve them (payments, the workload identity issuer) before it starts.
  const publicHttp = new PublicHttp(components)
  const payments = new PaymentService(components, { publicHttp })
  const wif = new WifIssuer(components, { publicHttp })
  const upkeep = new CollectionUpkeep(components)
  const gossip = new GossipService(components, { persist: upkeep.persist })
  // A new bond may lift that provider's verified level.
  const attestation = new AttestationService(components, setup, { onBond: (providerId) => { verifiedLevels.reverify(providerId) } })
  const bonding = new Bonding(components, attestation)
  const verifiedLevels = new VerifiedLevels(components, attestation, bonding)
  const fleet = new FleetService(components)
  const ownCard = new OwnCard(components, { attestation, gossip, offer: () => ({ ...fleet.cardBackends(), ...(payments.terms !== undefined ? { payment: payments.terms } : {}) }) })
  // A backend that joins later changes the offer: the card says so at once.
  fleet.onChange = () => { ownCard.publish().catch((err) => components.log.warn(`card republish failed: ${(err as Error).message}`)) }
  const trust = new TrustService(components)
  const provider = new ProviderService(components, { attestation, ownCard, fleet, payments, wif })
  // The watch (requester side) starts first: the lifecycle registers the protocol both are served by.
  const contractWatch = new ContractWatch(components)
  const contractLifecycle = new ContractLifecycle(components, { fleet, watch: contractWatch })
  const services: NodeServices = {
    publicHttp,
    payments,
    wif,
    upkeep,
    gossip,
    sync: new SyncScheduler(components, { persist: upkeep.persist }),
    attestation,
    bonding,
    verifiedLevels,
    fleet,
    ownCard,
    trust,
    provider,
    bootstrap: new BootstrapRedial(components),
    requester: new Requester(components, { gossip, attestation, verifiedLevels, provider, trust, payments }),
    contractWatch,
    contractLifecycle,
    // Payments after the first (per-period or postpaid bids): charged by the provider, paid by the requester.
    periodicCharges: new PeriodicCharges(components, { payments, lifecycle: contractLifecycle }),
    periodicPayer: new PeriodicPayer(components, { payments }),
    dashboard: new DashboardService(components, { services: () => services }),
    api: new ApiService(components, { enabled: options.api, services: () => services })
  }
  return services
}
