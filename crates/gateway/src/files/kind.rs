//! What a file is, decided from its first bytes (never from what the client
//! said), and how it may be served: inline for the images, media and plain
//! text on [`INLINE`], as a download for everything else.

/// Bytes of a file's start that [`sniff`] looks at.
pub const SNIFF_BYTES: usize = 8 * 1024;

/// Types served inline (`Content-Disposition: inline`); anything else is an
/// attachment, so a browser never renders an uploaded page or script.
pub const INLINE: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "video/mp4",
    "video/webm",
    "audio/mpeg",
    "audio/ogg",
    "audio/x-wav",
    "text/plain; charset=utf-8",
];

/// Types the node makes thumbnails of (decoded with bounded memory).
pub const THUMBNAILED: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

/// The type of a file starting with `head`: a known binary signature, UTF-8
/// text without control characters other than whitespace, or
/// `application/octet-stream`.
pub fn sniff(head: &[u8]) -> String {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_owned();
    }
    // The head may end inside a character: judge the complete ones.
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(error) if error.error_len().is_none() => {
            std::str::from_utf8(&head[..error.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return "application/octet-stream".into(),
    };
    let plain = text
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'));
    if plain && !head.is_empty() {
        "text/plain; charset=utf-8".into()
    } else {
        "application/octet-stream".into()
    }
}

/// Whether files of `content_type` are served inline.
pub fn inline(content_type: &str) -> bool {
    INLINE.contains(&content_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF"), "image/jpeg");
        assert_eq!(sniff(b"hello\nworld \xc3\xa9"), "text/plain; charset=utf-8");
        // A cut multi-byte character at the end is still text.
        assert_eq!(sniff(b"caf\xc3"), "text/plain; charset=utf-8");
        assert_eq!(sniff(b"\0\x01\x02binary"), "application/octet-stream");
        // HTML is never served as something a browser renders.
        let html = sniff(b"<html><script>alert(1)</script></html>");
        assert!(
            html == "text/plain; charset=utf-8" || !inline(&html),
            "{html}"
        );
        assert!(inline("image/png") && !inline("application/pdf") && !inline("text/html"));
    }
}
