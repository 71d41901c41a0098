//! What bots write: sentences of a chosen length (some with markup), images, names.

use fake::Fake;
use fake::faker::lorem::en::Words;
use fake::faker::name::en::Name;
use rand::{Rng, RngExt};

use relay::protocol::MessageBody;

use crate::record::{MsgId, tag_text};
use crate::scenario::Group;

/// Image MIME types bots send, in turn.
const MIMES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// Pre-encoded images of one group (encoding base64 per message would cost more than the send).
pub struct ImageCache {
    images: Vec<(&'static str, String, usize)>,
}

impl ImageCache {
    /// Eight images of sizes drawn from the group's range.
    pub fn new(group: &Group, rng: &mut impl Rng) -> Self {
        let images = (0..8)
            .map(|i| {
                let mime = MIMES[i % MIMES.len()];
                let len = rng.random_range(group.image_bytes.min..=group.image_bytes.max) as usize;
                let bytes = relay::images::sample_image(mime, len);
                (mime, relay::images::data_url(mime, &bytes), len)
            })
            .collect();
        Self { images }
    }

    /// One of the images: MIME type, data URL, decoded size.
    pub fn pick(&self, rng: &mut impl Rng) -> (&'static str, &str, usize) {
        let (m, d, n) = &self.images[rng.random_range(0..self.images.len())];
        (m, d, *n)
    }
}

/// A display name.
pub fn person(rng: &mut impl Rng) -> String {
    Name().fake_with_rng(rng)
}

/// Text of about the group's length carrying `id`, with markup in `markup_fraction` of cases.
pub fn text(id: MsgId, group: &Group, rng: &mut impl Rng) -> String {
    let target = rng.random_range(group.text_length.min..=group.text_length.max) as usize;
    let mut body = String::with_capacity(target + 16);
    while body.len() < target {
        let words: Vec<String> = Words(3..8).fake_with_rng(rng);
        if !body.is_empty() {
            body.push(' ');
        }
        body.push_str(&words.join(" "));
    }
    body.truncate(
        body.char_indices()
            .nth(target)
            .map_or(body.len(), |(i, _)| i),
    );
    if rng.random_bool(group.markup_fraction) {
        body = match rng.random_range(0..3) {
            0 => format!("<b>{body}</b>"),
            1 => format!("{body}<script>alert(1)</script>"),
            _ => format!("<img src=x onerror=alert(1)>{body}"),
        };
    }
    tag_text(id, &body)
}

/// A message body carrying `id`: an image in `image_fraction` of cases, else text.
pub fn body(id: MsgId, group: &Group, images: &ImageCache, rng: &mut impl Rng) -> MessageBody {
    if rng.random_bool(group.image_fraction) {
        let (mime, url, size) = images.pick(rng);
        super::outgoing::image(url, image_name(id, mime), mime, size)
    } else {
        super::outgoing::text(text(id, group, rng))
    }
}

/// Image file name carrying `id`.
pub fn image_name(id: MsgId, mime: &str) -> String {
    let ext = mime.rsplit('/').next().unwrap_or("img");
    format!("sim-{id}.{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::find_msg_id;
    use rand::SeedableRng;

    fn group() -> Group {
        crate::scenario::parse(
            std::path::Path::new("t.toml"),
            "[scenario]\nname='t'\nduration='1s'\n[[bots]]\nrole='client'\ncount=1\nmarkup_fraction=0.5\ntext_length={min=20,max=40}\n",
            &crate::scenario::Overrides::default(),
        )
        .expect("valid")
        .groups
        .remove(0)
    }

    #[test]
    fn texts_carry_their_id_and_length() {
        let g = group();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut with_markup = 0;
        for id in 1..200 {
            let t = text(id, &g, &mut rng);
            assert_eq!(find_msg_id(&t), Some(id));
            let sanitized = relay::sanitize::strip_markup(&t);
            assert_eq!(
                find_msg_id(&sanitized),
                Some(id),
                "id survives sanitizing: {t}"
            );
            if t.contains('<') {
                with_markup += 1;
            }
        }
        assert!((50..150).contains(&with_markup), "{with_markup}");
    }

    #[test]
    fn images_pass_the_relay_checks() {
        let g = group();
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let cache = ImageCache::new(&g, &mut rng);
        for _ in 0..8 {
            let (mime, url, len) = cache.pick(&mut rng);
            assert_eq!(relay::images::validate(url, Some(mime), 1 << 20), Ok(len));
        }
    }
}
