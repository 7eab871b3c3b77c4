//! Calling Redis and reading its answers: every failure becomes a typed
//! [`BackplaneError`] naming the operation, an outage told apart from a reply
//! this node cannot read.

use bytes::Bytes;
use fred::{
    clients::Client,
    error::{Error, ErrorKind},
    prelude::Value,
    types::scripts::Script,
};

use crate::{BackplaneError, Outage};

/// What a script does when Redis is out of memory (`maxmemory` reached with
/// `noeviction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WhenFull {
    /// Refused before it starts: a script that stores things either runs
    /// whole or not at all (a legacy script would be stopped at its first
    /// write that needs memory, after the writes before it).
    Refuse,
    /// Runs anyway: reads (which may create a room's epoch) and the node
    /// registry keep working while Redis refuses new messages.
    Run,
}

/// A Lua script and the operation it carries out (for errors and logs).
pub(super) struct OpScript {
    /// The script, loaded on first use and again after a Redis restart.
    script: Script,
    /// What it does, as errors name it.
    op: &'static str,
}

impl OpScript {
    /// The script `body` for operation `op`, declared (with a shebang) to be
    /// refused or run when Redis is out of memory.
    pub(super) fn new(op: &'static str, when_full: WhenFull, body: &str) -> Self {
        Self::with_flags(op, when_full, &[], body)
    }

    /// Like [`OpScript::new`], with more script `flags` in the shebang.
    pub(super) fn with_flags(
        op: &'static str,
        when_full: WhenFull,
        flags: &[&str],
        body: &str,
    ) -> Self {
        let mut all: Vec<&str> = match when_full {
            WhenFull::Refuse => vec![],
            WhenFull::Run => vec!["allow-oom"],
        };
        all.extend(flags);
        let shebang = match all.is_empty() {
            true => "#!lua".to_owned(),
            false => format!("#!lua flags={}", all.join(",")),
        };
        Self {
            script: Script::from_lua(format!("{shebang}\n{body}")),
            op,
        }
    }

    /// Like [`OpScript::new`], for a script that publishes: `publish` (see
    /// `Sharding::script_prelude`) names the command it calls as `PUBLISH`.
    pub(super) fn publishing(
        op: &'static str,
        when_full: WhenFull,
        body: &str,
        publish: &str,
    ) -> Self {
        Self::with_flags(op, when_full, &[], &format!("{publish}\n{body}"))
    }

    /// Runs the script and returns its raw answer.
    pub(super) async fn call(
        &self,
        client: &Client,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<Value, BackplaneError> {
        self.script
            .evalsha_with_reload(client, keys, args)
            .await
            .map_err(failed(self.op))
    }

    /// Runs the script and reads its answer as an array.
    pub(super) async fn call_reply(
        &self,
        client: &Client,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<Reply, BackplaneError> {
        let answer = self.call(client, keys, args).await?;
        Reply::new(self.op, answer)
    }
}

/// Turns a fred error of operation `op` into a [`BackplaneError`].
pub(super) fn failed(op: &'static str) -> impl FnOnce(Error) -> BackplaneError {
    move |error| {
        let details = error.details().to_string();
        match error.kind() {
            ErrorKind::Timeout => BackplaneError::unavailable(op, Outage::Timeout),
            ErrorKind::Parse | ErrorKind::Protocol | ErrorKind::NotFound => {
                BackplaneError::bad_reply(op, details)
            }
            ErrorKind::Config | ErrorKind::Url => BackplaneError::Config(details),
            _ if details.starts_with("OOM ") => {
                BackplaneError::unavailable(op, Outage::OutOfMemory)
            }
            // Errors the server answered with: out of memory, no permission,
            // a read-only replica, a script error.
            ErrorKind::Unknown
            | ErrorKind::Auth
            | ErrorKind::InvalidCommand
            | ErrorKind::InvalidArgument => {
                BackplaneError::unavailable(op, Outage::Refused(details))
            }
            _ => BackplaneError::unavailable(op, Outage::Connection(details)),
        }
    }
}

/// An array reply, read one field at a time. A missing or mistyped field is a
/// [`BackplaneError::BadReply`] that names the operation and the field.
pub(super) struct Reply {
    /// The operation that answered.
    op: &'static str,
    /// The fields not read yet.
    fields: std::vec::IntoIter<Value>,
}

impl Reply {
    /// Reads `value` (the answer to `op`) as an array; nil is an empty one.
    pub(super) fn new(op: &'static str, value: Value) -> Result<Self, BackplaneError> {
        Ok(Self {
            op,
            fields: array(op, value)?.into_iter(),
        })
    }

    /// The next field, as it came.
    pub(super) fn value(&mut self, what: &str) -> Result<Value, BackplaneError> {
        self.fields.next().ok_or_else(|| self.bad(what))
    }

    /// The next field as bytes (a string reply).
    pub(super) fn bytes(&mut self, what: &str) -> Result<Bytes, BackplaneError> {
        let value = self.value(what)?;
        bytes_of(value).ok_or_else(|| self.bad(what))
    }

    /// The next field as a non-negative number (an integer or a decimal string).
    pub(super) fn number(&mut self, what: &str) -> Result<u64, BackplaneError> {
        let value = self.value(what)?;
        number(&value).ok_or_else(|| self.bad(what))
    }

    /// The next field as an array.
    pub(super) fn array(&mut self, what: &str) -> Result<Vec<Value>, BackplaneError> {
        let value = self.value(what)?;
        array(self.op, value)
    }

    /// Whatever fields are left.
    pub(super) fn rest(self) -> std::vec::IntoIter<Value> {
        self.fields
    }

    /// The error for a field `what` that is missing or not what was expected.
    pub(super) fn bad(&self, what: &str) -> BackplaneError {
        BackplaneError::bad_reply(self.op, format!("field {what}"))
    }
}

/// `value` as an array (nil: empty).
pub(super) fn array(op: &'static str, value: Value) -> Result<Vec<Value>, BackplaneError> {
    match value {
        Value::Array(values) => Ok(values),
        Value::Null => Ok(Vec::new()),
        other => Err(BackplaneError::bad_reply(
            op,
            format!("expected an array, got {:?}", other.kind()),
        )),
    }
}

/// The bytes of a string reply.
pub(super) fn bytes_of(value: Value) -> Option<Bytes> {
    match value {
        Value::Bytes(bytes) => Some(bytes),
        Value::String(text) => Some(text.into_inner()),
        _ => None,
    }
}

/// The bytes of a string reply, borrowed (for comparisons).
pub(super) fn text_of(value: &Value) -> Option<&[u8]> {
    match value {
        Value::Bytes(bytes) => Some(bytes),
        Value::String(text) => Some(text.as_bytes()),
        _ => None,
    }
}

/// A non-negative integer reply, or a decimal string of one.
pub(super) fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Integer(n) => u64::try_from(*n).ok(),
        other => decimal(text_of(other)?),
    }
}

/// A non-negative decimal number written in ASCII.
pub(super) fn decimal(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A duration as a script argument: whole milliseconds, at least 1.
pub(super) fn millis(duration: std::time::Duration) -> String {
    duration.as_millis().max(1).to_string()
}

/// A configuration error (fred's words: they never echo the URL).
pub(super) fn config_error(e: impl std::fmt::Display) -> BackplaneError {
    BackplaneError::Config(e.to_string())
}
