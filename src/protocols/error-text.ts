/** A thrown value as one line for logs: its code and message, whatever was thrown (never "undefined"). */
export function errorText (err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code
    const message = err.message !== '' ? err.message : err.name
    return typeof code === 'string' && !message.startsWith(code) ? `${code}: ${message}` : message
  }
  return err === undefined ? 'no reason given' : String(err)
}
