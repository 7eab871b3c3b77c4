//! Thumbnails of uploaded images, decoded with bounded dimensions and
//! memory: an image that would need more (a decompression bomb: a small
//! file of enormous dimensions) is refused, never allocated.

use std::io::Cursor;

use image::{
    DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, error::ImageError,
    metadata::Orientation,
};

/// Largest width or height decoded.
pub const MAX_SIDE: u32 = 12_000;
/// Most memory one decode may take (a 32-megapixel RGBA image).
pub const MAX_DECODE_BYTES: u64 = 128 * 1024 * 1024;
/// A thumbnail fits in this many pixels each way.
pub const THUMBNAIL_SIDE: u32 = 320;

/// An image's size and its thumbnail (PNG).
pub struct Thumbnail {
    /// Width of the image, in pixels.
    pub width: u32,
    /// Height of the image, in pixels.
    pub height: u32,
    /// Its EXIF orientation (1: as stored; 2-8: flipped or turned), which
    /// the thumbnail has applied.
    pub orientation: u8,
    /// The thumbnail, PNG-encoded.
    pub png: Vec<u8>,
}

/// Why no thumbnail was made.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    /// The image needs more than [`MAX_SIDE`] or [`MAX_DECODE_BYTES`].
    #[error(
        "the image is larger than {MAX_SIDE}x{MAX_SIDE} pixels or needs more than 128 MiB to decode"
    )]
    TooLarge,
    /// The bytes do not decode as the image their signature says.
    #[error("the image does not decode: {0}")]
    Unreadable(String),
}

/// Decodes `bytes` within the limits and makes its thumbnail. Blocking: run
/// it off the async workers.
pub fn make(bytes: &[u8]) -> Result<Thumbnail, ThumbnailError> {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ThumbnailError::Unreadable(e.to_string()))?;
    reader.limits(limits);
    let refused = |error: ImageError| match error {
        ImageError::Limits(_) => ThumbnailError::TooLarge,
        other => ThumbnailError::Unreadable(other.to_string()),
    };
    let mut decoder = reader.into_decoder().map_err(refused)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(refused)?;
    let (width, height) = (image.width(), image.height());
    let mut small = image.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE);
    small.apply_orientation(orientation);
    let mut png = Cursor::new(Vec::new());
    small
        .write_to(&mut png, ImageFormat::Png)
        .map_err(|e| ThumbnailError::Unreadable(e.to_string()))?;
    Ok(Thumbnail {
        width,
        height,
        orientation: orientation.to_exif(),
        png: png.into_inner(),
    })
}
