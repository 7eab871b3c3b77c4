//! The protocols the clients speak: Chorus's JSON commands, the gorilla hub's
//! raw text lines, and Socket.IO's Engine.IO v4 packets over a WebSocket. What
//! to send, how to finish the handshake, and how to read what arrives, without
//! parsing whole JSON documents on the hot path.

use anyhow::{Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::{client::Socket, scenario::Target};

/// What one text frame from the server was.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Chat messages, each with the send time its body carries (µs since
    /// the Unix epoch) and its room sequence when the protocol has one.
    Messages(Vec<Delivery>),
    /// An Engine.IO ping the client must answer with [`PONG`].
    Ping,
    /// A change to an earlier message (edit, delete, reaction): it takes a
    /// room sequence number of its own but is not a delivery.
    Change { seq: u64 },
    /// An error the server answered with.
    Error,
    /// Anything else (acknowledgements, presence, ...).
    Other,
}

/// One delivered chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The scheduled send time from the body.
    pub sent_us: Option<u64>,
    /// The room sequence (Chorus only).
    pub seq: Option<u64>,
}

/// Engine.IO's answer to a ping.
pub const PONG: &str = "3";

/// The URL to upgrade on: Chorus takes the token in the query; the peers do not.
pub fn upgrade_url(target: Target, url: &str, token: &str) -> String {
    match target {
        Target::Chorus => format!("{url}?token={token}"),
        Target::Gorilla | Target::SocketIo => url.to_owned(),
    }
}

/// Where a Chorus client is in a room: the room's numbering and the last
/// sequence it has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// The room's `epoch`.
    pub epoch: u64,
    /// The last `seq` seen.
    pub seq: u64,
}

/// What the join reply said (Chorus only).
#[derive(Debug, Clone, Copy, Default)]
pub struct Joined {
    /// The room's epoch and head sequence when the join was served.
    pub position: Option<Position>,
    /// Whether a resume got exactly the missed messages.
    pub recovered: bool,
}

