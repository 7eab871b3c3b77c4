// Types of the Chorus client SDK and of the wire protocol (docs/protocol.md).
// scripts/check-protocol.js fails the test command when an event, error code
// or close code of docs/protocol.md is missing here.

// ---- the protocol: values -------------------------------------------------------

/** A user as the server shows them. */
export interface User {
  id: string;
  name?: string;
  avatar?: string;
  /** Set on messages an application posted through the server API. */
  kind?: "bot" | "system";
}

export interface Attachment {
  id: string;
  name: string;
  size: number;
  content_type: string;
  width?: number;
  height?: number;
  thumbnail?: boolean;
}

export interface Reaction {
  emoji: string;
  count: number;
  users: string[];
}

/** A message, live (`type: "message"`) or from history (no `type`). */
export interface Message {
  type?: "message";
  id: string;
  room: string;
  from: User;
  ts: number;
  body: string;
  seq: number;
  /** In history pages: the epoch `seq` counts in (archived pages reach earlier epochs). */
  epoch?: number;
  mentions?: string[];
  attachments?: Attachment[];
  edited?: number;
  deleted?: boolean;
  reactions?: Reaction[];
}

/** A message a search found, with where the query matched. */
export interface SearchHit {
  /** The message as it is now, with its `epoch`. */
  message: Message;
  /** Plain-text pieces (never HTML); `hit` on matched words. */
  snippet: { text: string; hit?: boolean }[];
  rank: number;
}

export interface Limits {
  max_frame_bytes: number;
  max_body_bytes: number;
  max_rooms: number;
  sends_per_second: number;
  joins_per_second: number;
}

export type Status = "online" | "away";

export interface Member extends User {
  status: Status;
}

// ---- the protocol: commands (client → server) -------------------------------------

interface WithRef {
  ref?: string;
}
export type Command = WithRef &
  (
    | { type: "auth"; token: string }
    | { type: "refresh"; token: string }
    | { type: "join"; room: string; history?: number; epoch?: number; after?: number }
    | { type: "leave"; room: string }
    | { type: "send"; room: string; body: string; client_msg_id?: string; mentions?: string[]; attachments?: string[] }
    | { type: "edit"; room: string; seq: number; id?: string; body: string }
    | { type: "delete"; room: string; seq: number; id?: string }
    | { type: "react"; room: string; seq: number; emoji: string }
    | { type: "unreact"; room: string; seq: number; emoji: string }
    | { type: "history"; room: string; before?: number; epoch?: number; before_id?: string; limit?: number }
    | { type: "search"; q: string; rooms?: string[]; limit?: number; offset?: number }
    | { type: "typing"; room: string; state?: "start" | "stop" }
    | { type: "read"; room: string; seq: number }
    | { type: "receipts"; room: string }
    | { type: "presence"; room: string }
    | { type: "status"; status: Status }
    | { type: "dm"; user: string }
    | { type: "draft"; room: string; text: string }
    | { type: "drafts" }
    | { type: "ping" }
  );

// ---- the protocol: events (server → client) ------------------------------------

