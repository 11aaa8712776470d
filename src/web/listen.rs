//! Where the console listens: TCP addresses and Unix domain sockets (`--listen`), and who is
//! on the other end of a connection ([`Peer`]), which identity is decided from.
//!
//! A Unix socket lets the login proxy reach signalbox without a TCP port: `kubectl
//! port-forward` and every other process in the pod's network namespace reach loopback
//! ports, but only processes that can open the socket file (the volume it is on, and its
//! mode) reach the socket. So a proxy on the socket can be trusted (`--trusted-proxy unix`)
//! where a proxy on loopback could not be told apart from a port-forward.
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// The socket file's mode: owner and group may connect (the proxy shares the pod's group,
/// `fsGroup`), nobody else.
pub const SOCKET_MODE: u32 = 0o660;

/// One `--listen` value: `host:port`, or `unix:/path` (also `unix:///path`, as oauth2-proxy
/// writes its upstream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Listen {
    /// Whether only this machine can connect: a loopback address or a Unix socket.
    pub fn is_local(&self) -> bool {
        match self {
            Listen::Tcp(addr) => addr.ip().is_loopback(),
            Listen::Unix(_) => true,
        }
    }
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(path) = text.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(format!("{text:?}: a Unix socket needs a path, e.g. unix:/run/signalbox/sock"));
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        text.parse().map(Listen::Tcp).map_err(|_| format!("{text:?}: expected host:port or unix:/path"))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "http://{addr}"),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Who a connection came from, kept in each request's extensions as `ConnectInfo<Peer>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Tcp(SocketAddr),
    /// A process that could open the socket file; the kernel gives no address.
    Unix,
}

impl Peer {
    /// Whether the connection came from this machine.
    pub fn is_local(&self) -> bool {
        match self {
            Peer::Tcp(addr) => addr.ip().is_loopback(),
            Peer::Unix => true,
        }
    }
}

/// A bound listener.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, SocketFile),
}

/// An accepted connection.
pub enum Connection {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Listener {
    /// Binds `listen`. A Unix socket's stale file (left by a killed process) is replaced;
    /// a socket some process still answers on, or a file that is not a socket, is an error.
    pub async fn bind(listen: &Listen) -> io::Result<Self> {
        match listen {
            Listen::Tcp(addr) => Ok(Listener::Tcp(TcpListener::bind(addr).await?)),
            Listen::Unix(path) => {
                remove_stale_socket(path).await?;
                let listener = UnixListener::bind(path)?;
                let file = SocketFile(path.clone());
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))?;
                Ok(Listener::Unix(listener, file))
            }
        }
    }

    /// Where it listens, with the port the system chose for port 0.
    pub fn local(&self) -> io::Result<Listen> {
        match self {
            Listener::Tcp(listener) => listener.local_addr().map(Listen::Tcp),
            Listener::Unix(_, file) => Ok(Listen::Unix(file.0.clone())),
        }
    }

    pub async fn accept(&self) -> io::Result<(Connection, Peer)> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, addr) = listener.accept().await?;
                Ok((Connection::Tcp(stream), Peer::Tcp(addr)))
            }
            Listener::Unix(listener, _) => {
                let (stream, _) = listener.accept().await?;
                Ok((Connection::Unix(stream), Peer::Unix))
            }
        }
    }
}

/// A Unix socket's file, removed when the listener goes (also when the server task is
/// aborted), so the next start finds no stale socket in the usual case.
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    if !metadata.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    // Another signalbox still serving there keeps its socket.
    if UnixStream::connect(path).await.is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} is in use by another process", path.display()),
        ));
    }
    std::fs::remove_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_values_are_addresses_or_unix_paths() {
        assert_eq!("127.0.0.1:8080".parse(), Ok(Listen::Tcp("127.0.0.1:8080".parse().unwrap())));
        assert_eq!("unix:/run/signalbox/sock".parse(), Ok(Listen::Unix("/run/signalbox/sock".into())));
        assert_eq!("unix:///run/signalbox/sock".parse(), Ok(Listen::Unix("/run/signalbox/sock".into())));
        assert_eq!("unix:sock".parse(), Ok(Listen::Unix("sock".into())));
        assert!("unix:".parse::<Listen>().is_err());
        assert!("localhost".parse::<Listen>().is_err());
    }

    #[tokio::test]
    async fn a_socket_is_bound_with_its_mode_replacing_a_stale_one_and_removed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        // A stale socket: bound, then its listener gone without removing the file.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let listener = Listener::bind(&Listen::Unix(path.clone())).await.expect("the stale socket is replaced");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, SOCKET_MODE);
        let error = Listener::bind(&Listen::Unix(path.clone())).await.err().expect("a live socket is kept");
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
        drop(listener);
        assert!(!path.exists(), "removed with its listener");

        std::fs::write(&path, "data").unwrap();
        let error = Listener::bind(&Listen::Unix(path.clone())).await.err().expect("not a socket");
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "data", "a file that is not a socket is left alone");
    }
}
