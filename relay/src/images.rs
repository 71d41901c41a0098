//! Image validation: MIME whitelist, base64 body, decoded size limit, content matching its type.

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};

use crate::protocol::IMAGE_MIME_TYPES;

/// Standard alphabet, padding optional (browsers' `FileReader` pads; hand-made payloads may not).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why an image was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    /// `mimeType` missing or not in the whitelist.
    #[error("mimeType {0:?} is not one of image/png, image/jpeg, image/gif, image/webp")]
    MimeType(String),
    /// The data URL names another type than `mimeType`.
    #[error("data URL type {data_url:?} differs from mimeType {declared:?}")]
    MimeMismatch {
        /// Type in the data URL prefix.
        data_url: String,
        /// Type in `mimeType`.
        declared: String,
    },
    /// Not base64, or a data URL that is not `;base64,`.
    #[error("image is not base64: {0}")]
    Encoding(&'static str),
    /// The decoded bytes are not an image of the declared type.
    #[error("image content is not {0}")]
    Content(String),
    /// Decoded size over the limit.
    #[error("image of {size} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// Decoded size (estimated from the base64 length when refused before decoding).
        size: usize,
        /// Configured limit.
        limit: usize,
    },
}

/// Checks an image payload and returns its decoded size in bytes.
///
/// `image` is either a data URL (`data:image/png;base64,...`) or bare base64.
///
/// # Errors
/// See [`ImageError`].
pub fn validate(
    image: &str,
    mime_type: Option<&str>,
    max_bytes: usize,
) -> Result<usize, ImageError> {
    let declared = mime_type.unwrap_or_default();
    if !IMAGE_MIME_TYPES.contains(&declared) {
        return Err(ImageError::MimeType(declared.to_owned()));
    }
    let body = match image.strip_prefix("data:") {
        Some(rest) => {
            let (media, body) = rest
                .split_once(',')
                .ok_or(ImageError::Encoding("data URL without a comma"))?;
            let data_url = media
                .strip_suffix(";base64")
                .ok_or(ImageError::Encoding("data URL is not ;base64"))?;
            if data_url != declared {
                return Err(ImageError::MimeMismatch {
                    data_url: data_url.to_owned(),
                    declared: declared.to_owned(),
                });
            }
            body
        }
        None => image,
    };
    let estimated = body.len() / 4 * 3;
    if estimated > max_bytes + 3 {
        return Err(ImageError::TooLarge {
            size: estimated,
            limit: max_bytes,
        });
    }
    let bytes = BASE64
        .decode(body)
        .map_err(|_| ImageError::Encoding("invalid base64"))?;
    if bytes.len() > max_bytes {
        return Err(ImageError::TooLarge {
            size: bytes.len(),
            limit: max_bytes,
        });
    }
    if !content_matches(declared, &bytes) {
        return Err(ImageError::Content(declared.to_owned()));
    }
    Ok(bytes.len())
}

/// Magic bytes of each accepted type.
fn content_matches(mime: &str, bytes: &[u8]) -> bool {
    match mime {
        "image/png" => bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg" => bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
        "image/gif" => bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a"),
        "image/webp" => bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP",
        _ => false,
    }
}

/// Encodes bytes as a data URL, as browsers' `FileReader.readAsDataURL` does.
pub fn data_url(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        general_purpose::STANDARD.encode(bytes)
    )
}

/// The smallest byte string each accepted type's content check accepts, padded to `len`.
pub fn sample_image(mime: &str, len: usize) -> Vec<u8> {
    let header: &[u8] = match mime {
        "image/png" => b"\x89PNG\r\n\x1a\n",
        "image/jpeg" => &[0xFF, 0xD8, 0xFF, 0xE0],
        "image/gif" => b"GIF89a",
        "image/webp" => b"RIFF\0\0\0\0WEBP",
        _ => b"",
    };
    let mut bytes = header.to_vec();
    bytes.resize(len.max(header.len()), 0);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(2000))]
        /// Any image field and type either validates within the limit or is refused; never a
        /// panic, never a size past the limit.
        #[test]
        fn any_image_is_refused_or_within_the_limit(
            image in "(data:image/(png|svg\\+xml|gif);base64,)?[A-Za-z0-9+/=]{0,200}|\\PC{0,40}",
            mime in proptest::option::of("image/(png|jpeg|gif|webp|svg\\+xml)|text/html|\\PC{0,10}"),
            limit in 0usize..300,
        ) {
            if let Ok(size) = validate(&image, mime.as_deref(), limit) {
                proptest::prop_assert!(size <= limit);
            }
        }
    }

    #[test]
    fn accepts_each_whitelisted_type() {
        for mime in IMAGE_MIME_TYPES {
            let url = data_url(mime, &sample_image(mime, 100));
            assert_eq!(validate(&url, Some(mime), 1000), Ok(100), "{mime}");
        }
    }

    #[test]
    fn accepts_bare_unpadded_base64() {
        let bytes = sample_image("image/png", 10);
        let bare = general_purpose::STANDARD_NO_PAD.encode(&bytes);
        assert_eq!(validate(&bare, Some("image/png"), 1000), Ok(10));
    }

    #[test]
    fn refuses_other_types() {
        let url = data_url("image/svg+xml", b"<svg onload=alert(1)>");
        assert_eq!(
            validate(&url, Some("image/svg+xml"), 1000),
            Err(ImageError::MimeType("image/svg+xml".into()))
        );
        assert!(matches!(
            validate("AAAA", None, 1000),
            Err(ImageError::MimeType(_))
        ));
    }

    #[test]
    fn refuses_mismatched_data_url() {
        let url = data_url("image/gif", &sample_image("image/gif", 10));
        assert!(matches!(
            validate(&url, Some("image/png"), 1000),
            Err(ImageError::MimeMismatch { .. })
        ));
    }

    #[test]
    fn refuses_bad_base64_and_disguised_content() {
        assert!(matches!(
            validate("data:image/png;base64,***", Some("image/png"), 1000),
            Err(ImageError::Encoding(_))
        ));
        assert!(matches!(
            validate("data:image/png,rawbytes", Some("image/png"), 1000),
            Err(ImageError::Encoding(_))
        ));
        let html = data_url("image/png", b"<html><script>x</script></html>");
        assert_eq!(
            validate(&html, Some("image/png"), 1000),
            Err(ImageError::Content("image/png".into()))
        );
    }

    #[test]
    fn enforces_decoded_size_limit_exactly() {
        let at_limit = data_url("image/jpeg", &sample_image("image/jpeg", 1000));
        assert_eq!(validate(&at_limit, Some("image/jpeg"), 1000), Ok(1000));
        let over = data_url("image/jpeg", &sample_image("image/jpeg", 1001));
        assert_eq!(
            validate(&over, Some("image/jpeg"), 1000),
            Err(ImageError::TooLarge {
                size: 1001,
                limit: 1000
            })
        );
        let far_over = data_url("image/jpeg", &sample_image("image/jpeg", 100_000));
        assert!(matches!(
            validate(&far_over, Some("image/jpeg"), 1000),
            Err(ImageError::TooLarge { .. })
        ));
    }
}
