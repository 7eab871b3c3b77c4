//! The WebSocket decoder reads every byte a stranger sends before anything
//! else does. Any bytes, cut anywhere, must give whole messages or an error
//! with a close code: no panic, no hang, and no more held than one frame.
#![no_main]

use chorus_protocol::websocket::Decoder;
use libfuzzer_sys::fuzz_target;

const MAX_MESSAGE: usize = 4096;

fuzz_target!(|data: &[u8]| {
    // The first byte picks where reads end, so frames straddle them.
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut decoder = Decoder::new(MAX_MESSAGE);
    let mut out = Vec::new();
    for chunk in stream.chunks(step) {
        match decoder.feed(chunk, &mut out) {
            Ok(()) => assert!(decoder.held() <= 2 * (MAX_MESSAGE + 14) + 2 * step),
            Err(error) => {
                assert!([1002, 1007, 1009].contains(&error.close_code()));
                return;
            }
        }
    }
});
