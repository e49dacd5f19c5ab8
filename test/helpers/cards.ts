/** Deterministic identities and cards for tests: same seed index, same key, same bytes. */
import { sha256 } from '@noble/hashes/sha2.js'
import {
  identityFromSeed, rateTableDigest, signRecord, ProviderCardType, RetirementType, utf8,
  type Identity, type ProviderCard, type Rate, type SignedProviderCard, type SignedRetirement, type AttestationLevel
} from '../../src/market/index.js'

export function testIdentity (index: number): Identity {
  return identityFromSeed(sha256(utf8(`cmesh test identity ${index}`)))
}

export const T0 = 1_800_000_000

export function cardFields (identity: Identity, overrides: Partial<ProviderCard> = {}): ProviderCard {
  const rates: Rate[] = overrides.rates ?? [
    { backend: 'local', cpuHourWei: 1000n, memoryGiBHourWei: 100n, diskGiBHourWei: 10n },
    { backend: 'aws', region: 'eu-west-1', cpuHourWei: 2000n, memoryGiBHourWei: 200n, diskGiBHourWei: 20n }
  ]
  return {
    providerId: identity.did,
    schemesSupported: ['vm.ssh'],
    attestationLevel: 'Software',
    attestationDigest: sha256(utf8('software identity')),
    capacityPerSecond: 10,
    feePerPartialWei: 1_000_000_000n,
    committedAtUnixSecs: T0,
    expiresAtUnixSecs: T0 + 3600,
    backends: [
      { name: 'local', kind: 'local', regions: ['local'], maxCpu: 4, maxMemoryMiB: 8192, maxDiskGiB: 50, tdx: false },
      { name: 'aws', kind: 'aws-ec2', regions: ['eu-west-1', 'us-east-1'], maxCpu: 64, maxMemoryMiB: 262144, maxDiskGiB: 2000, tdx: true }
    ],
    rates,
    rateTableDigest: rateTableDigest(rates),
    listenAddrs: ['/ip4/127.0.0.1/tcp/4001'],
    ...overrides
  }
}

export function makeCard (identity: Identity, overrides: Partial<ProviderCard> = {}): SignedProviderCard {
  return signRecord(ProviderCardType, cardFields(identity, overrides), identity)
}

export function makeRetirement (identity: Identity, at: number, successor?: Identity): SignedRetirement {
  return signRecord(RetirementType, {
    providerId: identity.did,
    retiredAtUnixSecs: at,
    ...(successor !== undefined ? { successor: successor.did } : {})
  }, identity)
}

export function cardAt (identity: Identity, committedAt: number, level: AttestationLevel = 'Software', fee = 1_000_000_000n): SignedProviderCard {
  return makeCard(identity, { committedAtUnixSecs: committedAt, expiresAtUnixSecs: committedAt + 3600, attestationLevel: level, feePerPartialWei: fee })
}
