//! The load test's upstream: answers every request with the same 1024-byte
//! JSON body (`content-type: application/json`, `content-length: 1024`), built
//! once, on a single-threaded runtime so it takes as little CPU as it can
//! from the proxy under test (`benches/load.sh`).
//!
//! ```text
//! cargo run --release --example upstream -- --listen 127.0.0.1:18081
//! curl -si http://127.0.0.1:18081/anything
//! ```
//!
//! Standalone on purpose (hyper only). It behaves like
//! `sentinel::demo::apps::serve(listener, App::Static1K)`; once that module
//! has landed this can become a call to it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::Response;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

const USAGE: &str = "usage: upstream --listen 127.0.0.1:PORT";

/// A vessel list padded to exactly 1024 bytes.
fn body() -> Bytes {
    let head = concat!(
        r#"{"count":1,"data":[{"ais_last_position":{"lat":59.9071,"lon":10.7534},"#,
        r#""crew_count":22,"eco_score":78.5,"flag":"NO","gross_tonnage":54214,"#,
        r#""id":"v-static","imo":"9395044","name":"Nordic Aurora","#,
        r#""tenant_id":"11111111-1111-1111-1111-111111111111","vessel_type":"container"}],"#,
        r#""padding":""#
    );
    let tail = r#""}"#;
    let mut body = String::with_capacity(1024);
    body.push_str(head);
    body.push_str(&".".repeat(1024usize.saturating_sub(head.len() + tail.len())));
    body.push_str(tail);
    Bytes::from(body)
}

async fn serve(listener: TcpListener) {
    let body = body();
    let length = HeaderValue::from(body.len());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors or similar: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (body, length) = (body.clone(), length.clone());
        tokio::spawn(async move {
            let service = service_fn(move |_req| {
                let mut resp = Response::new(Full::new(body.clone()));
                let headers = resp.headers_mut();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                headers.insert(CONTENT_LENGTH, length.clone());
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = match (args.next().as_deref(), args.next(), args.next()) {
        (Some("--listen"), Some(addr), None) => match addr.parse() {
            Ok(addr) => addr,
            Err(_) => {
                eprintln!("upstream: `--listen` takes IP:PORT, not `{addr}`\n{USAGE}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("upstream: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match TcpListener::bind(listen).await {
            Ok(listener) => {
                eprintln!("upstream: listening on {listen}");
                serve(listener).await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("upstream: cannot listen on {listen}: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
