//! Photo metadata removed from what is served: EXIF (camera, time, GPS
//! position), XMP, IPTC and comments of JPEG files, and the EXIF and text
//! chunks of PNG files. The pixels are not touched (no re-encoding): only
//! those segments go. A JPEG keeps its orientation, as a minimal EXIF block
//! holding that one tag, so a phone's portrait photo stays upright.

/// `bytes` without their metadata, or `None` when the format is not one this
/// strips (GIF has none; WebP is served as uploaded) or the file does not
/// parse (it is then kept as it is).
pub fn strip(content_type: &str, bytes: &[u8], orientation: u8) -> Option<Vec<u8>> {
    match content_type {
        "image/jpeg" => strip_jpeg(bytes, orientation),
        "image/png" => strip_png(bytes),
        _ => None,
    }
}

/// JPEG segments kept: JFIF (APP0), ICC profile (APP2) and Adobe (APP14)
/// affect how the pixels look; every other APPn (EXIF and XMP in APP1,
/// IPTC in APP13 ...) and comments (COM) go.
fn keeps_jpeg_segment(marker: u8) -> bool {
    !(matches!(marker, 0xE1 | 0xE3..=0xED | 0xEF) || marker == 0xFE)
}

fn strip_jpeg(bytes: &[u8], orientation: u8) -> Option<Vec<u8>> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&[0xFF, 0xD8]);
    if (2..=8).contains(&orientation) {
        out.extend_from_slice(&orientation_app1(orientation));
    }
    let mut at = 2;
    loop {
        // Fill bytes (0xFF) may precede a marker.
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        if bytes.get(at) != Some(&0xFF) {
            return None;
        }
        let marker = *bytes.get(at + 1)?;
        if marker == 0xD9 {
            out.extend_from_slice(&bytes[at..]);
            return Some(out);
        }
        let length = usize::from(u16::from_be_bytes([
            *bytes.get(at + 2)?,
            *bytes.get(at + 3)?,
        ]));
        let end = at + 2 + length;
        if length < 2 || end > bytes.len() {
            return None;
        }
        if marker == 0xDA {
            // Start of scan: the compressed data and everything after it.
            out.extend_from_slice(&bytes[at..]);
            return Some(out);
        }
        if keeps_jpeg_segment(marker) {
            out.extend_from_slice(&bytes[at..end]);
        }
        at = end;
    }
}

/// An APP1 EXIF segment with only the orientation tag (big-endian TIFF).
fn orientation_app1(orientation: u8) -> Vec<u8> {
    let mut tiff = Vec::with_capacity(26);
    tiff.extend_from_slice(b"MM\0*\0\0\0\x08"); // header, IFD0 at offset 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // one value
    tiff.extend_from_slice(&[0, orientation, 0, 0]); // the value, padded
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut segment = vec![0xFF, 0xE1];
    let length = (2 + 6 + tiff.len()) as u16;
    segment.extend_from_slice(&length.to_be_bytes());
    segment.extend_from_slice(b"Exif\0\0");
    segment.extend_from_slice(&tiff);
    segment
}

/// PNG chunks dropped: EXIF and text (which may hold anything) and time.
const PNG_DROPPED: [&[u8; 4]; 5] = [b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"];

fn strip_png(bytes: &[u8]) -> Option<Vec<u8>> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !bytes.starts_with(SIGNATURE) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(SIGNATURE);
    let mut at = SIGNATURE.len();
    while at < bytes.len() {
        let length = u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize;
        let kind: &[u8; 4] = bytes.get(at + 4..at + 8)?.try_into().ok()?;
        let end = at.checked_add(12)?.checked_add(length)?;
        if end > bytes.len() {
            return None;
        }
        if !PNG_DROPPED.contains(&kind) {
            out.extend_from_slice(&bytes[at..end]);
        }
        at = end;
        if kind == b"IEND" {
            break;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, marker];
        s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        s.extend_from_slice(payload);
        s
    }

    #[test]
    fn jpeg_loses_exif_and_comments_keeps_the_rest_and_its_orientation() {
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend(segment(0xE0, b"JFIF\0\x01\x01"));
        jpeg.extend(segment(0xE1, b"Exif\0\0GPS 48.85N 2.35E"));
        jpeg.extend(segment(0xFE, b"taken at home"));
        jpeg.extend(segment(0xDB, &[0; 65]));
        jpeg.extend(segment(0xDA, &[1, 2, 3]));
        jpeg.extend([0x12, 0x34, 0xFF, 0x00, 0xFF, 0xD9]);
        let stripped = strip("image/jpeg", &jpeg, 6).unwrap();
        let text = String::from_utf8_lossy(&stripped);
        assert!(!text.contains("GPS") && !text.contains("home"), "{text}");
        assert!(text.contains("JFIF"));
        assert!(stripped.ends_with(&[0x12, 0x34, 0xFF, 0x00, 0xFF, 0xD9]));
        // The orientation survives in a minimal EXIF block.
        let app1 = orientation_app1(6);
        assert_eq!(&stripped[2..2 + app1.len()], app1.as_slice());
        assert_eq!(
            strip("image/jpeg", &jpeg, 1).unwrap().len(),
            stripped.len() - app1.len()
        );
        assert!(strip("image/jpeg", &jpeg[..20], 1).is_none());
    }

    #[test]
    fn png_loses_text_and_exif_chunks() {
        let chunk = |kind: &[u8; 4], data: &[u8]| {
            let mut c = (data.len() as u32).to_be_bytes().to_vec();
            c.extend_from_slice(kind);
            c.extend_from_slice(data);
            c.extend_from_slice(&[0, 0, 0, 0]);
            c
        };
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(b"IHDR", &[0; 13]));
        png.extend(chunk(b"tEXt", b"Author\0Ada at 48.85N"));
        png.extend(chunk(b"eXIf", b"MM\0*gps"));
        png.extend(chunk(b"IDAT", &[7; 10]));
        png.extend(chunk(b"IEND", &[]));
        let stripped = strip("image/png", &png, 1).unwrap();
        let text = String::from_utf8_lossy(&stripped);
        assert!(!text.contains("Ada") && !text.contains("gps"), "{text}");
        assert!(text.contains("IHDR") && text.contains("IDAT") && text.contains("IEND"));
        assert!(strip("image/gif", &png, 1).is_none());
    }
}
