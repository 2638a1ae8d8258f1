//! Health probes: TCP connect, HTTP or HTTPS GET, a program; one result per
//! call. Damping (rise/fall) is [`crate::health::damping`]'s, not here.
//!
//! HTTP is a minimal HTTP/1.0 client on tokio rather than a crate: a check
//! needs one request and the status line (and, with `expect_body` or
//! `expect_digest`, the body) of the answer — no keep-alive, redirects or
//! chunked encoding (an HTTP/1.0 request gets none). HTTP/1.0 with
//! `Connection: close` makes every server close after the answer. Without
//! body checks we read only until the status line is complete; with them,
//! the body up to `Content-Length` or the end of the connection, at most
//! [`MAX_BODY`] (1 MiB: a longer body fails the check). `expect_digest` is
//! the MD5 of the whole body, as keepalived's HTTP_GET/SSL_GET `digest`.
//!
//! HTTPS is the same exchange over rustls ([`tls_config`]): the certificate
//! is verified against the director's system trust store and the server
//! name (`sni`, default the real server's address), unless `tls_verify =
//! false`, which accepts any certificate (the handshake's signatures are
//! still checked) — what keepalived's SSL_GET does without a `ca`.
//!
//! Script checks run the program through [`crate::director::exec`].

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use md5::Digest as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::MAX_BODY;
use crate::director::exec;

/// What an HTTP(S) probe asks and expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbe {
    pub path: String,
    pub expect_status: u16,
    pub expect_body: Option<String>,
    /// Lower-case hex MD5 of the body.
    pub expect_digest: Option<String>,
}

impl HttpProbe {
    fn reads_body(&self) -> bool {
        self.expect_body.is_some() || self.expect_digest.is_some()
    }
}

/// What a probe checks.
#[derive(Debug, Clone)]
pub enum Probe {
    Tcp,
    Http(HttpProbe),
    Https {
        http: HttpProbe,
        tls: Arc<rustls::ClientConfig>,
        /// `None`: the real server's address.
        sni: Option<ServerName<'static>>,
    },
    /// `argv` with `{address}` and `{port}` replaced per real server.
    Script {
        argv: Vec<String>,
    },
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
    /// Borrowed for the common answers ("connected"): a TCP check then
    /// allocates nothing for its result, which the core keeps as the last
    /// check of each real server (10,000 fresh strings a second at 1,000 ×
    /// 10, scattered over the heap between the checks' scratch memory).
    pub detail: Cow<'static, str>,
    pub took: Duration,
    /// When the check ended (the clock read that gives `took`): the
    /// daemon's main loop takes it as the time of the result, and status
    /// shows it as wall-clock time, instead of reading the clock again.
    pub at: Instant,
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

/// The TLS client settings of an https check: verifying against the system
/// trust store (loaded once per daemon), or accepting any certificate.
pub fn tls_config(verify: bool) -> Arc<rustls::ClientConfig> {
    tls_config_with(verify.then(system_roots))
}

/// [`tls_config`] with these trust anchors (`None`: no verification).
pub fn tls_config_with(roots: Option<Arc<rustls::RootCertStore>>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| {
            // ring supports the default versions; this branch cannot be
            // reached with the provider above.
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .expect("TLS 1.3 with ring")
        });
    let cfg = if let Some(roots) = roots {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    };
    Arc::new(cfg)
}

/// The director's trust store (rustls-native-certs: /etc/ssl/certs and
/// friends, `SSL_CERT_FILE`/`SSL_CERT_DIR`), read once. Certificates it
/// cannot parse are skipped and logged.
pub fn system_roots() -> Arc<rustls::RootCertStore> {
    static ROOTS: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!("https checks: reading the system trust store: {e}");
            }
            let mut store = rustls::RootCertStore::empty();
            let (added, ignored) = store.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "https checks: system trust store");
            if store.is_empty() {
                tracing::warn!(
                    "https checks: no trusted certificate found on this director: every check \
                     with tls_verify = true fails"
                );
            }
            Arc::new(store)
        })
        .clone()
}

