//! The client listeners: `WebServer.http_port`, `http_alt_ports`, `https_port` and
//! `https_alt_ports`, each bound (or taken over from the process a reload replaces) and
//! accepted by poolgate itself, every connection then handed to the front door.
//!
//! Pingora's listening service spawns one task per connection whose state holds the TLS
//! handshake inline (about 8.7 KB, plain connections included) and boxes the application's
//! future on top; an edge proxy with tens of thousands of idle keep-alive clients pays that
//! for each. Here a connection's task is the front door's own future, the TLS handshake is
//! boxed for the moment it runs, and the socket keeps no buffer while idle (the front door
//! lends the head buffer only while bytes arrive, `client_socket.rs` the write buffer only
//! while an answer is written). Listening sockets go through Pingora's table of inherited
//! descriptors, so Pingora's graceful upgrade (`reload`) hands them over as before.

use super::client_socket::ClientSocket;
use super::front_door::FrontDoor;
use async_trait::async_trait;
use pingora::apps::HttpServerApp;
use pingora::listeners::tls::Acceptor;
use pingora::protocols::l4::listener::Listener;
use pingora::protocols::l4::stream::Stream as TcpStream;
use pingora::protocols::Stream;
use pingora::server::{ListenFds, ShutdownWatch};
use pingora::services::Service;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};

/// Connections waiting to be accepted (Pingora's figure; the kernel caps it at `somaxconn`).
const LISTEN_BACKLOG: u32 = 65535;
/// The longest a TLS handshake may take (Pingora's figure).
const TLS_HANDSHAKE: Duration = Duration::from_secs(60);
/// The pause after `accept` fails for want of descriptors, so the loop does not spin.
const OUT_OF_FILES_PAUSE: Duration = Duration::from_millis(100);

/// One listen address, with its TLS acceptor for HTTPS.
pub(super) struct ClientListener {
    pub(super) addr: String,
    pub(super) tls: Option<Arc<Acceptor>>,
}

/// The service that accepts every client connection (see the module doc).
pub(super) struct ClientListeners<A> {
    door: Arc<FrontDoor<A>>,
    listeners: Vec<ClientListener>,
}

impl<A> ClientListeners<A> {
    pub(super) fn new(door: FrontDoor<A>, listeners: Vec<ClientListener>) -> Self {
        ClientListeners {
            door: Arc::new(door),
            listeners,
        }
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> Service for ClientListeners<A> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        let mut accepting = Vec::new();
        for listener in std::mem::take(&mut self.listeners) {
            let socket = match listening_socket(&listener.addr, fds.as_ref()) {
                Ok(socket) => socket,
                Err(e) => {
                    // The addresses were probed before start; this is a race with another
                    // program, and a proxy without its listener cannot serve.
                    log::error!("cannot listen on {}: {e}", listener.addr);
                    std::process::exit(1);
                }
            };
            let door = self.door.clone();
            let shutdown = shutdown.clone();
            accepting.push(tokio::spawn(accept_loop(socket, listener, door, shutdown)));
        }
        for task in accepting {
            let _ = task.await;
        }
        self.door.cleanup().await;
    }

    fn name(&self) -> &str {
        "poolgate"
    }
}

/// The listening socket for `addr`: the one inherited from the process being replaced, else
/// a new one, recorded in the table so that the next reload inherits it in turn.
fn listening_socket(addr: &str, fds: Option<&ListenFds>) -> io::Result<TcpListener> {
    let Some(fds) = fds else {
        return bind(addr);
    };
    let mut table = fds.lock();
    if let Some(&fd) = table.get(addr) {
        // SAFETY: the descriptor is a listening TCP socket the replaced process passed on for
        // this address; only this listener takes it.
        #[allow(unsafe_code)]
        let socket = unsafe { std::net::TcpListener::from_raw_fd(fd) };
        socket.set_nonblocking(true)?;
        return TcpListener::from_std(socket);
    }
    let socket = bind(addr)?;
    table.add(addr.to_string(), socket.as_raw_fd());
    Ok(socket)
}

fn bind(addr: &str) -> io::Result<TcpListener> {
    let at: SocketAddr = addr
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
    let socket = match at {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(at)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Accept connections until the server shuts down, each served in a task of its own.
async fn accept_loop<A: HttpServerApp + Send + Sync + 'static>(
    socket: TcpListener,
    listener: ClientListener,
    door: Arc<FrontDoor<A>>,
    mut shutdown: ShutdownWatch,
) {
    let socket = Listener::from(socket);
    loop {
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted,
            changed = shutdown.changed() => match changed {
                Ok(()) if !*shutdown.borrow() => continue,
                _ => break,
            },
        };
        match accepted {
            Ok(stream) => {
                // Past `http_max_connections` the socket closes here: no task, no handshake.
                let Some(slot) = door.admit() else {
                    continue;
                };
                let (tls, door, shutdown) = (listener.tls.clone(), door.clone(), shutdown.clone());
                tokio::spawn(async move {
                    if let Some(stream) = open(stream, tls.as_deref()).await {
                        door.serve(stream, slot, &shutdown).await;
                    }
                });
            }
            Err(e) => {
                log::error!("accepting on {}: {e}", listener.addr);
                if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                    tokio::time::sleep(OUT_OF_FILES_PAUSE).await;
                }
            }
        }
    }
}

/// The accepted socket as the front door serves it: as it is, or after the TLS handshake.
async fn open(mut stream: TcpStream, tls: Option<&Acceptor>) -> Option<Stream> {
    if let Err(e) = stream.set_nodelay() {
        log::debug!("TCP_NODELAY on a client socket: {e}");
    }
    let socket = ClientSocket::new(stream);
    let Some(acceptor) = tls else {
        return Some(Box::new(socket));
    };
    let peer = socket.peer_addr();
    // Boxed: the handshake's state is large and lives only as long as the handshake.
    let handshake = Box::pin(acceptor.tls_handshake(socket));
    match tokio::time::timeout(TLS_HANDSHAKE, handshake).await {
        Ok(Ok(tls)) => Some(Box::new(tls)),
        Ok(Err(e)) => {
            log::warn!("TLS handshake with {}: {e}", client(peer.as_ref()));
            None
        }
        Err(_) => {
            log::warn!("TLS handshake with {} timed out", client(peer.as_ref()));
            None
        }
    }
}

fn client(peer: Option<&pingora::protocols::l4::socket::SocketAddr>) -> String {
    peer.map_or_else(|| "a client".to_string(), |p| p.to_string())
}
