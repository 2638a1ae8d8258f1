//! The director's health probes against servers of the test's own on
//! 127.0.0.1: HTTP body checks (`expect_body`, `expect_digest`, the 1 MiB
//! bound), HTTPS with a self-signed certificate (verification on fails, off
//! passes, the name is checked), and the daemon's probe settings from
//! director.toml.
#![cfg(target_os = "linux")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lvsup::director::probe::{self, HttpProbe, Probe};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const T: Duration = Duration::from_secs(3);

fn http(body: Option<&str>, digest: Option<&str>) -> HttpProbe {
    HttpProbe {
        path: "/health".into(),
        expect_status: 200,
        expect_body: body.map(str::to_string),
        expect_digest: digest.map(str::to_string),
    }
}

/// Answers every connection with `answer` (after reading the request).
async fn plain_server(answer: Vec<u8>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut b = [0u8; 1024];
                let _ = s.read(&mut b).await;
                let _ = s.write_all(&answer).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

fn answer(body: &[u8], content_length: bool) -> Vec<u8> {
    let mut a = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n".to_vec();
    if content_length {
        a.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    a.extend_from_slice(b"\r\n");
    a.extend_from_slice(body);
    a
}

#[tokio::test]
async fn body_substring_and_md5_digest() {
    let body = b"status: OK\nversion 7\n";
    // md5sum of the body above.
    let md5 = probe::md5_hex(body);
    assert_eq!(md5.len(), 32);
    assert_eq!(
        probe::md5_hex(b""),
        "d41d8cd98f00b204e9800998ecf8427e",
        "MD5 of nothing, as md5sum prints it"
    );
    for content_length in [true, false] {
        let addr = plain_server(answer(body, content_length)).await;
        let run = |h: HttpProbe| async move { probe::run(&Probe::Http(h), addr, T).await };
        let r = run(http(Some("status: OK"), None)).await;
        assert!(r.ok, "{r:?}");
        let r = run(http(Some("status: DOWN"), None)).await;
        assert!(!r.ok);
        assert_eq!(r.detail, "body does not contain \"status: DOWN\"");
        let r = run(http(None, Some(&md5))).await;
        assert!(r.ok, "{r:?}");
        let r = run(http(None, Some(&md5.to_uppercase()))).await;
        assert!(r.ok, "hex case does not matter: {r:?}");
        let wrong = "0".repeat(32);
        let r = run(http(None, Some(&wrong))).await;
        assert!(!r.ok);
        assert_eq!(r.detail, format!("body MD5 {md5}, expected {wrong}"));
        let r = run(http(Some("version 7"), Some(&md5))).await;
        assert!(r.ok, "{r:?}");
    }
}

#[tokio::test]
async fn body_longer_than_1_mib_fails_the_check() {
    let big = vec![b'x'; lvsup::config::MAX_BODY + 10];
    for content_length in [true, false] {
        let addr = plain_server(answer(&big, content_length)).await;
        let r = probe::run(&Probe::Http(http(Some("x"), None)), addr, T).await;
        assert!(!r.ok, "{r:?}");
        assert!(
            r.detail.contains("1048576 bytes a check reads"),
            "{}",
            r.detail
        );
    }
    // Exactly 1 MiB is read whole.
    let max = vec![b'y'; lvsup::config::MAX_BODY];
    let addr = plain_server(answer(&max, false)).await;
    let r = probe::run(
        &Probe::Http(http(None, Some(&probe::md5_hex(&max)))),
        addr,
        T,
    )
    .await;
    assert!(r.ok, "{r:?}");
}

#[tokio::test]
async fn short_body_and_status_mismatch() {
    // Content-Length promises more than comes.
    let addr = plain_server(b"HTTP/1.0 200 OK\r\nContent-Length: 100\r\n\r\nshort".to_vec()).await;
    let r = probe::run(&Probe::Http(http(Some("short"), None)), addr, T).await;
    assert!(!r.ok);
    assert_eq!(r.detail, "connection closed after 5 of 100 body bytes");
    // The status is checked first.
    let addr = plain_server(b"HTTP/1.0 503 Busy\r\n\r\nOK".to_vec()).await;
    let r = probe::run(&Probe::Http(http(Some("OK"), None)), addr, T).await;
    assert_eq!(r.detail, "HTTP 503, expected 200");
}

/// A TLS server with a self-signed certificate for 127.0.0.1 and
/// rs1.example; returns its address and the certificate.
async fn tls_server(body: &'static [u8]) -> (SocketAddr, CertificateDer<'static>) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "rs1.example".into()])
        .expect("certificate");
    let cert = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.clone()], key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(s).await else {
                    return;
                };
                let mut b = [0u8; 1024];
                let n = s.read(&mut b).await.unwrap_or(0);
                // An empty body asks for the request back (to see its Host).
                let body = if body.is_empty() { &b[..n] } else { body };
                let _ = s.write_all(&answer(body, true)).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, cert)
}

