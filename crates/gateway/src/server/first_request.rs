//! A connection's first request, read without hyper. A WebSocket upgrade to
//! `/ws` (what almost every connection to a node starts with) is answered
//! here: the request head is read into a buffer the size of a handshake,
//! not into hyper's 8 KiB, and the connection goes on as a
//! [`SocketIo::Direct`]. Anything else (another route, a head too large or
//! malformed, HTTP/1.0) is handed back to the listener with the bytes read so
//! far, and hyper serves it as if it had read them itself.

use std::{
    future, io,
    net::{Shutdown, SocketAddr},
    sync::Arc,
    time::Duration,
};

use axum::{
    body::to_bytes,
    extract::Query,
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header},
    response::Response,
};
use bytes::{Bytes, BytesMut};
use socket2::SockRef;
use tokio::{io::AsyncWriteExt, net::TcpStream, sync::mpsc};

use super::{
    handshake::{Offer, has_token},
    node::Node,
    upgrade::{WsParams, admit},
};
use crate::chat::{socket::SocketIo, stream::SharedStream};

/// What the first read takes: a browser's handshake, cookies included, fits.
const FIRST_READ_BYTES: usize = 1024;
/// A head still incomplete at this size is left to hyper (which takes more).
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Headers parsed here; a request with more is left to hyper.
const MAX_HEADERS: usize = 48;
/// How long a client may take to send its first request's head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest refusal body sent (they are a line of JSON).
const MAX_REFUSAL_BYTES: usize = 4 * 1024;

/// A parsed upgrade request to `/ws`.
struct WsRequest {
    /// Length of the head in the bytes read.
    len: usize,
    /// The request target, for the query.
    uri: Uri,
    /// The request's headers.
    headers: HeaderMap,
}

/// Reads `stream`'s first request and upgrades it, or hands the connection to
/// hyper through `for_http`.
pub async fn read(
    node: Arc<Node>,
    stream: Arc<TcpStream>,
    addr: SocketAddr,
    for_http: mpsc::Sender<(SharedStream, SocketAddr)>,
) {
    let mut head = BytesMut::with_capacity(FIRST_READ_BYTES);
    match tokio::time::timeout(HEAD_TIMEOUT, read_head(&stream, &mut head)).await {
        // Too slow, failed or gone: the connection closes.
        Err(_) | Ok(Err(_)) | Ok(Ok(false)) => return,
        Ok(Ok(true)) => {}
    }
    if let Some(request) = ws_request(&head) {
        // Copied (almost always nothing): a slice of `head` would keep all of it.
        let unread = Bytes::copy_from_slice(&head[request.len..]);
        drop(head);
        match upgrade(&node, &stream, request, unread).await {
            Ok(()) => return,
            // Refused: hyper serves whatever the client sends next.
            Err(unread) => head = BytesMut::from(unread),
        }
    }
    let _ = for_http
        .send((SharedStream::new(stream, head.freeze()), addr))
        .await;
}

/// Reads until `head` holds a whole request head (or too much for one):
/// `false` when the client closed first.
async fn read_head(stream: &TcpStream, head: &mut BytesMut) -> io::Result<bool> {
    loop {
        stream.readable().await?;
        match stream.try_read_buf(head) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Err(error) => return Err(error),
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::Request::new(&mut headers).parse(head) {
            Ok(httparse::Status::Partial) if head.len() < MAX_HEAD_BYTES => {
                if head.len() == head.capacity() {
                    head.reserve(head.len());
                }
            }
            // Complete, too large or malformed: decided by the caller.
            _ => return Ok(true),
        }
    }
}

/// The request in `head` when it is a `GET /ws` over HTTP/1.1 that this
/// module answers.
fn ws_request(head: &[u8]) -> Option<WsRequest> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = request.parse(head).ok()? else {
        return None;
    };
    let path = request.path?;
    let ours = request.method == Some("GET")
        && request.version == Some(1)
        && (path == "/ws" || path.starts_with("/ws?"));
    if !ours {
        return None;
    }
    let uri = path.parse().ok()?;
    let mut map = HeaderMap::with_capacity(request.headers.len());
    for header in request.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        map.append(name, HeaderValue::from_bytes(header.value).ok()?);
    }
    Some(WsRequest {
        len,
        uri,
        headers: map,
    })
}

/// Answers an upgrade request: the `101` and the connection started, or the
/// refusal sent and the unread bytes given back (for hyper to serve what
/// comes next), or the connection closed after the refusal when the client
/// asked for that.
async fn upgrade(
    node: &Arc<Node>,
    stream: &Arc<TcpStream>,
    request: WsRequest,
    unread: Bytes,
) -> Result<(), Bytes> {
    let closes = has_token(&request.headers, header::CONNECTION, "close");
    let admitted = Offer::check(&Method::GET, &request.headers).and_then(|offer| {
        let params = Query::<WsParams>::try_from_uri(&request.uri);
        admit(node, &request.headers, params, &offer, Some(stream.clone()))
    });
    drop(request);
    match admitted {
        Ok((response, accepted)) => {
            if send(stream, response).await.is_ok() {
                let io = SocketIo::Direct(SharedStream::new(stream.clone(), unread));
                accepted.spawn(future::ready(Some(io)));
            }
            // Not sent: the client is gone; dropping `accepted` frees its place.
            Ok(())
        }
        Err(mut refused) => {
            if !closes {
                return match send(stream, *refused).await {
                    Ok(()) => Err(unread),
                    Err(_) => Ok(()),
                };
            }
            // The client asked to close after this answer: send it, then FIN.
            let close = HeaderValue::from_static("close");
            refused.headers_mut().insert(header::CONNECTION, close);
            if send(stream, *refused).await.is_ok() {
                let _ = SockRef::from(&**stream).shutdown(Shutdown::Write);
            }
            Ok(())
        }
    }
}

/// Writes `response` in HTTP/1.1: a `101`'s head, or a refusal with its body.
async fn send(stream: &Arc<TcpStream>, response: Response) -> io::Result<()> {
    let (parts, body) = response.into_parts();
    let body = if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        Bytes::new()
    } else {
        to_bytes(body, MAX_REFUSAL_BYTES)
            .await
            .map_err(io::Error::other)?
    };
    let mut out = Vec::with_capacity(160 + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if parts.status != StatusCode::SWITCHING_PROTOCOLS {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    SharedStream::new(stream.clone(), Bytes::new())
        .write_all(&out)
        .await
}
