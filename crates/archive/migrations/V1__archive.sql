-- Chorus's archive: one row per message in its current state (edits,
-- deletes and reactions applied), and per room how far it is archived.

CREATE TABLE chorus_rooms (
    room        text        PRIMARY KEY,
    -- The room's numbering and the last entry (message or change) archived.
    epoch       bigint      NOT NULL,
    seq         bigint      NOT NULL,
    -- Entries that were gone from Redis before they could be archived.
    lost        bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE chorus_messages (
    room        text        NOT NULL,
    epoch       bigint      NOT NULL,
    seq         bigint      NOT NULL,
    id          uuid        NOT NULL,
    sender      text        NOT NULL,
    -- Acceptance time, ms since the Unix epoch.
    ts          bigint      NOT NULL,
    deleted     boolean     NOT NULL DEFAULT false,
    -- The message as the protocol shows it (docs/protocol.md "message").
    message     jsonb       NOT NULL,
    -- Its current text, for full-text search (empty once deleted).
    search      tsvector    NOT NULL,
    PRIMARY KEY (room, epoch, seq)
);

CREATE UNIQUE INDEX chorus_messages_id ON chorus_messages (id);
CREATE INDEX chorus_messages_sender ON chorus_messages (sender);
CREATE INDEX chorus_messages_search ON chorus_messages USING gin (search);