fn https(
    tls: Arc<rustls::ClientConfig>,
    sni: Option<&str>,
    body: Option<&str>,
    digest: Option<&str>,
) -> Probe {
    Probe::Https {
        http: http(body, digest),
        tls,
        sni: sni.map(|n| ServerName::try_from(n.to_string()).expect("name")),
    }
}

#[tokio::test]
async fn https_self_signed_fails_verified_passes_unverified() {
    let (addr, _) = tls_server(b"healthy").await;
    // tls_verify = true (the default): the system store does not hold the
    // test's certificate.
    let r = probe::run(&https(probe::tls_config(true), None, None, None), addr, T).await;
    assert!(!r.ok, "{r:?}");
    assert!(r.detail.starts_with("TLS: "), "{}", r.detail);
    assert!(
        r.detail.to_lowercase().contains("certificate"),
        "{}",
        r.detail
    );
    // tls_verify = false: any certificate.
    let r = probe::run(&https(probe::tls_config(false), None, None, None), addr, T).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.detail, "HTTP 200");
    // Body checks over TLS.
    let md5 = probe::md5_hex(b"healthy");
    let r = probe::run(
        &https(probe::tls_config(false), None, Some("heal"), Some(&md5)),
        addr,
        T,
    )
    .await;
    assert!(r.ok, "{r:?}");
    let r = probe::run(
        &https(probe::tls_config(false), None, None, Some(&"f".repeat(32))),
        addr,
        T,
    )
    .await;
    assert!(!r.ok);
    assert!(r.detail.starts_with("body MD5 "), "{}", r.detail);
}

#[tokio::test]
async fn https_verification_checks_the_name() {
    let (addr, cert) = tls_server(b"ok").await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("trust anchor");
    let tls = probe::tls_config_with(Some(Arc::new(roots)));
    // No sni: the real server's address, which the certificate names.
    let r = probe::run(&https(tls.clone(), None, None, None), addr, T).await;
    assert!(r.ok, "{r:?}");
    let r = probe::run(
        &https(tls.clone(), Some("rs1.example"), None, None),
        addr,
        T,
    )
    .await;
    assert!(r.ok, "{r:?}");
    let r = probe::run(&https(tls, Some("rs2.example"), None, None), addr, T).await;
    assert!(!r.ok, "{r:?}");
    assert!(r.detail.starts_with("TLS: "), "{}", r.detail);
    assert!(
        r.detail.contains("rs2.example") || r.detail.to_lowercase().contains("name"),
        "{}",
        r.detail
    );
}

#[tokio::test]
async fn plain_http_to_a_tls_server_and_tls_to_a_plain_server_fail() {
    let (tls_addr, _) = tls_server(b"ok").await;
    let r = probe::run(&Probe::Http(http(None, None)), tls_addr, T).await;
    assert!(!r.ok, "{r:?}");
    let plain = plain_server(answer(b"ok", true)).await;
    let r = probe::run(&https(probe::tls_config(false), None, None, None), plain, T).await;
    assert!(!r.ok, "{r:?}");
    assert!(r.detail.starts_with("TLS: "), "{}", r.detail);
}

/// The Host header names `sni` when it is a DNS name (a virtual host), else
/// the real server's address.
#[tokio::test]
async fn https_host_header_follows_sni() {
    let (addr, _) = tls_server(b"").await;
    let tls = probe::tls_config(false);
    let r = probe::run(
        &https(
            tls.clone(),
            Some("rs1.example"),
            Some("Host: rs1.example\r\n"),
            None,
        ),
        addr,
        T,
    )
    .await;
    assert!(r.ok, "{r:?}");
    let r = probe::run(
        &https(tls.clone(), None, Some("Host: 127.0.0.1\r\n"), None),
        addr,
        T,
    )
    .await;
    assert!(r.ok, "{r:?}");
    // And the check can fail: the other name is not what was sent.
    let r = probe::run(
        &https(tls, Some("rs1.example"), Some("Host: 127.0.0.1"), None),
        addr,
        T,
    )
    .await;
    assert!(!r.ok, "{r:?}");
}
