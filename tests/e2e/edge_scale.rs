//! Many clients on one host: thousands of idle keep-alive clients held by one worker thread,
//! their idle timeout (`WebServer.http_keep_alive_timeout`), and the open-file soft limit
//! poolgate raises to the hard limit at start.

use crate::harness::{client, Poolgate};
use crate::{config_with, origin};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn pools(port: u16) -> String {
    format!("{{default: {{target_hostname: 127.0.0.1, target_port: {port}}}}}")
}

/// Raise this test process's own soft limit to its hard limit; the limit now.
fn raise_own_open_file_limit() -> u64 {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
    if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    }
}

/// Send one GET on `s` and read its whole answer (Content-Length framing); the status line.
fn exchange(s: &mut TcpStream, addr: SocketAddr) -> String {
    let request = format!("GET /scale HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return "write failed".into();
    }
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match s.read(&mut chunk) {
            Ok(n) if n > 0 => got.extend_from_slice(&chunk[..n]),
            _ => return "closed".into(),
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while got.len() < head_end + len {
        match s.read(&mut chunk) {
            Ok(n) if n > 0 => got.extend_from_slice(&chunk[..n]),
            _ => return "body cut short".into(),
        }
    }
    head.lines().next().unwrap_or_default().to_string()
}

/// `n` keep-alive clients, each answered once and left open.
fn idle_clients(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("client {i}: {e}"));
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let status = exchange(&mut s, addr);
            assert_eq!(status, "http/1.1 200 ok", "client {i}");
            s
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_keep_alive_clients_on_one_thread_leave_new_clients_served() {
    // Each client holds a descriptor here and one in poolgate.
    let limit = raise_own_open_file_limit();
    let n = 3000.min(limit.saturating_sub(256) as usize);
    let o = origin::http();
    let web = "  http_keep_alive_timeout: 600\n";
    let config = config_with(web, &pools(o.port())).replace("threads: 2", "threads: 1");
    let pg = Poolgate::start(&config);
    let addr = pg.addr();
    let mut clients = tokio::task::spawn_blocking(move || idle_clients(addr, n))
        .await
        .expect("clients");
    assert_eq!(clients.len(), n);

    // A new client is served while they all wait.
    let resp = client()
        .get(pg.url("/fresh"))
        .send()
        .await
        .expect("new client");
    assert_eq!(resp.status(), 200);

    // And every idle client is still open and answered again.
    let statuses = tokio::task::spawn_blocking(move || {
        clients
            .iter_mut()
            .map(|s| exchange(s, addr))
            .collect::<Vec<_>>()
    })
    .await
    .expect("second round");
    let failed: Vec<_> = statuses
        .iter()
        .filter(|s| *s != "http/1.1 200 ok")
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {n} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(!pg.log().contains("accepting on"), "{}", pg.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_clients_are_closed_after_http_keep_alive_timeout() {
    raise_own_open_file_limit();
    let o = origin::http();
    let web = "  http_timeout: 60\n  http_keep_alive_timeout: 1\n";
    let pg = Poolgate::start(&config_with(web, &pools(o.port())));
    let addr = pg.addr();
    let closed = tokio::task::spawn_blocking(move || {
        let mut clients = idle_clients(addr, 300);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut closed = 0;
        for s in &mut clients {
            let mut buf = [0u8; 64];
            while Instant::now() < deadline {
                match s.read(&mut buf) {
                    Ok(0) => {
                        closed += 1;
                        break;
                    }
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                        closed += 1;
                        break;
                    }
                    Err(_) => continue,
                }
            }
        }
        closed
    })
    .await
    .expect("clients");
    assert_eq!(closed, 300, "every idle client closed by poolgate");
}

#[test]
fn a_low_open_file_soft_limit_is_raised_to_the_hard_limit_at_start() {
    let hard = raise_own_open_file_limit();
    if hard < 2048 {
        eprintln!("skipped: the hard open-file limit here is {hard}");
        return;
    }
    let o = origin::http();
    let pg = Poolgate::start_with_open_file_limit(&config_with("", &pools(o.port())), 256);
    assert!(
        pg.wait_for_log(&format!("soft limit raised from 256 to {hard}")),
        "{}",
        pg.log()
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", pg.pid())).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open files line");
    let figures: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(figures.get(3), Some(&hard.to_string().as_str()), "{line}");
    // More clients at once than the soft limit it was started with.
    let clients = idle_clients(pg.addr(), 600);
    assert_eq!(clients.len(), 600);
}
