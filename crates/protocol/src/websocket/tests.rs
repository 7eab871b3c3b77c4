use proptest::prelude::*;

use super::*;

/// A client frame: `payload` masked with `mask`.
fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let (header, used) = server_header(opcode, payload.len());
    let mut frame = header[..used].to_vec();
    if !fin {
        frame[0] &= 0x7F;
    }
    frame[1] |= 0x80;
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

fn feed_all(decoder: &mut Decoder, bytes: &[u8]) -> Result<Vec<Incoming>, FrameError> {
    let mut out = Vec::new();
    decoder.feed(bytes, &mut out)?;
    Ok(out)
}

#[test]
fn the_accept_key_is_the_rfc_example() {
    assert_eq!(
        accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn server_headers_use_the_shortest_length_form() {
    for (len, header_len, marker) in [
        (0, 2, 0),
        (125, 2, 125),
        (126, 4, 126),
        (65_535, 4, 126),
        (65_536, 10, 127),
    ] {
        let frame = server_frame(opcode::BINARY, &vec![7; len]);
        assert_eq!(frame.len(), header_len + len, "{len}");
        assert_eq!(frame[0], 0x82);
        assert_eq!(frame[1], marker as u8, "{len}");
    }
    let close = close_frame(4001, &"é".repeat(200));
    assert!(close.len() <= 2 + 125);
    assert_eq!(&close[2..4], &4001u16.to_be_bytes());
    assert!(
        std::str::from_utf8(&close[4..]).is_ok(),
        "cut on a char boundary"
    );
}

#[test]
fn rules_for_a_server_are_enforced() {
    let cases: [(Vec<u8>, FrameError); 8] = [
        (
            server_frame(opcode::TEXT, b"hi").to_vec(),
            FrameError::Protocol("client frames must be masked"),
        ),
        (
            {
                let mut f = client_frame(true, opcode::TEXT, b"hi", [1; 4]);
                f[0] |= 0x40;
                f
            },
            FrameError::Protocol("reserved bits set"),
        ),
        (
            client_frame(true, 0x3, b"", [1; 4]),
            FrameError::Protocol("unknown opcode"),
        ),
        (
            client_frame(false, opcode::PING, b"", [1; 4]),
            FrameError::Protocol("fragmented control frame"),
        ),
        (
            client_frame(true, opcode::PING, &[0; 126], [1; 4]),
            FrameError::Protocol("control frame over 125 bytes"),
        ),
        (
            client_frame(true, opcode::CONTINUATION, b"x", [1; 4]),
            FrameError::Protocol("a continuation without a message"),
        ),
        (
            client_frame(true, opcode::TEXT, &[0xFF, 0xFE], [1; 4]),
            FrameError::InvalidUtf8,
        ),
        (
            client_frame(true, opcode::CLOSE, &999u16.to_be_bytes(), [1; 4]),
            FrameError::Protocol("a close code that may not be sent"),
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(feed_all(&mut Decoder::new(1000), &bytes), Err(expected));
    }
}

#[test]
fn a_message_over_the_bound_is_refused_from_its_header_alone() {
    let mut decoder = Decoder::new(100);
    let frame = client_frame(true, opcode::TEXT, &[b'a'; 101], [3; 4]);
    assert_eq!(feed_all(&mut decoder, &frame[..4]), Err(FrameError::TooBig));
    assert_eq!(FrameError::TooBig.close_code(), 1009);
    // Fragments count together.
    let mut decoder = Decoder::new(100);
    let mut bytes = client_frame(false, opcode::TEXT, &[b'a'; 60], [3; 4]);
    bytes.extend(client_frame(
        true,
        opcode::CONTINUATION,
        &[b'a'; 60],
        [3; 4],
    ));
    assert_eq!(feed_all(&mut decoder, &bytes), Err(FrameError::TooBig));
}

#[test]
fn nothing_is_held_between_whole_frames() {
    let mut decoder = Decoder::new(1 << 16);
    let frame = client_frame(true, opcode::TEXT, &[b'x'; 3000], [9; 4]);
    assert!(feed_all(&mut decoder, &frame[..1000]).unwrap().is_empty());
    assert!(decoder.held() >= 1000);
    assert_eq!(feed_all(&mut decoder, &frame[1000..]).unwrap().len(), 1);
    assert_eq!(decoder.held(), 0, "an idle connection keeps no buffer");
}

/// What a client may send, as whole messages.
fn incoming() -> impl Strategy<Value = Incoming> {
    prop_oneof![
        ".{0,300}".prop_map(Incoming::Text),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Incoming::Binary),
        proptest::collection::vec(any::<u8>(), 0..125).prop_map(Incoming::Ping),
        Just(Incoming::Pong),
        prop_oneof![Just(None), Just(Some(1000u16)), Just(Some(4321u16))].prop_map(Incoming::Close),
    ]
}

/// `message` as client frames, data split into `pieces` fragments.
fn frames_of(message: &Incoming, pieces: usize, mask: [u8; 4]) -> Vec<u8> {
    let (opcode, payload) = match message {
        Incoming::Text(text) => (opcode::TEXT, text.as_bytes().to_vec()),
        Incoming::Binary(bytes) => (opcode::BINARY, bytes.clone()),
        Incoming::Ping(bytes) => return client_frame(true, opcode::PING, bytes, mask),
        Incoming::Pong => return client_frame(true, opcode::PONG, b"", mask),
        Incoming::Close(None) => return client_frame(true, opcode::CLOSE, b"", mask),
        Incoming::Close(Some(code)) => {
            return client_frame(true, opcode::CLOSE, &code.to_be_bytes(), mask);
        }
    };
    let size = payload.len().div_ceil(pieces).max(1);
    let chunks: Vec<&[u8]> = if payload.is_empty() {
        vec![&[]]
    } else {
        payload.chunks(size).collect()
    };
    let mut bytes = Vec::new();
    for (index, chunk) in chunks.iter().enumerate() {
        let code = if index == 0 {
            opcode
        } else {
            opcode::CONTINUATION
        };
        bytes.extend(client_frame(index + 1 == chunks.len(), code, chunk, mask));
    }
    bytes
}

proptest! {
    #[test]
    fn any_split_of_any_stream_decodes_to_the_messages_sent(
        messages in proptest::collection::vec((incoming(), 1usize..4, any::<[u8; 4]>()), 0..12),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut stream = Vec::new();
        for (message, pieces, mask) in &messages {
            stream.extend(frames_of(message, *pieces, *mask));
        }
        let mut points: Vec<usize> = cuts.iter().map(|cut| cut.index(stream.len() + 1)).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();
        let mut decoder = Decoder::new(1000);
        let mut out = Vec::new();
        for pair in points.windows(2) {
            decoder.feed(&stream[pair[0]..pair[1]], &mut out).unwrap();
        }
        let sent: Vec<Incoming> = messages.into_iter().map(|(message, _, _)| message).collect();
        prop_assert_eq!(out, sent);
        prop_assert_eq!(decoder.held(), 0);
    }

    #[test]
    fn any_bytes_decode_or_fail_with_a_code_and_hold_at_most_a_frame(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..6),
    ) {
        let mut decoder = Decoder::new(500);
        let mut out = Vec::new();
        for chunk in &chunks {
            match decoder.feed(chunk, &mut out) {
                Ok(()) => prop_assert!(decoder.held() <= 2 * (500 + 14) + 200),
                Err(error) => {
                    prop_assert!([1002, 1007, 1009].contains(&error.close_code()));
                    break;
                }
            }
        }
    }
}