/// `tls_verify = false`: any certificate, any name. The handshake signature
/// is still verified (with the certificate's key), so the session is at
/// least with whoever holds that key.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Run `probe` against `addr`, the whole probe bounded by `timeout`.
pub async fn run(probe: &Probe, addr: SocketAddr, timeout: Duration) -> ProbeResult {
    run_from(probe, addr, timeout, Instant::now()).await
}

/// [`run`] with its start read by the caller (a probe task reads the clock
/// once when its timer fires and schedules the checks then due from that
/// read).
///
/// A check reads the clock twice: here `start`, and its end, which gives
/// `took` and the result's time (`at`). Each read is a system call where the
/// clock source has no vDSO path (the lab VM's emulated HPET: a third of the
/// daemon's time there went to clock reads, 2026-12-03), so none is
/// repeated: the deadline is `start + timeout`, not a fresh `timeout()`.
pub async fn run_from(
    probe: &Probe,
    addr: SocketAddr,
    timeout: Duration,
    start: Instant,
) -> ProbeResult {
    if let Probe::Script { argv } = probe {
        // boxed, like the HTTP(S) exchanges in `attempt`
        return Box::pin(script(argv, addr, timeout)).await;
    }
    let deadline = tokio::time::Instant::from_std(start) + timeout;
    let r = tokio::time::timeout_at(deadline, attempt(probe, addr)).await;
    let at = Instant::now();
    let took = at.saturating_duration_since(start);
    let (ok, inconclusive, detail) = match r {
        Err(_) => (
            false,
            false,
            format!("timeout after {}", crate::config::format_duration(timeout)).into(),
        ),
        Ok(Ok(d)) => (true, false, d),
        Ok(Err(Failure::Remote(d))) => (false, false, d.into()),
        Ok(Err(Failure::Local(d))) => (false, true, d.into()),
    };
    ProbeResult {
        ok,
        inconclusive,
        detail,
        took,
        at,
    }
}

/// `{address}` and `{port}` in a script's arguments.
pub fn script_argv(argv: &[String], addr: SocketAddr) -> Vec<String> {
    argv.iter()
        .map(|a| {
            a.replace("{address}", &addr.ip().to_string())
                .replace("{port}", &addr.port().to_string())
        })
        .collect()
}

async fn script(argv: &[String], addr: SocketAddr, timeout: Duration) -> ProbeResult {
    let argv = script_argv(argv, addr);
    let env = [
        ("LVSUP_RS_ADDRESS".to_string(), addr.ip().to_string()),
        ("LVSUP_RS_PORT".to_string(), addr.port().to_string()),
    ];
    let o = exec::run(&argv, &env, timeout).await;
    let mut detail = o.describe(timeout);
    // The first line of what it printed says why, usually.
    if let Some(line) = o.output.lines().map(str::trim).find(|l| !l.is_empty()) {
        let line: String = line.chars().take(200).collect();
        detail = format!("{detail}: {line}");
    }
    ProbeResult {
        ok: o.success(),
        inconclusive: matches!(o.end, exec::End::NotStarted { local: true, .. }),
        detail: detail.into(),
        took: o.took,
        at: Instant::now(),
    }
}

async fn attempt(probe: &Probe, addr: SocketAddr) -> Result<Cow<'static, str>, Failure> {
    let s = TcpStream::connect(addr).await.map_err(|e| {
        if is_local_exhaustion(&e) {
            Failure::Local(format!("no probe socket on the director: {e}"))
        } else {
            Failure::Remote(format!("connect: {e}"))
        }
    })?;
    // Closed with a reset, not a FIN: keepalived's checkers do the same
    // (SO_LINGER 0 on every check socket) so that a check leaves no socket
    // in TIME_WAIT on the director. With a FIN, 1,000 checks a second had
    // 27,000 sockets in TIME_WAIT on the director 38 s into a run (natively,
    // 2026-12-04; 0 with the reset; each stays 60 s), and each check sent
    // more packets than keepalived's (its FIN and the ACK of the server's).
    // A real server sees the check's connection reset after its answer, as
    // with keepalived. Not being able to set it does not make the check
    // fail: the close is then a FIN.
    let _ = s.set_zero_linger();
    // The HTTP(S) exchanges are boxed: they keep a read buffer and, for
    // HTTPS, the TLS state across their awaits. Inline, they made every
    // probe's future (a TCP check's too: a future is as large as its largest
    // branch) over 10 KB, copied on every check and held by every probe
    // task: at 1,000 TCP checks a second 16 % of the daemon's instructions
    // were memcpy, and each task cost its 10 KB (`benches/scale_bench.sh`).
    match probe {
        Probe::Tcp | Probe::Script { .. } => Ok(Cow::Borrowed("connected")),
        Probe::Http(h) => Box::pin(exchange(s, h, &addr.ip().to_string()))
            .await
            .map(Cow::Owned),
        Probe::Https { http, tls, sni } => Box::pin(https(s, addr, http, tls, sni))
            .await
            .map(Cow::Owned),
    }
}

