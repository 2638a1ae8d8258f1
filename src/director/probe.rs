//! Health probes: TCP connect and HTTP GET, one result per call. Damping
//! (rise/fall) is [`crate::health::damping`]'s, not here.
//!
//! HTTP is a minimal HTTP/1.0 client on tokio rather than a crate: a check
//! needs one request line and the status code of the answer — no keep-alive,
//! TLS, redirects or bodies. HTTP/1.0 with `Connection: close` makes every
//! server close after the answer; we read only until the status line is
//! complete. (keepalived's HTTP_GET also reads the body to hash it; lvsup
//! compares only the status, like haproxy's `http-check expect status`.)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a probe checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Tcp,
    Http { path: String, expect_status: u16 },
}

/// One probe result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub ok: bool,
    /// The probe could not run for a reason on the director itself (no file
    /// descriptor, no buffer, no memory): it says nothing about the real
    /// server, so health stays as it was ("unknown", not "down"). Otherwise a
    /// flood that exhausts the daemon's descriptors would take every real
    /// server out of the pool.
    pub inconclusive: bool,
    pub detail: String,
    pub took: Duration,
}

/// A failed attempt: the real server's fault, or the director's own.
enum Failure {
    Remote(String),
    Local(String),
}

impl From<String> for Failure {
    fn from(d: String) -> Self {
        Failure::Remote(d)
    }
}

/// Errors of the director's own resources, raised when the probe's socket is
/// created or bound: EMFILE/ENFILE (descriptors), ENOBUFS/ENOMEM (memory),
/// EADDRNOTAVAIL (no local port left).
pub fn is_local_exhaustion(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
    )
}

/// Run `probe` against `addr`, the whole probe bounded by `timeout`.
pub async fn run(probe: &Probe, addr: SocketAddr, timeout: Duration) -> ProbeResult {
    let start = Instant::now();
    let r = tokio::time::timeout(timeout, attempt(probe, addr)).await;
    let took = start.elapsed();
    let (ok, inconclusive, detail) = match r {
        Err(_) => (
            false,
            false,
            format!("timeout after {}", crate::config::format_duration(timeout)),
        ),
        Ok(Ok(d)) => (true, false, d),
        Ok(Err(Failure::Remote(d))) => (false, false, d),
        Ok(Err(Failure::Local(d))) => (false, true, d),
    };
    ProbeResult {
        ok,
        inconclusive,
        detail,
        took,
    }
}

async fn attempt(probe: &Probe, addr: SocketAddr) -> Result<String, Failure> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| {
        if is_local_exhaustion(&e) {
            Failure::Local(format!("no probe socket on the director: {e}"))
        } else {
            Failure::Remote(format!("connect: {e}"))
        }
    })?;
    match probe {
        Probe::Tcp => Ok("connected".into()),
        Probe::Http {
            path,
            expect_status,
        } => {
            let req = request(path, addr);
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| format!("send: {e}"))?;
            let mut buf = Vec::with_capacity(256);
            let mut chunk = [0u8; 512];
            loop {
                if let Some(code) = parse_status_line(&buf)? {
                    return if code == *expect_status {
                        Ok(format!("HTTP {code}"))
                    } else {
                        Err(format!("HTTP {code}, expected {expect_status}").into())
                    };
                }
                if buf.len() > 4096 {
                    return Err(Failure::Remote(
                        "no HTTP status line in the first 4 KiB".into(),
                    ));
                }
                let n = s.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    return Err(Failure::Remote(if buf.is_empty() {
                        "connection closed without an answer".into()
                    } else {
                        "connection closed inside the status line".into()
                    }));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    }
}

/// The request a check sends.
pub fn request(path: &str, addr: SocketAddr) -> String {
    format!(
        "GET {path} HTTP/1.0\r\nHost: {}\r\nUser-Agent: lvsup-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        addr.ip()
    )
}

/// The status code once the status line (`HTTP/1.x NNN ...\r\n`) is in `buf`;
/// `Ok(None)` while incomplete; `Err` when it is not HTTP.
pub fn parse_status_line(buf: &[u8]) -> Result<Option<u16>, String> {
    let Some(end) = buf.iter().position(|b| *b == b'\n') else {
        // Reject early if what we have cannot be the start of "HTTP/".
        let n = buf.len().min(5);
        if buf[..n] != b"HTTP/"[..n] {
            return Err("answer is not HTTP".into());
        }
        return Ok(None);
    };
    let line = String::from_utf8_lossy(&buf[..end]);
    let line = line.trim_end_matches('\r');
    let mut parts = line.split(' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/") {
        return Err("answer is not HTTP".into());
    }
    let code = parts.next().unwrap_or_default();
    match code.parse::<u16>() {
        Ok(c) if (100..=999).contains(&c) && code.len() == 3 => Ok(Some(c)),
        _ => Err(format!("bad HTTP status line {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhausted_director_resources_are_not_the_real_servers_fault() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert!(is_local_exhaustion(&std::io::Error::from_raw_os_error(
                errno
            )));
        }
        for errno in [
            libc::ECONNREFUSED,
            libc::EHOSTUNREACH,
            libc::ETIMEDOUT,
            libc::ENETUNREACH,
        ] {
            assert!(!is_local_exhaustion(&std::io::Error::from_raw_os_error(
                errno
            )));
        }
    }

    #[test]
    fn status_line() {
        assert_eq!(parse_status_line(b""), Ok(None));
        assert_eq!(parse_status_line(b"HTT"), Ok(None));
        assert_eq!(parse_status_line(b"HTTP/1.0 200 OK"), Ok(None));
        assert_eq!(parse_status_line(b"HTTP/1.0 200 OK\r\n"), Ok(Some(200)));
        assert_eq!(
            parse_status_line(b"HTTP/1.1 404 Not Found\r\nX: y"),
            Ok(Some(404))
        );
        assert_eq!(parse_status_line(b"HTTP/1.1 204\n"), Ok(Some(204)));
        assert!(parse_status_line(b"SSH-2.0-OpenSSH").is_err());
        assert!(parse_status_line(b"HTTP/1.1 abc\r\n").is_err());
        assert!(parse_status_line(b"HTTP/1.1 2000 x\r\n").is_err());
    }

    #[test]
    fn request_is_http10_close() {
        let r = request("/health", "192.0.2.1:80".parse().expect("addr"));
        assert!(r.starts_with("GET /health HTTP/1.0\r\nHost: 192.0.2.1\r\n"));
        assert!(r.ends_with("Connection: close\r\n\r\n"));
    }

    #[tokio::test]
    async fn probes_against_local_listeners() {
        use tokio::net::TcpListener;
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut b = [0u8; 512];
                let _ = s.read(&mut b).await;
                let _ = s.write_all(b"HTTP/1.0 503 Busy\r\n\r\n").await;
            }
        });
        let t = Duration::from_secs(2);
        assert!(run(&Probe::Tcp, addr, t).await.ok);
        let r = run(
            &Probe::Http {
                path: "/".into(),
                expect_status: 200,
            },
            addr,
            t,
        )
        .await;
        assert!(!r.ok);
        assert_eq!(r.detail, "HTTP 503, expected 200");
        let r = run(
            &Probe::Http {
                path: "/".into(),
                expect_status: 503,
            },
            addr,
            t,
        )
        .await;
        assert!(r.ok, "{r:?}");
        // Nobody listening.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let r = run(&Probe::Tcp, closed, t).await;
        assert!(!r.ok);
        assert!(r.detail.starts_with("connect:"), "{}", r.detail);
    }
}
