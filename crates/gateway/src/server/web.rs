//! The browser client and the cluster dashboard: plain HTML, CSS and
//! JavaScript modules embedded in the binary (`crates/gateway/web/`, and the
//! client SDK it runs on, `clients/js/src/`, under `/sdk/`), so a node serves
//! them itself, offline, with no build step.

use axum::{
    Router,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};

/// What the pages may load: only this origin (avatars over http(s), and files
/// fetched with the token and shown from `blob:` URLs); no inline script.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' https: http: data: blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'";

/// One embedded file.
#[derive(Clone, Copy)]
struct Asset {
    /// The file's text.
    body: &'static str,
    /// Its media type.
    content_type: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The routes of the client and the dashboard.
pub fn routes<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    let assets: [(&str, Asset); 16] = [
        ("/", asset(include_str!("../../web/index.html"), HTML)),
        (
            "/index.html",
            asset(include_str!("../../web/index.html"), HTML),
        ),
        ("/app.js", asset(include_str!("../../web/app.js"), JS)),
        (
            "/connection.js",
            asset(include_str!("../../web/connection.js"), JS),
        ),
        (
            "/changes.js",
            asset(include_str!("../../web/changes.js"), JS),
        ),
        ("/files.js", asset(include_str!("../../web/files.js"), JS)),
        ("/search.js", asset(include_str!("../../web/search.js"), JS)),
        (
            "/style.css",
            asset(include_str!("../../web/style.css"), CSS),
        ),
        (
            "/dashboard",
            asset(include_str!("../../web/dashboard.html"), HTML),
        ),
        (
            "/dashboard.js",
            asset(include_str!("../../web/dashboard.js"), JS),
        ),
        (
            "/dashboard.css",
            asset(include_str!("../../web/dashboard.css"), CSS),
        ),
        // The client SDK (clients/js), which connection.js runs on.
        (
            "/sdk/index.js",
            asset(include_str!("../../../../clients/js/src/index.js"), JS),
        ),
        (
            "/sdk/client.js",
            asset(include_str!("../../../../clients/js/src/client.js"), JS),
        ),
        (
            "/sdk/room.js",
            asset(include_str!("../../../../clients/js/src/room.js"), JS),
        ),
        (
            "/sdk/codes.js",
            asset(include_str!("../../../../clients/js/src/codes.js"), JS),
        ),
        (
            "/sdk/emitter.js",
            asset(include_str!("../../../../clients/js/src/emitter.js"), JS),
        ),
    ];
    assets.into_iter().fold(router, |router, (path, asset)| {
        router.route(path, get(move || async move { serve(&asset) }))
    })
}

const fn asset(body: &'static str, content_type: &'static str) -> Asset {
    Asset { body, content_type }
}

fn serve(asset: &Asset) -> Response {
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // Small files, and a new binary may change them: always revalidate.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
