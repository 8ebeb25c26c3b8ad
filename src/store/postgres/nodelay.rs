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
    // No ports: a Unix socket, where Nagle does not apply.
    let Ok((Some(client), Some(server))) = ports else { return };
    let (Ok(client), Ok(server)) = (u16::try_from(client), u16::try_from(server)) else { return };
    let outcome = match tcp_nodelay_of(client, server) {
        Ok(Some(true)) => return,
        Ok(Some(false)) => set(client, server),
        Ok(None) => Err(std::io::Error::other("no socket of this process has that client port")),
        Err(e) => Err(e),
    };
    if let Err(e) = outcome
        && !WARNED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            error = %e,
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

fn set(local: u16, peer: u16) -> std::io::Result<()> {
    with_socket(local, peer, |fd| rustix::net::sockopt::set_tcp_nodelay(fd, true).map_err(Into::into))?
        .ok_or_else(|| std::io::Error::other("the socket went away"))
}

/// Runs `f` on a duplicate of the process's TCP socket from local port
/// `local` to peer port `peer`, if there is one.
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
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Ok(entry) = entry else { continue };
        let Some(fd) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else { continue };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.as_os_str().as_encoded_bytes().starts_with(b"socket:"));
        if !is_socket {
            continue;
        }
        let Ok(dup) = pidfd_getfd(&me, fd, PidfdGetfdFlags::empty()) else { continue };
        let ours = rustix::net::getsockname(&dup).ok().and_then(port) == Some(local)
            && rustix::net::getpeername(&dup).ok().flatten().and_then(port) == Some(peer);
        if ours {
            return f(dup.as_fd()).map(Some);
        }
    }
    Ok(None)
}

#[cfg(not(target_os = "linux"))]
fn with_socket<T>(
    _local: u16,
    _peer: u16,
    _f: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> std::io::Result<T>,
) -> std::io::Result<Option<T>> {
    Err(std::io::Error::other("only done on Linux"))
}
