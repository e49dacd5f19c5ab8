/**
 * Every topic and protocol id is built here, from the network name, so two networks (e.g.
 * `mainnet`, a test net per test run) never hear each other and versions change in one place.
 */
export const NETWORK_PATTERN = /^[a-z0-9][a-z0-9-]{0,31}$/

export function assertNetworkName (network: string): void {
  if (!NETWORK_PATTERN.test(network)) throw new TypeError(`network name must match ${NETWORK_PATTERN}: ${network}`)
}

export type TopicKind = 'cards' | 'rfps' | 'trust'
export type ProtocolKind = 'sync' | 'attest' | 'bid' | 'kad' | 'evidence' | 'contract'

/** `cmesh/<network>/<kind>/1` */
export function topicName (network: string, kind: TopicKind): string {
  assertNetworkName(network)
  return `cmesh/${network}/${kind}/1`
}

/** `/cmesh/<network>/<kind>/1.0.0` (kad-dht gets its own id: never the public IPFS DHT). */
export function protocolId (network: string, kind: ProtocolKind): string {
  assertNetworkName(network)
  return `/cmesh/${network}/${kind}/1.0.0`
}