/// After the upgrade: authenticate (Socket.IO) and join `room`, resuming after
/// `resume` (Chorus) when given.
pub async fn handshake(
    ws: &mut Socket,
    target: Target,
    token: &str,
    room: Option<&str>,
    resume: Option<Position>,
) -> Result<Joined> {
    match target {
        Target::Gorilla => Ok(Joined::default()),
        Target::Chorus => {
            let Some(room) = room else {
                return Ok(Joined::default());
            };
            let join = match resume {
                Some(Position { epoch, seq }) => format!(
                    r#"{{"type":"join","room":"{room}","epoch":{epoch},"after":{seq},"history":0}}"#
                ),
                None => format!(r#"{{"type":"join","room":"{room}","history":0}}"#),
            };
            ws.send(Message::Text(join.into())).await?;
            let joined = wait_for(ws, target, |t| t.contains(r#""type":"joined""#)).await?;
            let epoch = number_after(&joined, r#""epoch":"#);
            let seq = number_after(&joined, r#""seq":"#);
            Ok(Joined {
                position: epoch.zip(seq).map(|(epoch, seq)| Position { epoch, seq }),
                recovered: joined.contains(r#""recovered":true"#),
            })
        }
        Target::SocketIo => {
            wait_for(ws, target, |t| t.starts_with('0')).await?;
            let connect = format!(r#"40{{"token":"{token}"}}"#);
            ws.send(Message::Text(connect.into())).await?;
            wait_for(ws, target, |t| t.starts_with("40")).await?;
            if let Some(room) = room {
                let join = format!(r#"420["join","{room}"]"#);
                ws.send(Message::Text(join.into())).await?;
                wait_for(ws, target, |t| t.starts_with("430")).await?;
            }
            Ok(Joined::default())
        }
    }
}

/// Reads frames (answering pings) until one satisfies `done`; fails on an error.
async fn wait_for(ws: &mut Socket, target: Target, done: impl Fn(&str) -> bool) -> Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                if done(&text) {
                    return Ok(text.to_string());
                }
                match read(target, &text) {
                    Incoming::Error => bail!("refused: {text}"),
                    Incoming::Ping => ws.send(Message::Text(PONG.into())).await?,
                    _ => {}
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err(anyhow!("closed during the handshake")),
        }
    }
}

/// The frame that sends `body` to `room`.
pub fn chat(target: Target, room: &str, body: &str) -> String {
    match target {
        Target::Chorus => format!(r#"{{"type":"send","room":"{room}","body":"{body}"}}"#),
        Target::Gorilla => body.to_owned(),
        Target::SocketIo => format!(r#"42["chat",{{"room":"{room}","body":"{body}"}}]"#),
    }
}

/// The events of changes, which take a room sequence number of their own.
const CHANGES: [&str; 3] = [
    r#""type":"edited""#,
    r#""type":"deleted""#,
    r#""type":"reaction""#,
];

/// What a text frame from the server is.
pub fn read(target: Target, text: &str) -> Incoming {
    match target {
        // The hub joins queued messages with newlines into one frame.
        Target::Gorilla => Incoming::Messages(
            text.split('\n')
                .filter_map(|line| line.get(..16)?.parse().ok())
                .map(|sent_us| Delivery {
                    sent_us: Some(sent_us),
                    seq: None,
                })
                .collect(),
        ),
        // A message edited since it was sent (in a resume's history) has lost
        // its send time but is a delivery all the same.
        Target::Chorus if text.contains(r#""type":"message""#) => {
            let sent_us = number_after(text, r#""body":""#);
            let seq = number_after(text, r#""seq":"#);
            if sent_us.is_none() && seq.is_none() {
                return Incoming::Other;
            }
            Incoming::Messages(vec![Delivery { sent_us, seq }])
        }
        Target::Chorus if CHANGES.iter().any(|change| text.contains(change)) => {
            match number_after(text, r#""seq":"#) {
                Some(seq) => Incoming::Change { seq },
                None => Incoming::Other,
            }
        }
        Target::Chorus if text.contains(r#""type":"error""#) => Incoming::Error,
        Target::Chorus => Incoming::Other,
        Target::SocketIo if text == "2" => Incoming::Ping,
        Target::SocketIo if text.starts_with(r#"42["message""#) => {
            match number_after(text, r#""body":""#) {
                Some(sent_us) => Incoming::Messages(vec![Delivery {
                    sent_us: Some(sent_us),
                    seq: None,
                }]),
                None => Incoming::Other,
            }
        }
        // A connect error, or an acknowledgement carrying one.
        Target::SocketIo if text.starts_with("44") || text.contains(r#""error":"#) => {
            Incoming::Error
        }
        Target::SocketIo => Incoming::Other,
    }
}

/// The decimal number right after the first `key` in `text`.
pub fn number_after(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let digits = text[start..].bytes().take_while(u8::is_ascii_digit).count();
    text[start..start + digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{Delivery, Incoming, read};
    use crate::scenario::Target;

    fn one(sent_us: u64, seq: Option<u64>) -> Incoming {
        Incoming::Messages(vec![Delivery {
            sent_us: Some(sent_us),
            seq,
        }])
    }

    #[test]
    fn reads_chorus_events() {
        let event = r#"{"type":"message","id":"x","room":"big","from":{"id":"u"},"ts":1,"body":"0001732380000123:00000007:0000000003:xxxx","seq":4}"#;
        assert_eq!(read(Target::Chorus, event), one(1_732_380_000_123, Some(4)));
        assert_eq!(
            read(Target::Chorus, r#"{"type":"sent","body":"0001"}"#),
            Incoming::Other
        );
        assert_eq!(
            read(Target::Chorus, r#"{"type":"error","code":"rate_limited"}"#),
            Incoming::Error
        );
        let since_edited = r#"{"type":"message","id":"x","room":"big","body":"edited by its sender","seq":41,"edited":2}"#;
        assert_eq!(
            read(Target::Chorus, since_edited),
            Incoming::Messages(vec![Delivery {
                sent_us: None,
                seq: Some(41)
            }])
        );
        let edit =
            r#"{"type":"edited","room":"big","seq":57,"target":42,"body":"0001","by":{"id":"u"}}"#;
        assert_eq!(read(Target::Chorus, edit), Incoming::Change { seq: 57 });
    }

    #[test]
    fn reads_socketio_packets() {
        let event =
            r#"42["message",{"room":"big","from":"lg-1","body":"0001732380000123:00000007:x"}]"#;
        assert_eq!(read(Target::SocketIo, event), one(1_732_380_000_123, None));
        assert_eq!(read(Target::SocketIo, "2"), Incoming::Ping);
        assert_eq!(
            read(Target::SocketIo, r#"44{"message":"unauthorized"}"#),
            Incoming::Error
        );
        assert_eq!(
            read(Target::SocketIo, r#"431[{"error":"not_joined"}]"#),
            Incoming::Error
        );
        assert_eq!(
            read(Target::SocketIo, r#"430[{"ok":true}]"#),
            Incoming::Other
        );
    }

    #[test]
    fn reads_gorilla_lines() {
        let frame = "0000000000000010:a\n0000000000000020:b";
        let Incoming::Messages(all) = read(Target::Gorilla, frame) else {
            panic!("messages expected");
        };
        assert_eq!(
            all.iter().map(|d| d.sent_us).collect::<Vec<_>>(),
            [Some(10), Some(20)]
        );
    }
}
