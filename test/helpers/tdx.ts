import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseCollateral, type Collateral } from '../../src/attestation/collateral.js'

/** ../shared/fixtures/tdx beside the project (README there gives the verify-at times). */
export const FIXTURES = new URL('../../../shared/fixtures/tdx/', import.meta.url)

/**
 * Test options for suites that read the real Intel quotes: a clone without `../shared` beside it
 * says so and skips them; CI always has it, so there (CI=true) they run and fail loudly instead.
 */
export const needsFixtures = existsSync(fileURLToPath(FIXTURES)) || process.env.CI === 'true'
  ? {}
  : { skip: `skipped: the TDX fixtures are not at ${fileURLToPath(FIXTURES)} (clone beside shared/)` }

export function fixture (dir: 'v4-uptodate' | 'v5-out-of-tcb'): { quote: Uint8Array, collateral: Collateral, at: number } {
  return {
    quote: new Uint8Array(readFileSync(new URL(`${dir}/quote.bin`, FIXTURES))),
    collateral: parseCollateral(readFileSync(new URL(`${dir}/collateral.json`, FIXTURES), 'utf8')),
    at: dir === 'v4-uptodate' ? 1751624655 : 1772707833
  }
}

export function flip (bytes: Uint8Array, at: number): Uint8Array {
  const out = Uint8Array.from(bytes)
  out[at] = (out[at] as number) ^ 0x01
  return out
}