export interface WelcomeEvent {
  type: "welcome";
  node: string;
  conn: string;
  user: User | null;
  token_expires_at?: number;
  encoding: "json" | "msgpack";
  ping_interval_secs: number;
  pong_timeout_secs: number;
  auth_timeout_secs?: number;
  limits: Limits;
}
export interface AuthenticatedEvent { type: "authenticated"; user: User; token_expires_at: number; ref?: string }
export interface RefreshedEvent { type: "refreshed"; token_expires_at: number; ref?: string }
export interface JoinedEvent {
  type: "joined";
  room: string;
  epoch: number;
  seq: number;
  recovered?: boolean;
  read_seq?: number;
  unread: number;
  ref?: string;
}
export interface LeftEvent { type: "left"; room: string; reason?: "forbidden"; ref?: string }
export interface MessageEvent extends Message { type: "message" }
export interface EditedEvent { type: "edited"; room: string; seq: number; target: number; body: string; by: User; ts: number }
export interface DeletedEvent { type: "deleted"; room: string; seq: number; target: number; by: User; ts: number }
export interface ReactionEvent {
  type: "reaction";
  room: string;
  seq: number;
  target: number;
  emoji: string;
  user: User;
  action: "add" | "remove";
}
export interface ChangedEvent { type: "changed"; room: string; target: number; seq?: number; ref?: string }
export interface MentionEvent { type: "mention"; room: string; message: Message }
export interface SentEvent { type: "sent"; room: string; id: string; ts: number; seq: number; duplicate?: boolean; ref?: string }
export interface SearchEvent { type: "search"; q: string; hits: SearchHit[]; more: boolean; ref?: string }
export interface HistoryEvent { type: "history"; room: string; epoch: number; messages: Message[]; more: boolean; ref?: string }
export interface ResetEvent {
  type: "reset";
  room: string;
  epoch: number;
  seq: number;
  reason: "epoch_changed" | "history_trimmed" | "history_rewound";
}
export interface TypingEvent { type: "typing"; room: string; user: User; state: "start" | "stop"; expires_in_ms: number }
export interface MarkedEvent { type: "marked"; room: string; seq: number; ref?: string }
export interface ReceiptEvent { type: "receipt"; room: string; user: User; seq: number }
export interface ReceiptsEvent { type: "receipts"; room: string; epoch: number; receipts: { user: string; seq: number }[]; ref?: string }
export interface DraftSavedEvent { type: "draft_saved"; room: string; ref?: string }
export interface DraftEvent { type: "draft"; room: string; text: string }
export interface DraftsEvent { type: "drafts"; drafts: { room: string; text: string }[]; ref?: string }
export interface PresenceEvent { type: "presence"; room: string; joins?: User[]; leaves?: User[] }
export interface MembersEvent { type: "members"; room: string; members: Member[]; total: number; ref?: string }
export interface StatusEvent { type: "status"; room?: string; user: User; status: Status }
export interface StatusSetEvent { type: "status_set"; status: Status; ref?: string }
export interface DmStartedEvent { type: "dm_started"; room: string; by: User }
export interface NotificationEvent { type: "notification"; room: string; message: Message }
export interface PongEvent { type: "pong"; ref?: string }
export interface ErrorEvent {
  type: "error";
  code: ErrorCode;
  message: string;
  ref?: string;
  room?: string;
  retry_after_ms?: number;
}

export type ServerEvent =
  | WelcomeEvent | AuthenticatedEvent | RefreshedEvent | JoinedEvent | LeftEvent | MessageEvent
  | EditedEvent | DeletedEvent | ReactionEvent | ChangedEvent | MentionEvent | SentEvent
  | HistoryEvent | SearchEvent | ResetEvent | TypingEvent | MarkedEvent | ReceiptEvent | ReceiptsEvent
  | DraftSavedEvent | DraftEvent | DraftsEvent | PresenceEvent | MembersEvent | StatusEvent
  | StatusSetEvent | DmStartedEvent | NotificationEvent | PongEvent | ErrorEvent;

/** Every `code` of an `error` event (docs/protocol.md, "error"). */
export type ErrorCode =
  | "malformed_frame" | "unknown_command" | "invalid_command" | "invalid_room" | "invalid_ref"
  | "empty_body" | "body_too_large" | "not_joined" | "already_joined" | "too_many_rooms"
  | "unauthenticated" | "invalid_token" | "token_expired" | "token_revoked" | "already_authenticated"
  | "forbidden" | "rate_limited" | "too_many_connections" | "backplane_unavailable" | "unknown_message"
  | "not_your_message" | "message_deleted" | "too_many_reactions" | "too_many_mentions"
  | "too_many_attachments" | "unknown_attachment" | "store_unavailable" | "archive_unavailable" | "beyond_head"
  | "too_many_drafts" | "rejected" | "hook_unavailable" | "internal";

