//! Client frames are the one input every stranger controls. Both decoders must
//! answer any bytes with a command or an error code: no panic, no hang, and the
//! error must say something.
#![no_main]

use chorus_protocol::{decode_json, decode_msgpack};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(error) = decode_msgpack(data) {
        assert!(!error.detail.is_empty());
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Err(error) = decode_json(text)
    {
        assert!(!error.detail.is_empty());
    }
});
