//! `TCP_NODELAY` on the pool's connections to PostgreSQL.
//!
//! sqlx 0.9.0 stopped setting it (sqlx issue 4335; fixed upstream in pull
//! request 4336, not yet in a release). With Nagle's algorithm on, a
//! statement whose messages leave in two TLS records (sqlx sends its `Sync`
//! apart, and a large `Bind` spans records) holds the second back until the
//! server acknowledges the first, which Linux delays by 40 ms: a commit
//! took ~50 ms instead of ~10 on bench/delivery (bench/RESULTS.md, tenth
//! stop). sqlx gives no access to its socket, so each new connection asks
//! the server which client port it sees, and Herald finds its own
//! descriptor of that socket in `/proc/self/fd` and sets the option on a
//! duplicate of it (`pidfd_getfd(2)`, through rustix, without unsafe code).
//! Where that cannot work (not Linux, a kernel before 5.6, a seccomp filter
//! that refuses it, a proxy that changes the port), nothing changes but the
//! latency, and the log says so once. Remove this when sqlx sets the option
//! itself again.

use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::PgConnection;

static WARNED: AtomicBool = AtomicBool::new(false);

/// Sets `TCP_NODELAY` on the socket of `conn` (a new connection of the
/// pool). Never fails the connection.
pub async fn set_on(conn: &mut PgConnection) {
    let ports: Result<(Option<i32>, Option<i32>), _> =
        sqlx::query_as("SELECT inet_client_port(), inet_server_port()").fetch_one(&mut *conn).await;
    let (client, server) = match ports {
        Ok((Some(client), Some(server))) => match (u16::try_from(client), u16::try_from(server)) {
            (Ok(client), Ok(server)) => (client, server),
            _ => return,
        },
        // No ports: a Unix socket, where Nagle does not apply.
        Ok(_) => return,
        Err(e) => return warn_once(&format!("asking the server for this connection's port failed: {e}")),
    };
    // A walk of the process's descriptors: off the async workers.
    let set = tokio::task::spawn_blocking(move || {
        with_socket(client, server, |fd| rustix::net::sockopt::set_tcp_nodelay(fd, true).map_err(Into::into))
    })
    .await;
    match set {
        Ok(Ok(Some(()))) => {}
        Ok(Ok(None)) => {
            warn_once("no socket of this process has the client port the server reports (a proxy between?)")
        }
        Ok(Err(e)) => warn_once(&e.to_string()),
        Err(e) => warn_once(&e.to_string()),
    }
}

fn warn_once(why: &str) {
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            error = why,
            "could not set TCP_NODELAY on a PostgreSQL connection; statements may wait up to 40 ms for \
             delayed acknowledgements"
        );
    }
}

/// Whether the process's TCP socket from local port `local` to peer port
/// `peer` has `TCP_NODELAY` set; `None` if there is no such socket.
pub fn tcp_nodelay_of(local: u16, peer: u16) -> std::io::Result<Option<bool>> {
    with_socket(local, peer, |fd| rustix::net::sockopt::tcp_nodelay(fd).map_err(Into::into))
}

/// Runs `f` on a duplicate of the process's TCP socket from local port
/// `local` to peer port `peer`, if there is one. A descriptor that cannot
/// be duplicated is skipped; if none matched, the first such error is the
/// answer (a kernel or a seccomp filter that refuses `pidfd_getfd`).
#[cfg(target_os = "linux")]
fn with_socket<T>(
    local: u16,
    peer: u16,
    f: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> std::io::Result<T>,
) -> std::io::Result<Option<T>> {
    use std::os::fd::AsFd;

    use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};

    let port = |addr: rustix::net::SocketAddrAny| std::net::SocketAddr::try_from(addr).ok().map(|a| a.port());
    let me = pidfd_open(getpid(), PidfdFlags::empty())?;
    let mut refused = None;
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Ok(entry) = entry else { continue };
        let Some(fd) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else { continue };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.as_os_str().as_encoded_bytes().starts_with(b"socket:"));
        if !is_socket {
            continue;
        }
        let dup = match pidfd_getfd(&me, fd, PidfdGetfdFlags::empty()) {
            Ok(dup) => dup,
            Err(e) => {
                refused.get_or_insert(e);
                continue;
            }
        };
        let ours = rustix::net::getsockname(&dup).ok().and_then(port) == Some(local)
            && rustix::net::getpeername(&dup).ok().flatten().and_then(port) == Some(peer);
        if ours {
            return f(dup.as_fd()).map(Some);
        }
    }
    match refused {
        Some(e) => Err(std::io::Error::other(format!("pidfd_getfd: {e}"))),
        None => Ok(None),
    }
}

#[cfg(not(target_os = "linux"))]
fn with_socket<T>(
    _local: u16,
    _peer: u16,
    _f: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> std::io::Result<T>,
) -> std::io::Result<Option<T>> {
    Err(std::io::Error::other("only done on Linux"))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::{tcp_nodelay_of, with_socket};

    /// The option set on the duplicate is the socket's own, found by its
    /// two ports and no other.
    #[test]
    fn sets_the_option_on_the_socket_with_those_ports() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (local, peer) = (client.local_addr().unwrap().port(), listener.local_addr().unwrap().port());
        assert!(!client.nodelay().unwrap());
        assert_eq!(tcp_nodelay_of(local, peer).unwrap(), Some(false));
        let set = with_socket(local, peer, |fd| rustix::net::sockopt::set_tcp_nodelay(fd, true).map_err(Into::into));
        assert_eq!(set.unwrap(), Some(()));
        assert!(client.nodelay().unwrap(), "set on the socket itself, not only on the duplicate");
        assert_eq!(tcp_nodelay_of(1, 1).unwrap(), None, "no socket has those ports");
    }
}
