//! WebSocket: an `Upgrade` passes through a pool and frames flow both ways afterwards.
//! The origin and the client speak the WebSocket framing by hand over raw TCP.

use crate::config;
use crate::harness::Poolgate;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

/// Read up to the end of an HTTP header.
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        if s.read(&mut byte).unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// One frame: (opcode, payload), unmasking a masked one.
fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).expect("frame header");
    let masked = h[1] & 0x80 != 0;
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).expect("len");
            u16::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut mask = [0u8; 4];
    if masked {
        s.read_exact(&mut mask).expect("mask");
    }
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).expect("payload");
    if masked {
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= mask[i % 4]);
    }
    (h[0] & 0x0f, payload)
}

/// A text frame; clients mask theirs (RFC 6455), servers do not.
fn frame(payload: &[u8], masked: bool) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut out = vec![0x81, payload.len() as u8 | if masked { 0x80 } else { 0 }];
    let mask = [0x12, 0x34, 0x56, 0x78];
    if masked {
        out.extend_from_slice(&mask);
    }
    out.extend(
        payload
            .iter()
            .enumerate()
            .map(|(i, b)| if masked { b ^ mask[i % 4] } else { *b }),
    );
    out
}

/// An origin on a free loopback port that hands its first connection (10 s read timeout) to
/// `serve` on its own thread, with a channel to report on.
fn one_connection<T: Send + 'static>(
    serve: impl FnOnce(TcpStream, mpsc::Sender<T>) + Send + 'static,
) -> (u16, mpsc::Receiver<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((s, _)) = listener.accept() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            serve(s, tx);
        }
    });
    (port, rx)
}

/// An origin that accepts one WebSocket and answers every text frame with `echo: <text>`.
/// Sends the upgrade request it saw on `heads`.
fn websocket_origin() -> (u16, mpsc::Receiver<String>) {
    one_connection(|mut s, tx| {
        let _ = tx.send(read_head(&mut s));
        let reply = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        if s.write_all(reply.as_bytes()).is_err() {
            return;
        }
        for _ in 0..10 {
            let (op, text) = read_frame(&mut s);
            if op != 1 {
                return;
            }
            let answer = [b"echo: ".as_slice(), &text].concat();
            if s.write_all(&frame(&answer, false)).is_err() {
                return;
            }
        }
    })
}

fn talk_through(pool_extra: &str) {
    let (port, heads) = websocket_origin();
    let pg = Poolgate::start(&config(&format!(
        "{{default: {{target_hostname: 127.0.0.1, target_port: {port}{pool_extra}}}}}"
    )));
    let mut s = TcpStream::connect(pg.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let upgrade = "GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    s.write_all(upgrade.as_bytes()).expect("upgrade");
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let seen = heads
        .recv_timeout(Duration::from_secs(10))
        .expect("origin saw it");
    let lower = seen.to_ascii_lowercase();
    assert!(lower.contains("upgrade: websocket"), "{seen}");
    assert!(
        lower.contains("sec-websocket-key: dghlihnhbxbszsbub25jzq=="),
        "{seen}"
    );
    for text in ["hello poolgate", "second message"] {
        s.write_all(&frame(text.as_bytes(), true))
            .expect("send frame");
        let (op, payload) = read_frame(&mut s);
        assert_eq!(op, 1);
        assert_eq!(payload, format!("echo: {text}").into_bytes());
    }
}

#[test]
fn a_websocket_passes_through_in_both_directions() {
    talk_through("");
}

#[test]
fn a_websocket_passes_through_a_retrying_pool() {
    talk_through(", retries: 2");
}

const UPGRADE: &str = "GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// An origin that answers one connection's request head with `reply`, then sends `greeting`
/// (if any) and reports on the channel whether the connection was closed by the other side.
fn scripted_origin(reply: &'static str, greeting: Option<Vec<u8>>) -> (u16, mpsc::Receiver<bool>) {
    one_connection(move |mut s, tx| {
        read_head(&mut s);
        let _ = s.write_all(reply.as_bytes());
        if let Some(greeting) = greeting {
            let _ = s.write_all(&greeting);
        }
        let mut rest = [0u8; 64];
        let closed = matches!(s.read(&mut rest), Ok(0));
        let _ = tx.send(closed);
    })
}

fn pool_on(port: u16) -> String {
    config(&format!(
        "{{default: {{target_hostname: 127.0.0.1, target_port: {port}}}}}"
    ))
}

#[test]
fn a_back_end_that_refuses_the_upgrade_answers_as_usual() {
    let (port, _closed) = scripted_origin(
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\nContent-Type: text/plain\r\n\r\nno ws\n",
        None,
    );
    let pg = Poolgate::start(&pool_on(port));
    let mut s = TcpStream::connect(pg.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(UPGRADE.as_bytes()).expect("upgrade");
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let mut body = [0u8; 6];
    s.read_exact(&mut body).expect("body");
    assert_eq!(&body, b"no ws\n");
}

#[test]
fn what_the_back_end_sends_right_after_101_reaches_the_client_and_a_close_ends_both_sides() {
    let reply = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    let (port, closed) = scripted_origin(reply, Some(frame(b"welcome", false)));
    let pg = Poolgate::start(&pool_on(port));
    let mut s = TcpStream::connect(pg.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(UPGRADE.as_bytes()).expect("upgrade");
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (op, payload) = read_frame(&mut s);
    assert_eq!((op, payload.as_slice()), (1, b"welcome".as_slice()));
    // The client goes away: the back end's side of the tunnel is closed too.
    drop(s);
    let origin_saw_close = closed.recv_timeout(Duration::from_secs(10));
    assert_eq!(origin_saw_close.ok(), Some(true));
}
