//! `chorus healthcheck`: an HTTP probe of a running node for container health
//! checks, so images need no curl. Exit status 0 when the node answers 200,
//! 1 otherwise (with the reason on stderr).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream, ToSocketAddrs},
};

use crate::config::HealthcheckArgs;

/// Largest response read (a status line and a short JSON refusal).
const MAX_RESPONSE: u64 = 16 * 1024;

/// Probes the node; `Ok` with the status line when it answered 200.
pub fn probe(args: &HealthcheckArgs, listen: SocketAddr) -> Result<String, String> {
    let url = args.url.clone().unwrap_or_else(|| {
        let mut addr = listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let path = if args.live { "/livez" } else { "/readyz" };
        format!("http://{addr}{path}")
    });
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs can be probed"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, args.timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let io = |e: std::io::Error| format!("{url}: {e}");
    stream.set_read_timeout(Some(args.timeout)).map_err(io)?;
    stream.set_write_timeout(Some(args.timeout)).map_err(io)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: chorus-healthcheck\r\n\r\n"
    )
    .map_err(io)?;
    let mut response = String::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_string(&mut response)
        .map_err(io)?;
    let status_line = response.lines().next().unwrap_or_default().to_owned();
    let status = status_line.split(' ').nth(1).unwrap_or_default();
    if status == "200" {
        Ok(status_line)
    } else {
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.trim())
            .unwrap_or_default();
        Err(format!("{url}: {status_line} {body}"))
    }
}
