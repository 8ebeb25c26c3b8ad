//! Slow, idle and too many connections (issue 13, finding 2), over raw TCP
//! sockets against the real server with short, test-sized limits; and
//! cleartext HTTP/2 with prior knowledge on the same listener.
//!
//! "Eventually closed" waits are generous upper bounds, never measurements.

use std::time::Duration;

use axum::body::Bytes;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Backend, TestApp, TestDb};

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(3600);
/// How long a test waits for something that is due after [`SHORT`].
const EVENTUALLY: Duration = Duration::from_secs(20);

async fn app_with(change: impl FnOnce(&mut herald::config::HttpConfig)) -> TestApp {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    TestApp::spawn_with(Backend::Sqlite, db, |config| {
        config.delivery.workers = false;
        config.http.header_timeout = LONG;
        config.http.idle_timeout = LONG;
        config.http.body_timeout = LONG;
        change(&mut config.http);
    })
    .await
}

/// Reads until the peer closes; what it sent before.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(EVENTUALLY, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server did not close the connection; it sent {:?}", String::from_utf8_lossy(&got));
    String::from_utf8_lossy(&got).into_owned()
}

/// Sends a whole `GET /healthz` and reads its whole answer, keeping the
/// connection open.
async fn healthz_on(stream: &mut TcpStream) {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n").await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"ok") {
        let n = tokio::time::timeout(EVENTUALLY, stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&got));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_request_line_is_closed_after_the_header_timeout() {
    let app = app_with(|http| http.header_timeout = SHORT).await;
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /heal").await.unwrap();
    let answer = read_to_close(&mut slow).await;
    assert!(!answer.contains("200"), "{answer}");
    // Silence from the start counts too.
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    read_to_close(&mut silent).await;
    // The server is fine.
    assert_eq!(reqwest::get(app.url("/healthz")).await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = app_with(|http| http.idle_timeout = SHORT).await;
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    healthz_on(&mut conn).await;
    healthz_on(&mut conn).await;
    assert_eq!(read_to_close(&mut conn).await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dribbling_body_is_cut_off_with_408_in_the_family_envelope() {
    let app = app_with(|http| http.body_timeout = SHORT).await;
    for (path, check) in [
        (
            "/admin/v1/orgs",
            &(|body: &str| body.contains("urn:herald:problem:request-timeout")) as &dyn Fn(&str) -> bool,
        ),
        ("/api/v1/departments", &|body: &str| body.contains("LE_ERR_SS_408")),
        ("/management/v1/policies/notification", &|body: &str| body.contains("\"code\":4")),
    ] {
        let mut conn = TcpStream::connect(app.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"na",
            app.admin_token
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let answer = read_to_close(&mut conn).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(answer.to_ascii_lowercase().contains("connection: close"), "{path}: {answer}");
        assert!(check(&answer), "{path}: {answer}");
    }
}

/// A body of 8 MiB: more than the socket buffers hold while the server
/// reads nothing (its receive buffer grows only as it reads), so a client
/// can write it whole only if the server reads on.
const FAR_OVER: usize = 128;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_far_over_the_limit_gets_its_413_not_a_reset() {
    let app = app_with(|_| {}).await;
    let chunk = vec![b'x'; 64 * 1024];
    // Declared, then chunked without a length: the client sends it all and
    // reads only then, as most clients do.
    for chunked in [false, true] {
        let mut conn = TcpStream::connect(app.addr).await.unwrap();
        let framing = if chunked {
            "Transfer-Encoding: chunked".to_owned()
        } else {
            format!("Content-Length: {}", FAR_OVER * chunk.len())
        };
        let head = format!(
            "POST /admin/v1/orgs HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\n{framing}\r\n\r\n",
            app.admin_token
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        for _ in 0..FAR_OVER {
            let sent = if chunked {
                let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
                conn.write_all(&framed).await
            } else {
                conn.write_all(&chunk).await
            };
            sent.unwrap_or_else(|e| panic!("chunked: {chunked}: the server stopped reading mid-upload: {e}"));
        }
        if chunked {
            conn.write_all(b"0\r\n\r\n").await.unwrap();
        }
        let answer = read_to_close(&mut conn).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "chunked: {chunked}: {answer}");
        assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
        assert!(answer.contains("urn:herald:problem:payload-too-large"), "{answer}");
    }
    // A client that waits for `100 Continue` gets the 413 instead, at once.
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/departments HTTP/1.1\r\nHost: herald\r\nX-Auth-Token: {}\r\n\
         Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        app.admin_token,
        FAR_OVER * chunk.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut conn).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("LE_ERR_SS_413"), "in Leegality's envelope: {answer}");
    // Nothing was stored, and the server serves on.
    let orgs = app.get("/admin/v1/orgs", &app.admin_token).await;
    assert_eq!(orgs.json["orgs"].as_array().map(Vec::len), Some(0), "{}", orgs.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_the_longest_waiting_idle_connection_makes_room() {
    let app = app_with(|http| http.max_connections = 2).await;
    // Two kept-alive connections, each proven accepted by an answer.
    let mut first = TcpStream::connect(app.addr).await.unwrap();
    healthz_on(&mut first).await;
    let mut second = TcpStream::connect(app.addr).await.unwrap();
    healthz_on(&mut second).await;

    let third = tokio::time::timeout(EVENTUALLY, reqwest::get(app.url("/healthz"))).await;
    assert_eq!(third.expect("served at the cap").unwrap().status(), 200);
    assert_eq!(read_to_close(&mut first).await, "", "the longest idle one was closed");
    healthz_on(&mut second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_with_every_request_in_flight_new_connections_wait() {
    let app = app_with(|http| http.max_connections = 2).await;
    // Two requests in flight: their bodies are still coming.
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut conn = TcpStream::connect(app.addr).await.unwrap();
        let head = format!(
            "POST /admin/v1/orgs HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 15\r\n\r\n{{\"name\":",
            app.admin_token
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        busy.push(conn);
    }
    // Both are accepted once /healthz can no longer get in.
    let mut third = tokio::spawn(reqwest::get(app.url("/healthz")));
    let mut waited = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if third.is_finished() {
            // It got in before both were accepted; try again.
            third = tokio::spawn(reqwest::get(app.url("/healthz")));
        } else {
            waited = true;
            break;
        }
    }
    assert!(waited, "a third connection was always served while two requests were in flight");
    // One request completes; its connection is then idle and makes room.
    busy[0].write_all(b"\"abcde\"}").await.unwrap();
    let answered = tokio::time::timeout(EVENTUALLY, third).await.expect("served once a request ended");
    assert_eq!(answered.unwrap().unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleartext_http2_with_prior_knowledge_is_served() {
    let app = app_with(|_| {}).await;
    let h2 = crate::support::client_builder().http2_prior_knowledge().build().unwrap();
    for _ in 0..3 {
        let res = h2.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(res.version(), reqwest::Version::HTTP_2);
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "ok");
    }
    // An error comes in its envelope over HTTP/2 as well.
    let res = h2.get(app.url("/v1/audit")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    // HTTP/1.1 on the same port.
    let res = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_11);
}

/// How many `/openapi.json` a stalled reader asks for: more than the
/// kernel's socket buffers (up to 4 MiB on the server's side) and hyper's
/// write buffer can take, so the server's writes stop.
const PIPELINED: usize = 48;

/// A client with a small receive buffer that asks for `/openapi.json`
/// (about 160 KB) [`PIPELINED`] times in one go and then never reads.
async fn stalled_reader(app: &TestApp) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut conn = socket.connect(app.addr).await.unwrap();
    let request = "GET /openapi.json HTTP/1.1\r\nHost: herald\r\n\r\n".repeat(PIPELINED);
    conn.write_all(request.as_bytes()).await.unwrap();
    conn
}

/// Reads until the peer closes; how many bytes it sent before.
async fn count_to_close(stream: &mut TcpStream) -> usize {
    let mut total = 0;
    let read = tokio::time::timeout(EVENTUALLY, async {
        let mut buf = vec![0u8; 65536];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server did not close the connection; it sent {total} bytes");
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_after_the_write_timeout() {
    let app = app_with(|http| http.write_timeout = SHORT).await;
    let one = reqwest::get(app.url("/openapi.json")).await.unwrap().bytes().await.unwrap().len();
    let mut stalled = stalled_reader(&app).await;
    // Time for the server to fill every buffer and give up; reading sooner
    // would let its writes go on.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = count_to_close(&mut stalled).await;
    assert!(got < one * PIPELINED, "cut off, not finished: {got} bytes");
    // The server is fine.
    assert_eq!(reqwest::get(app.url("/healthz")).await.unwrap().status(), 200);
}

/// An HTTP/2 client that asks for `/healthz` with its stream window at 0,
/// so the body can never be sent, while its connection task answers pings.
/// The response is kept: dropping it would cancel the stream.
async fn shut_window_client(app: &TestApp) -> (h2::client::SendRequest<Bytes>, h2::RecvStream) {
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    let (mut client, connection) =
        h2::client::Builder::new().initial_window_size(0).handshake::<_, Bytes>(tcp).await.unwrap();
    tokio::spawn(connection);
    let request = axum::http::Request::get(app.url("/healthz")).body(()).unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    // The head is not flow-controlled and arrives; the body stays behind.
    let response = tokio::time::timeout(EVENTUALLY, response).await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    (client, response.into_body())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_with_a_shut_window_cannot_hold_the_cap() {
    let app = app_with(|http| {
        http.max_connections = 2;
        http.write_timeout = SHORT;
    })
    .await;
    let _held = [shut_window_client(&app).await, shut_window_client(&app).await];
    // Both have a response in flight that cannot move; a new connection
    // gets in once the write timeout closes one.
    let healthz = tokio::time::timeout(EVENTUALLY, reqwest::get(app.url("/healthz"))).await;
    assert_eq!(healthz.expect("served at the cap").unwrap().status(), 200);
}
