// A small typed event emitter: `on` returns a function that unsubscribes.
// A listener that throws does not stop the others; the error is reported
// on the next turn (as an uncaught error), not swallowed.

export class Emitter {
  #listeners = new Map();

  /** Calls `listener` for each `type` event; returns the unsubscriber. */
  on(type, listener) {
    if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
    this.#listeners.get(type).add(listener);
    return () => this.off(type, listener);
  }

  /** Like `on`, for the next event only. */
  once(type, listener) {
    const off = this.on(type, (event) => {
      off();
      listener(event);
    });
    return off;
  }

  off(type, listener) {
    this.#listeners.get(type)?.delete(listener);
  }

  emit(type, event) {
    for (const listener of [...(this.#listeners.get(type) ?? [])]) {
      try {
        listener(event);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
