// What each WebSocket close code means to a client, as docs/protocol.md
// ("Close codes") says: whether to reconnect, and with what.

/**
 * `reconnect`: "yes" (with backoff), "token" (only with a new token from
 * getToken), "no" (stop: something on the client side must change).
 * `minDelayMs`: the least backoff before trying again.
 */
export const CLOSE_CODES = Object.freeze({
  1000: { reconnect: "yes", meaning: "normal closure" },
  1001: { reconnect: "yes", meaning: "going away" },
  1002: { reconnect: "no", meaning: "a WebSocket framing rule was broken (a client bug)" },
  1006: { reconnect: "yes", meaning: "the connection dropped without a close frame" },
  1007: { reconnect: "no", meaning: "a text frame was not valid UTF-8 (a client bug)" },
  1009: { reconnect: "yes", meaning: "a message exceeded max_frame_bytes" },
  1011: { reconnect: "yes", meaning: "unexpected server error" },
  4000: { reconnect: "yes", meaning: "the node is draining for a restart", maxDelayMs: 1000 },
  4001: { reconnect: "yes", meaning: "slow consumer: the client fell too far behind" },
  4002: { reconnect: "yes", meaning: "heartbeat timeout" },
  4003: { reconnect: "token", meaning: "the token expired without a refresh" },
  4004: { reconnect: "yes", meaning: "no auth in time" },
  4005: { reconnect: "yes", meaning: "too many connections for this user on this node", minDelayMs: 5000 },
  4006: { reconnect: "yes", meaning: "flooding: out of strikes", minDelayMs: 5000 },
  4007: { reconnect: "yes", meaning: "disconnected by the application" },
  4500: { reconnect: "token", meaning: "the token is not acceptable" },
  4501: { reconnect: "no", meaning: "disconnected by the application, which asks the client not to come back" },
  4502: { reconnect: "token", meaning: "the application revoked the user's tokens" },
});

/** The meaning of `code`, with the protocol's ranges for codes not listed. */
export function closeCodeInfo(code) {
  if (CLOSE_CODES[code]) return { code, ...CLOSE_CODES[code] };
  if (code >= 4000 && code <= 4499) return { code, reconnect: "yes", meaning: "reconnect" };
  if (code >= 4500 && code <= 4999) return { code, reconnect: "no", meaning: "do not reconnect" };
  return { code, reconnect: "yes", meaning: "the connection closed" };
}

/** Error codes after which a send is tried again, with the same client_msg_id. */
export const RETRIED_SEND_ERRORS = new Set([
  "backplane_unavailable",
  "rate_limited",
  "hook_unavailable",
  "store_unavailable",
  "internal",
]);