async fn https(
    s: TcpStream,
    addr: SocketAddr,
    http: &HttpProbe,
    tls: &Arc<rustls::ClientConfig>,
    sni: &Option<ServerName<'static>>,
) -> Result<String, Failure> {
    let name = sni
        .clone()
        .unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()));
    // A name (virtual host) in the Host header too, as a browser
    // would send it; else the address.
    let host = match &name {
        ServerName::DnsName(d) => d.as_ref().to_string(),
        _ => addr.ip().to_string(),
    };
    let connector = tokio_rustls::TlsConnector::from(tls.clone());
    let s = connector
        .connect(name, s)
        .await
        .map_err(|e| Failure::Remote(format!("TLS: {e}")))?;
    exchange(s, http, &host).await
}

/// One request and its answer on `s` (plain or TLS).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    h: &HttpProbe,
    host: &str,
) -> Result<String, Failure> {
    let req = request_to(&h.path, host);
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 8192];
    let mut eof = false;
    // The status line.
    let code = loop {
        if let Some(code) = parse_status_line(&buf)? {
            break code;
        }
        if buf.len() > 4096 {
            return Err(Failure::Remote(
                "no HTTP status line in the first 4 KiB".into(),
            ));
        }
        let n = read_some(&mut s, &mut chunk).await?;
        if n == 0 {
            return Err(Failure::Remote(if buf.is_empty() {
                "connection closed without an answer".into()
            } else {
                "connection closed inside the status line".into()
            }));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if code != h.expect_status {
        return Err(format!("HTTP {code}, expected {}", h.expect_status).into());
    }
    if !h.reads_body() {
        return Ok(format!("HTTP {code}"));
    }
    // The headers, then the body.
    let head_end = loop {
        if let Some(i) = memchr::memmem::find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if let Some(i) = memchr::memmem::find(&buf, b"\n\n") {
            break i + 2;
        }
        if buf.len() > 64 * 1024 {
            return Err(Failure::Remote("HTTP headers longer than 64 KiB".into()));
        }
        let n = read_some(&mut s, &mut chunk).await?;
        if n == 0 {
            return Err(Failure::Remote(
                "connection closed inside the headers".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_string())
    };
    if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        return Err(Failure::Remote(
            "chunked body: not supported (an HTTP/1.0 request must not get one)".into(),
        ));
    }
    let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
    if length.is_some_and(|l| l > MAX_BODY) {
        return Err(Failure::Remote(format!(
            "body of {} bytes is longer than the {} bytes a check reads",
            length.unwrap_or_default(),
            MAX_BODY
        )));
    }
    let mut body = buf.split_off(head_end);
    while length.is_none_or(|l| body.len() < l) && !eof {
        if body.len() > MAX_BODY {
            return Err(Failure::Remote(format!(
                "body longer than the {MAX_BODY} bytes a check reads"
            )));
        }
        let n = read_some(&mut s, &mut chunk).await?;
        if n == 0 {
            eof = true;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    if let Some(l) = length {
        if body.len() < l {
            return Err(Failure::Remote(format!(
                "connection closed after {} of {l} body bytes",
                body.len()
            )));
        }
        body.truncate(l);
    }
    check_body(&body, h).map_err(Failure::Remote)?;
    Ok(format!("HTTP {code}, body checked ({} bytes)", body.len()))
}

/// `expect_body` and `expect_digest` against a whole body.
pub fn check_body(body: &[u8], h: &HttpProbe) -> Result<(), String> {
    if let Some(want) = &h.expect_body
        && memchr::memmem::find(body, want.as_bytes()).is_none()
    {
        return Err(format!("body does not contain {want:?}"));
    }
    if let Some(want) = &h.expect_digest {
        let got = md5_hex(body);
        if !got.eq_ignore_ascii_case(want) {
            return Err(format!("body MD5 {got}, expected {want}"));
        }
    }
    Ok(())
}

/// MD5 of `body`, lower-case hex (`md5sum`, keepalived's `genhash`).
pub fn md5_hex(body: &[u8]) -> String {
    let d = md5::Md5::digest(body);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// One read; a TLS peer closing without close_notify counts as the end.
async fn read_some<S: AsyncRead + Unpin>(s: &mut S, chunk: &mut [u8]) -> Result<usize, Failure> {
    match s.read(chunk).await {
        Ok(n) => Ok(n),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(Failure::Remote(format!("read: {e}"))),
    }
}

/// The request a check sends (Host: the real server's address).
pub fn request(path: &str, addr: SocketAddr) -> String {
    request_to(path, &addr.ip().to_string())
}

/// The request with this Host header.
pub fn request_to(path: &str, host: &str) -> String {
    format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: lvsup-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
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

    /// A check's future is what a probe task allocates for each check and
    /// what is built and moved on every check: the HTTP(S) and script paths, which keep
    /// buffers and TLS state across awaits, are boxed so that it stays small
    /// whatever the kind (inline they made it over 10 KB).
    #[test]
    fn a_check_future_stays_small() {
        let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let http = HttpProbe {
            path: "/".into(),
            expect_status: 200,
            expect_body: None,
            expect_digest: None,
        };
        for p in [
            Probe::Tcp,
            Probe::Http(http.clone()),
            Probe::Https {
                http,
                tls: tls_config(false),
                sni: None,
            },
            Probe::Script { argv: vec![] },
        ] {
            let f = run(&p, addr, Duration::from_secs(1));
            let size = std::mem::size_of_val(&f);
            assert!(size <= 1024, "{p:?}: {size} bytes");
        }
    }

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

    /// A check's connection ends with a reset, as keepalived's do: the real
    /// server reads ECONNRESET, not an end of stream (a FIN), and the
    /// director keeps no socket in TIME_WAIT. Both the TCP and the HTTP
    /// check (the HTTP one after reading the whole answer).
    #[tokio::test]
    async fn a_check_closes_its_connection_with_a_reset() {
        use tokio::net::TcpListener;
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut b = [0u8; 512];
                // the HTTP check's request first, then what ends it
                let mut end = s.read(&mut b).await;
                if matches!(end, Ok(n) if n > 0) {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await;
                    end = s.read(&mut b).await;
                }
                let _ = tx.send(end.map_err(|e| e.kind())).await;
            }
        });
        let t = Duration::from_secs(2);
        let r = run(&Probe::Tcp, addr, t).await;
        assert!(r.ok, "{r:?}");
        let end = rx.recv().await.expect("the server saw the check");
        assert_eq!(end, Err(std::io::ErrorKind::ConnectionReset), "TCP check");
        let http = Probe::Http(HttpProbe {
            path: "/".into(),
            expect_status: 200,
            expect_body: None,
            expect_digest: None,
        });
        let r = run(&http, addr, t).await;
        assert!(r.ok, "{r:?}");
        let end = rx.recv().await.expect("the server saw the check");
        assert_eq!(end, Err(std::io::ErrorKind::ConnectionReset), "HTTP check");
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
            &Probe::Http(HttpProbe {
                path: "/".into(),
                expect_status: 200,
                expect_body: None,
                expect_digest: None,
            }),
            addr,
            t,
        )
        .await;
        assert!(!r.ok);
        assert_eq!(r.detail, "HTTP 503, expected 200");
        let r = run(
            &Probe::Http(HttpProbe {
                path: "/".into(),
                expect_status: 503,
                expect_body: None,
                expect_digest: None,
            }),
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
