//! Which web origins may open a WebSocket (cross-site WebSocket hijacking defence).

use axum::http::{HeaderMap, header};

/// The Origin rule of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    /// Only pages served from the host the client connected to (the `Host` header).
    SameOrigin,
    /// Any origin (`*`): for deployments where every client is a native app or the
    /// token alone is trusted.
    Any,
    /// Exactly these origins (`scheme://host[:port]`, lower case).
    List(Vec<String>),
}

impl Origins {
    /// Parses the `--allowed-origins` list: empty for same-origin, `*`, or origins.
    pub fn parse(list: &[String]) -> Result<Self, String> {
        if list.is_empty() {
            return Ok(Self::SameOrigin);
        }
        if list.iter().any(|o| o == "*") {
            return Ok(Self::Any);
        }
        list.iter()
            .map(|origin| {
                let lower = origin.trim_end_matches('/').to_ascii_lowercase();
                let ok = (lower.starts_with("http://") || lower.starts_with("https://"))
                    && !lower[lower.find("//").unwrap_or(0) + 2..].contains('/');
                if ok {
                    Ok(lower)
                } else {
                    Err(format!(
                        "{origin:?} is not an origin like https://chat.example.com"
                    ))
                }
            })
            .collect::<Result<_, _>>()
            .map(Self::List)
    }

    /// Whether an upgrade with these headers may proceed.
    ///
    /// A request without `Origin` comes from a non-browser client, which could forge
    /// any Origin anyway; the check protects browsers, whose Origin is trustworthy.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        let origin = origin.to_ascii_lowercase();
        match self {
            Self::Any => true,
            Self::List(allowed) => allowed.contains(&origin),
            Self::SameOrigin => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_ascii_lowercase);
                let authority = origin
                    .strip_prefix("https://")
                    .or_else(|| origin.strip_prefix("http://"));
                matches!((authority, host), (Some(a), Some(h)) if a == h)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn same_origin_compares_authority_with_host() {
        let rule = Origins::SameOrigin;
        assert!(rule.allows(&headers(Some("http://chat.local:8080"), "chat.local:8080")));
        assert!(rule.allows(&headers(Some("https://Chat.Local"), "chat.local")));
        assert!(rule.allows(&headers(None, "chat.local")));
        assert!(!rule.allows(&headers(Some("https://evil.example"), "chat.local")));
        assert!(!rule.allows(&headers(Some("null"), "chat.local")));
        assert!(!rule.allows(&headers(Some("http://chat.local:9"), "chat.local:8080")));
    }

    #[test]
    fn lists_and_wildcard() {
        let list = Origins::parse(&["https://app.example.com/".into()]).unwrap();
        assert!(list.allows(&headers(Some("https://app.example.com"), "x")));
        assert!(!list.allows(&headers(Some("http://app.example.com"), "x")));
        assert_eq!(Origins::parse(&["*".into()]).unwrap(), Origins::Any);
        assert!(Origins::parse(&["app.example.com".into()]).is_err());
        assert!(Origins::parse(&["https://a.com/path".into()]).is_err());
    }
}
