/**
 * Where `cmesh receipt open` puts an opened receipt's files, and the ssh command that then logs in:
 * one definition for the CLI that writes them and the dashboard that shows the command.
 */
import { join } from 'node:path'

/** The default key file of contract `id` (the RFP's id) under a node's data directory. */
export function receiptKeyFile (dataDir: string, id: string): string {
  return join(dataDir, 'receipts', `${id}.key`)
}

/** The pinned known_hosts file beside a receipt's key file. */
export function receiptKnownHosts (keyFile: string): string {
  return `${keyFile}.known_hosts`
}

/** ssh with exactly this key and host key: no agent keys, no trust-on-first-use. */
export function receiptSshCommand (receipt: { host: string, port: number, user: string }, keyFile: string): string[] {
  return ['ssh', '-i', keyFile, '-p', String(receipt.port), '-o', 'IdentitiesOnly=yes', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${receiptKnownHosts(keyFile)}`, `${receipt.user}@${receipt.host}`]
}