/** Codes of this client's own failures (ChorusError.code). */
export type ClientErrorCode =
  | "closed" | "disconnected" | "queue_full" | "timeout" | "token_unavailable";

/** Every WebSocket close code docs/protocol.md lists. */
export type CloseCode =
  | 1000 | 1002 | 1007 | 1009 | 1011
  | 4000 | 4001 | 4002 | 4003 | 4004 | 4005 | 4006 | 4007
  | 4500 | 4501 | 4502;

// ---- the SDK ---------------------------------------------------------------------------

export interface CloseCodeInfo {
  code: number;
  /** "yes": with backoff; "token": only with a new token from getToken; "no": stop. */
  reconnect: "yes" | "token" | "no";
  meaning: string;
  minDelayMs?: number;
  maxDelayMs?: number;
}
export declare const CLOSE_CODES: Readonly<Record<number, Omit<CloseCodeInfo, "code">>>;
export declare function closeCodeInfo(code: number): CloseCodeInfo;

export declare const SUBPROTOCOL: "chorus.json";

export declare class ChorusError extends Error {
  readonly code: ErrorCode | ClientErrorCode;
  readonly room?: string;
  readonly retryAfterMs?: number;
  /** For `closed` after a close code that forbids reconnecting. */
  readonly closeCode?: number;
}

/** Minimal WebSocket constructor (the browser's, Node's, or the `ws` package's). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface ClientOptions {
  /** The WebSocket URL: `wss://chat.example.com/ws`. */
  url: string;
  /** A fixed token; with it alone, an expired or refused token ends the client. */
  token?: string;
  /** Gives a (new) token: called to connect, before expiry, and after 4003/4500/4502. */
  getToken?: () => Promise<string> | string;
  /** Default: globalThis.WebSocket. */
  WebSocket?: WebSocketConstructor;
  /** Backoff bounds (full jitter between 0 and min(max, min * 2^attempt)). Default 500 / 15000. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** How long a command waits for its answer, queued time included. Default 30000. */
  requestTimeoutMs?: number;
  /** Sends waiting for `sent` at most (then `queue_full`). Default 100. */
  maxQueuedSends?: number;
  /** Commands waiting for a connection at most (then `queue_full`). Default 100. */
  maxQueuedCommands?: number;
  /** With getToken: refresh this long before expiry (or halfway, if sooner); -1: never. Default 60000. */
  refreshBeforeMs?: number;
  /** Ping after this much quiet, and reconnect without an answer in heartbeatTimeoutMs; 0: off. */
  heartbeatMs?: number;
  heartbeatTimeoutMs?: number;
  /** Messages of history on a first join. Default 50. */
  history?: number;
}

export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "disconnected";

export interface StateEvent {
  state: ConnectionState;
  /** connected */
  node?: string;
  conn?: string;
  /** reconnecting */
  attempt?: number;
  delayMs?: number;
  /** disconnected */
  code?: number;
  reason?: string;
  meaning?: string;
  willReconnect?: boolean;
}

export interface ClientEvents {
  state: StateEvent;
  connecting: StateEvent;
  connected: StateEvent;
  reconnecting: StateEvent;
  disconnected: StateEvent;
  /** The token was refreshed on the live connection. */
  token: { expiresAt: number };
  mention: MentionEvent;
  notification: NotificationEvent;
  dm: DmStartedEvent;
  draft: DraftEvent;
  /** This user's own status, set from one of their connections. */
  status: StatusEvent;
  error: ChorusError;
  /** Every server event, raw (a message or change dropped as a repeat is left out). */
  event: ServerEvent;
}

export interface Sent extends SentEvent {
  body: string;
  mentions: string[];
  attachments: string[];
  client_msg_id: string;
  from: User | null;
}

