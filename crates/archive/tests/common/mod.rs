//! What the archive's tests share: a migrated archive on a test PostgreSQL,
//! and log entries to append.

#![allow(dead_code)]

use std::time::Duration;

use chorus_archive::{Archive, ArchiveSettings, Entry, EntryBody};
use chorus_protocol::{ChangeKind, ChatMessage, MessageChange, RoomName, Sender};
use chorus_testkit::Postgres;
use uuid::Uuid;

pub fn settings(db: &Postgres) -> ArchiveSettings {
    ArchiveSettings {
        pool_size: 4,
        connect_timeout: Duration::from_secs(2),
        ..ArchiveSettings::new(db.url())
    }
}

pub async fn archive(db: &Postgres) -> Archive {
    let archive = Archive::new(&settings(db)).unwrap();
    archive.migrate().await.unwrap();
    archive
}

pub fn user(id: &str) -> Sender {
    Sender {
        id: id.into(),
        name: None,
        avatar: None,
        kind: None,
    }
}

pub fn message(room: &str, seq: u64, body: &str) -> Entry {
    Entry {
        seq,
        body: EntryBody::Message(Box::new(ChatMessage {
            id: Uuid::now_v7(),
            room: RoomName::parse(room).unwrap(),
            from: user("ada"),
            ts: 1_800_000_000_000 + seq,
            body: body.into(),
            seq,
            epoch: None,
            mentions: Vec::new(),
            edited: None,
            deleted: false,
            reactions: Vec::new(),
            attachments: Vec::new(),
        })),
    }
}

pub fn change(room: &str, seq: u64, target: u64, by: &str, kind: ChangeKind) -> Entry {
    Entry {
        seq,
        body: EntryBody::Change(MessageChange {
            room: RoomName::parse(room).unwrap(),
            target,
            by: user(by),
            ts: 1_800_000_100_000 + seq,
            kind,
        }),
    }
}
