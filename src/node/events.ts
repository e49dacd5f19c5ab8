/**
 * The node's event bus for local observers (the API's `/v1/events` stream, later the dashboard):
 * collection changes, RFPs, verified levels, and contract events in later issues. Synchronous
 * fan-out; a listener that throws is dropped from this delivery, never breaks the publisher.
 */
export interface NodeEvent {
  type: string
  data: unknown
}

export class NodeEvents {
  private readonly listeners = new Set<(event: NodeEvent) => void>()

  get listenerCount (): number {
    return this.listeners.size
  }

  subscribe (listener: (event: NodeEvent) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  publish (type: string, data: unknown): void {
    for (const listener of [...this.listeners]) {
      try {
        listener({ type, data })
      } catch {
        // An observer's failure is its own; the node goes on.
      }
    }
  }
}
