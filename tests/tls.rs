//! HTTPS at the edge: a certificate per SNI name, HTTP/2 over TLS, and
//! certificates reloaded when their files change.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly, in their helpers too"
)]

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A self-signed P-256 certificate for `name`, written to `dir/{file}.pem|.key`.
fn self_signed(dir: &Path, file: &str, name: &str) -> Vec<u8> {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .arg("-keyout")
        .arg(dir.join(format!("{file}.key")))
        .arg("-out")
        .arg(dir.join(format!("{file}.pem")))
        .args([
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            &format!("subjectAltName=DNS:{name}"),
        ])
        // An end-entity certificate: rustls refuses a CA certificate as a server's.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "keyUsage=critical,digitalSignature"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is needed for the TLS tests");
    assert!(status.success());
    std::fs::read(dir.join(format!("{file}.pem"))).unwrap()
}

fn client_trusting(pem: &[u8], names: &[&str], addr: std::net::SocketAddr) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap())
        .timeout(Duration::from_secs(5));
    for n in names {
        b = b.resolve(n, addr);
    }
    b.build().unwrap()
}

#[tokio::test]
async fn sni_certificates_http2_and_reload() {
    let certs = std::env::temp_dir().join(format!("sentinel-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&certs).unwrap();
    let a = self_signed(&certs, "a", "a.test");
    let b = self_signed(&certs, "b", "b.test");
    let port = free_port();
    let tls_addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let extra = format!(
        "[listen.tls]\naddress = \"{tls_addr}\"\ncertificates = [\n  {{ server_names = [\"a.test\"], cert = \"{d}/a.pem\", key = \"{d}/a.key\" }},\n  {{ server_names = [\"b.test\"], cert = \"{d}/b.pem\", key = \"{d}/b.key\" }},\n]\n",
        d = certs.display()
    );
    let gw = start(Options {
        extra_config: extra,
        capture_log: true,
        ..Options::default()
    });
    // Wait for the TLS listener.
    for _ in 0..100 {
        if std::net::TcpStream::connect(tls_addr).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Each name gets its own certificate: trusting only A's, a.test works and b.test fails.
    let only_a = client_trusting(&a, &["a.test", "b.test"], tls_addr);
    let resp = only_a
        .get(format!("https://a.test:{port}/status/200"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.version(),
        reqwest::Version::HTTP_2,
        "ALPN should negotiate HTTP/2"
    );
    assert!(resp.headers().contains_key("x-sentinel-request-id"));
    assert!(only_a
        .get(format!("https://b.test:{port}/status/200"))
        .send()
        .await
        .is_err());
    let only_b = client_trusting(&b, &["b.test"], tls_addr);
    assert_eq!(
        only_b
            .get(format!("https://b.test:{port}/status/200"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Authorization works over HTTP/2 as over HTTP/1.1.
    let resp = only_a
        .get(format!("https://a.test:{port}/msw/vessels"))
        .bearer_auth(token(VICTOR, NORDIC))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = only_a
        .get(format!("https://a.test:{port}/msw/vessels"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Replace b's certificate: the gateway picks the new one up without a restart.
    let b2 = self_signed(&certs, "b", "b.test");
    let new_b = client_trusting(&b2, &["b.test"], tls_addr);
    let mut reloaded = false;
    for _ in 0..100 {
        if let Ok(r) = new_b
            .get(format!("https://b.test:{port}/status/200"))
            .send()
            .await
        {
            reloaded = r.status() == 200;
            if reloaded {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reloaded, "new certificate was not served");
    // A broken certificate file keeps the current one. Wait until the
    // gateway has read and refused it, then connect afresh: a pooled
    // connection keeps the handshake it made with the certificate before.
    std::fs::write(certs.join("b.pem"), b"not a certificate").unwrap();
    let waited = std::time::Instant::now();
    while !gw.log().contains("TLS certificate reload failed") {
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "the broken certificate was never read; log:\n{}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fresh = client_trusting(&b2, &["b.test"], tls_addr);
    assert_eq!(
        fresh
            .get(format!("https://b.test:{port}/status/200"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    drop(gw);
    let _ = std::fs::remove_dir_all(&certs);
}
