//! A browser tab's cookie jar for the one site it talks to: what `Set-Cookie` headers gave,
//! sent back on every request of every transport, so a load balancer's stickiness cookie
//! keeps long-polling and the upgrade on one node.

use std::sync::{Arc, Mutex, PoisonError};

use cookie::Cookie;

/// The cookies of one client. Cheap to clone: clones share the jar.
#[derive(Debug, Clone, Default)]
pub struct Cookies(Arc<Mutex<Vec<Kept>>>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Kept {
    name: String,
    value: String,
    /// The path the cookie applies under.
    path: String,
}

/// The path a cookie without a `Path` attribute applies under (RFC 6265 §5.1.4).
fn default_path(request_path: &str) -> String {
    match request_path.rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => request_path[..i].to_owned(),
    }
}

/// `cookie_path` covers `request_path` (RFC 6265 §5.1.4).
fn covers(cookie_path: &str, request_path: &str) -> bool {
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/')
                || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/')))
}

impl Cookies {
    /// An empty jar.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Kept>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps what one `Set-Cookie` header value says, for a response to `request_path`
    /// (a path without its query). A cookie that expired, or whose `Max-Age` is not
    /// positive, is removed; one that cannot be parsed is ignored, as browsers do.
    pub fn store(&self, set_cookie: &str, request_path: &str) {
        let Ok(c) = Cookie::parse(set_cookie) else {
            return;
        };
        let path = c
            .path()
            .filter(|p| p.starts_with('/'))
            .map_or_else(|| default_path(request_path), str::to_owned);
        let gone = c.max_age().is_some_and(|age| !age.is_positive())
            || c.expires_datetime()
                .is_some_and(|at| at <= cookie::time::OffsetDateTime::now_utc());
        let mut jar = self.lock();
        jar.retain(|k| !(k.name == c.name() && k.path == path));
        if !gone {
            jar.push(Kept {
                name: c.name().to_owned(),
                value: c.value().to_owned(),
                path,
            });
        }
    }

    /// The `Cookie` header for a request to `request_path`, if any cookie applies: longer
    /// paths first, as browsers order them.
    pub fn header(&self, request_path: &str) -> Option<String> {
        let jar = self.lock();
        let mut applying: Vec<&Kept> = jar
            .iter()
            .filter(|k| covers(&k.path, request_path))
            .collect();
        if applying.is_empty() {
            return None;
        }
        applying.sort_by_key(|k| std::cmp::Reverse(k.path.len()));
        let parts: Vec<String> = applying
            .iter()
            .map(|k| format!("{}={}", k.name, k.value))
            .collect();
        Some(parts.join("; "))
    }
}

/// The path of a request target, without its query.
pub(crate) fn path_of(target: &str) -> &str {
    target.split_once('?').map_or(target, |(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stickiness_cookie_is_sent_back_until_it_is_removed() {
        let jar = Cookies::new();
        assert_eq!(jar.header("/chat/"), None);
        jar.store("SRV=s1; path=/", "/chat/");
        jar.store("io=abc; Path=/chat; HttpOnly; SameSite=Lax", "/chat/");
        assert_eq!(jar.header("/chat/").as_deref(), Some("io=abc; SRV=s1"));
        assert_eq!(jar.header("/other").as_deref(), Some("SRV=s1"));
        assert_eq!(jar.header("/chatter").as_deref(), Some("SRV=s1"));
        jar.store("SRV=s2; path=/", "/chat/");
        assert_eq!(jar.header("/").as_deref(), Some("SRV=s2"));
        jar.store("SRV=; Max-Age=0; path=/", "/chat/");
        jar.store(
            "io=x; Path=/chat; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            "/chat/",
        );
        assert_eq!(jar.header("/chat/"), None);
    }

    #[test]
    fn garbage_and_pathless_cookies() {
        let jar = Cookies::new();
        jar.store("no equals sign", "/x");
        jar.store("=novalue", "/x");
        assert_eq!(jar.header("/x"), None);
        jar.store("a=1", "/chat/socket");
        assert_eq!(jar.header("/chat/anything").as_deref(), Some("a=1"));
        assert_eq!(jar.header("/elsewhere"), None);
        assert_eq!(path_of("/chat/?EIO=4&sid=x"), "/chat/");
    }
}