export interface SendOptions {
  mentions?: string[];
  /** Ids of files uploaded to the room (POST /api/v1/rooms/{room}/files). */
  attachments?: string[];
  /** Your own id for the message (default: a random one). */
  clientMsgId?: string;
}

export interface RoomReset {
  room: string;
  reason: "not_recovered" | "epoch_changed" | "history_trimmed" | "history_rewound";
  recovered: false;
  /** The room's numbering from now on, and its last seq when the gap was noticed. */
  epoch: number;
  seq: number;
  /** Where this client was: entries after it may be missing. */
  lost: { epoch: number | null; after: number };
}

export interface RoomEvents {
  joined: { room: string; epoch: number; seq: number; recovered?: boolean };
  message: Message;
  edited: EditedEvent;
  deleted: DeletedEvent;
  reaction: ReactionEvent;
  reset: RoomReset;
  typing: { room: string; users: User[] };
  presence: { room: string; joins: User[]; leaves: User[] };
  status: StatusEvent;
  receipt: ReceiptEvent;
  unread: { room: string; unread: number; readSeq: number };
  left: LeftEvent;
  error: ErrorEvent;
}

declare class Emitter<Events> {
  on<K extends keyof Events>(type: K, listener: (event: Events[K]) => void): () => void;
  once<K extends keyof Events>(type: K, listener: (event: Events[K]) => void): () => void;
  off<K extends keyof Events>(type: K, listener: (event: Events[K]) => void): void;
}

export declare class Room extends Emitter<RoomEvents> {
  readonly name: string;
  readonly epoch: number | null;
  readonly seq: number;
  readonly oldest: number | null;
  readonly joined: boolean;
  readonly unread: number;
  readonly readSeq: number | null;
  readonly members: Map<string, Member>;
  readonly typing: Map<string, User>;
  /** Resolves once joined the first time; rejects when the join is refused. */
  readonly ready: Promise<Room>;
  send(body: string, options?: SendOptions): Promise<Sent>;
  older(options?: { limit?: number }): Promise<{ messages: Message[]; more: boolean }>;
  edit(seq: number, body: string, options?: { id?: string }): Promise<ChangedEvent>;
  delete(seq: number, options?: { id?: string }): Promise<ChangedEvent>;
  react(seq: number, emoji: string): Promise<ChangedEvent>;
  unreact(seq: number, emoji: string): Promise<ChangedEvent>;
  markRead(seq?: number): Promise<number>;
  receipts(): Promise<{ user: string; seq: number }[]>;
  startTyping(): void;
  stopTyping(): void;
  saveDraft(text: string): Promise<void>;
  leave(): Promise<void>;
}

export declare class Client extends Emitter<ClientEvents> {
  constructor(options: ClientOptions);
  readonly options: Required<Omit<ClientOptions, "token" | "getToken" | "WebSocket">> & ClientOptions;
  readonly state: ConnectionState;
  readonly connected: boolean;
  readonly user: User | null;
  readonly node: string | null;
  readonly conn: string | null;
  readonly limits: Limits | null;
  readonly tokenExpiresAt: number | null;
  readonly rooms: Map<string, Room>;
  readonly pendingSends: { id: string; room: string; body: string }[];
  open(): void;
  close(): void;
  /** While waiting to reconnect: try now (e.g. on the browser's `online` event). */
  reconnectNow(): void;
  join(name: string, options?: { history?: number }): Room;
  dm(user: string): Promise<Room>;
  search(q: string, options?: { rooms?: string[]; limit?: number; offset?: number }): Promise<{ q: string; hits: SearchHit[]; more: boolean }>;
  drafts(): Promise<{ room: string; text: string }[]>;
  setStatus(status: Status): Promise<void>;
  /** A raw command; resolves with the event answering it. */
  request(command: Command, options?: { retry?: boolean }): Promise<ServerEvent>;
}

/** Creates a client and connects it. */
export declare function connect(options: ClientOptions): Client;
export declare function randomId(): string;
