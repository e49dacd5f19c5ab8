/**
 * What a node attests with, decided from its config before anything opens: the quote provider
 * (TDX hardware through configfs-tsm, the TEST-ONLY simulator, or none) and the root peers'
 * quotes must chain to. Every file it needs is read here, so a missing collateral or root file
 * fails the start before a port, a lock or a key is touched.
 */
import { readFile } from 'node:fs/promises'
import { ConfigfsTsmQuoteProvider, SimulatedQuoteProvider, type QuoteProvider } from '../attestation/quote-provider.js'
import { intelTrustAnchor, trustAnchorFromPem, type TrustAnchor } from '../attestation/trust-anchor.js'
import { parseCollateral } from '../attestation/collateral.js'
import type { NodeConfig } from './config.js'
import { NodeError } from './errors.js'

export interface AttestationSetup {
  /** Absent: the node proves Software only. */
  quoteProvider?: QuoteProvider
  anchor: TrustAnchor
}

async function readConfigured (setting: string, path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (err: any) {
    throw new NodeError('CONFIG_INVALID', `${setting}: cannot read ${path}: ${err.code ?? err.message}`)
  }
}

export async function attestationSetup (a: NodeConfig['attest'], now: () => number = Date.now): Promise<AttestationSetup> {
  if (a.production && a.provider === 'simulated') throw new NodeError('CONFIG_INVALID', 'production mode cannot run the simulated quote provider (attest.provider: "configfs-tsm" or "none")')
  let quoteProvider: QuoteProvider | undefined
  if (a.provider === 'simulated') {
    quoteProvider = await SimulatedQuoteProvider.create({ now })
  } else if (a.provider === 'configfs-tsm') {
    if (a.collateralFile === undefined) throw new NodeError('CONFIG_INVALID', 'attest.provider "configfs-tsm" needs attest.collateralFile (collateral for this TD\'s quotes)')
    quoteProvider = new ConfigfsTsmQuoteProvider({ collateral: parseCollateral(await readConfigured('attest.collateralFile', a.collateralFile)) })
  }
  let anchor: TrustAnchor
  if (a.rootPem !== undefined) anchor = trustAnchorFromPem(await readConfigured('attest.rootPem', a.rootPem), { production: a.production })
  else if (quoteProvider instanceof SimulatedQuoteProvider) anchor = quoteProvider.trustAnchor
  else anchor = intelTrustAnchor()
  return { ...(quoteProvider !== undefined ? { quoteProvider } : {}), anchor }
}
