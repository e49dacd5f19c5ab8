/**
 * cloud-init's `-----BEGIN SSH HOST KEY KEYS-----` console block, shared by the backends that learn a
 * VM's SSH host key from its console / serial log (AWS EC2's GetConsoleOutput, Azure's boot
 * diagnostics). Kept SDK-free so importing it never loads a cloud SDK.
 */
import { hostKeyFingerprint, parsePublicKey, publicKeyBlob } from './ssh-keys.js'

export interface ConsoleHostKey { hostKey: string, fingerprint: string }

const KEY_TYPES = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa']

/**
 * The host key from the last complete `SSH HOST KEY KEYS` block cloud-init printed (lines may carry
 * a prefix such as Amazon Linux's `ec2: ` or a timestamp). The last block wins: keys-to-console runs
 * after the requester's user_data in the same boot, so an earlier look-alike cannot displace it.
 * Prefers ed25519, then ECDSA, then RSA. Undefined if there is no complete, parseable block.
 */
export function parseConsoleHostKey (text: string): ConsoleHostKey | undefined {
  const lines = text.split(/\r?\n/)
  let end = -1
  for (let i = lines.length - 1; i >= 0; i--) if ((lines[i] as string).includes('-----END SSH HOST KEY KEYS-----')) { end = i; break }
  if (end < 0) return undefined
  let begin = -1
  for (let i = end - 1; i >= 0; i--) if ((lines[i] as string).includes('-----BEGIN SSH HOST KEY KEYS-----')) { begin = i; break }
  if (begin < 0) return undefined
  const found = new Map<string, string>()
  for (const line of lines.slice(begin + 1, end)) {
    const m = /(?:^|\s)(ssh-ed25519|ecdsa-sha2-nistp(?:256|384|521)|ssh-rsa)\s+([A-Za-z0-9+/]+={0,3})(?:\s|$)/.exec(line)
    if (m === null || found.has(m[1] as string)) continue
    found.set(m[1] as string, `${m[1] as string} ${m[2] as string}`)
  }
  for (const type of KEY_TYPES) {
    const hostKey = found.get(type)
    if (hostKey === undefined) continue
    try {
      const parsed = parsePublicKey(hostKey)
      if (parsed.type !== type) continue
      return { hostKey, fingerprint: hostKeyFingerprint(publicKeyBlob(hostKey)) }
    } catch { /* a garbled line: try the next type */ }
  }
  return undefined
}
