//! What a room's channel carries: one stored message,
//! `<epoch>:<seq>:<envelope>`, or a run of consecutive ones stored by one
//! publish call, `<epoch>:<first seq>+<count>:` followed by
//! `<length>:<envelope>` for each. A signal is a message numbered `0:0`.

use bytes::Bytes;

/// Reads a relayed payload and hands each message in it to `each` as
/// `(epoch, seq, envelope)`, in order. A payload that is not well formed is
/// refused whole (`false`, nothing handed on): the nodes repair the gap from
/// the history.
pub(super) fn each_relayed(payload: Bytes, mut each: impl FnMut(u64, u64, Bytes)) -> bool {
    let Some((epoch, epoch_end)) = number_until(&payload, 0, b':') else {
        return false;
    };
    let seq_start = epoch_end + 1;
    let Some((seq, seq_end)) = number_until(&payload, seq_start, b':') else {
        return run(payload, epoch, seq_start, each);
    };
    each(epoch, seq, payload.slice(seq_end + 1..));
    true
}

/// A run: `<first>+<count>:` at `start`, then the counted envelopes.
fn run(payload: Bytes, epoch: u64, start: usize, mut each: impl FnMut(u64, u64, Bytes)) -> bool {
    let Some((first, plus)) = number_until(&payload, start, b'+') else {
        return false;
    };
    let Some((count, mut at)) = number_until(&payload, plus + 1, b':') else {
        return false;
    };
    at += 1;
    // Checked whole before anything is handed on.
    let mut envelopes = Vec::with_capacity(count.min(64) as usize);
    for _ in 0..count {
        let Some((length, colon)) = number_until(&payload, at, b':') else {
            return false;
        };
        let end = (colon + 1).checked_add(length as usize);
        match end {
            Some(end) if end <= payload.len() => {
                envelopes.push(colon + 1..end);
                at = end;
            }
            _ => return false,
        }
    }
    if at != payload.len() || count < 2 {
        return false;
    }
    for (seq, range) in (first..).zip(envelopes) {
        each(epoch, seq, payload.slice(range));
    }
    true
}

/// The decimal number from `start` up to the first `end` byte, and where that
/// byte is. Digits only, at most 20 of them.
fn number_until(payload: &[u8], start: usize, end: u8) -> Option<(u64, usize)> {
    let rest = payload.get(start..)?;
    let length = rest.iter().take(21).position(|b| *b == end)?;
    let digits = &rest[..length];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((number, start + length))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parsed(payload: &'static [u8]) -> Option<Vec<(u64, u64, Bytes)>> {
        let mut out = Vec::new();
        each_relayed(Bytes::from_static(payload), |e, s, p| out.push((e, s, p))).then_some(out)
    }

    #[test]
    fn one_message() {
        let one = parsed(b"1700000000000001:42:\x81a:b").unwrap();
        let envelope = Bytes::from_static(b"\x81a:b");
        assert_eq!(one, vec![(1_700_000_000_000_001, 42, envelope)]);
        assert_eq!(parsed(b"0:0:").unwrap(), vec![(0, 0, Bytes::new())]);
    }

    #[test]
    fn a_run_of_messages() {
        let run = parsed(b"7:41+3:2:ab0:4:c:de").unwrap();
        let expected = [(7, 41, &b"ab"[..]), (7, 42, b""), (7, 43, b"c:de")];
        let expected: Vec<_> = expected
            .iter()
            .map(|(e, s, p)| (*e, *s, Bytes::copy_from_slice(p)))
            .collect();
        assert_eq!(run, expected);
    }

    #[test]
    fn malformed_payloads_are_refused_whole() {
        for bad in [
            &b"garbage"[..],
            b"1:x:",
            b":1:",
            b"7:41+3:2:ab0:",              // one envelope short
            b"7:41+2:2:ab0:x",             // bytes left over
            b"7:41+2:9:ab0:",              // a length past the end
            b"7:41+1:2:ab",                // a run of one
            b"7:41+:2:ab",                 // no count
            b"7:+2:2:ab0:",                // no first seq
            b"99999999999999999999999:1:", // too long a number
        ] {
            let mut handed = 0;
            let payload = Bytes::copy_from_slice(bad);
            assert!(!each_relayed(payload, |_, _, _| handed += 1), "{bad:?}");
            assert_eq!(handed, 0, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn runs_read_back_as_written(
            epoch in 1u64..u64::MAX,
            first in 1u64..u64::MAX / 2,
            envelopes in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 2..10),
        ) {
            let mut payload = format!("{epoch}:{first}+{}:", envelopes.len()).into_bytes();
            for envelope in &envelopes {
                payload.extend_from_slice(format!("{}:", envelope.len()).as_bytes());
                payload.extend_from_slice(envelope);
            }
            let mut out = Vec::new();
            prop_assert!(each_relayed(Bytes::from(payload), |e, s, p| out.push((e, s, p.to_vec()))));
            let expected: Vec<_> = envelopes.into_iter().enumerate()
                .map(|(i, p)| (epoch, first + i as u64, p)).collect();
            prop_assert_eq!(out, expected);
        }

        #[test]
        fn any_payload_is_read_or_refused_without_panicking(payload in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = each_relayed(Bytes::from(payload), |_, _, _| {});
        }
    }
}
