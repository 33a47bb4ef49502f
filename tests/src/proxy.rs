//! A TCP proxy on loopback that a test cuts and mends: an edge site's uplink (to its hub, to its
//! bucket) dropping and coming back.
//!
//! [`Proxy::cut`] drops every open connection at once and refuses new ones (each is accepted and
//! closed, as a link that is down answers nothing useful); [`Proxy::mend`] lets connections through
//! again. [`Proxy::cut_after`] cuts once a number of bytes more have passed, either way: a link
//! that drops half-way through a transfer.

use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A proxy to one upstream address; it stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    link: Arc<Link>,
    accepting: JoinHandle<()>,
}

/// The state the proxy's connections share.
struct Link {
    up: AtomicBool,
    /// Cancelled at a cut: every connection open then ends.
    open: Mutex<CancellationToken>,
    /// Bytes passed, both ways, over every connection.
    passed: AtomicU64,
    /// Cut once `passed` reaches this.
    cut_at: AtomicU64,
}

impl Link {
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut_at.store(u64::MAX, Ordering::SeqCst);
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        open.cancel();
        *open = CancellationToken::new();
    }

    fn current(&self) -> CancellationToken {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Counts `n` bytes passed; cuts if that reaches the mark.
    fn passed(&self, n: usize) {
        let total = self.passed.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
        if total >= self.cut_at.load(Ordering::SeqCst) {
            self.cut();
        }
    }
}

impl Proxy {
    /// A proxy on a free loopback port to `upstream`, link up.
    pub async fn start(upstream: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the proxy")?;
        let addr = listener.local_addr()?;
        let link = Arc::new(Link {
            up: AtomicBool::new(true),
            open: Mutex::new(CancellationToken::new()),
            passed: AtomicU64::new(0),
            cut_at: AtomicU64::new(u64::MAX),
        });
        let shared = link.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                // The connection's cut signal before the check: a cut in between still ends it.
                let open = shared.current();
                if !shared.up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                tokio::spawn(forward(client, upstream, shared.clone(), open));
            }
        });
        Ok(Self {
            addr,
            link,
            accepting,
        })
    }

    /// A proxy to `upstream` given as a URL (`https://127.0.0.1:PORT`, say) or `host:port`.
    pub async fn to(upstream: &str) -> Result<Self> {
        let hostport = upstream
            .split_once("://")
            .map_or(upstream, |(_, rest)| rest)
            .trim_end_matches('/');
        let addr: SocketAddr = hostport
            .parse()
            .with_context(|| format!("{upstream} is not an address the proxy can dial"))?;
        Self::start(addr).await
    }

    /// Where clients dial the proxy.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every open connection and refuses new ones until [`Proxy::mend`].
    pub fn cut(&self) {
        self.link.cut();
    }

    /// Lets connections through again.
    pub fn mend(&self) {
        self.link.up.store(true, Ordering::SeqCst);
    }

    /// Cuts the link once `bytes` more have passed (either way).
    pub fn cut_after(&self, bytes: u64) {
        let now = self.link.passed.load(Ordering::SeqCst);
        self.link
            .cut_at
            .store(now.saturating_add(bytes), Ordering::SeqCst);
    }

    /// Whether the link is up (a [`Proxy::cut_after`] may have cut it).
    pub fn is_up(&self) -> bool {
        self.link.up.load(Ordering::SeqCst)
    }

    /// Bytes passed so far, both ways.
    pub fn passed(&self) -> u64 {
        self.link.passed.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.link.cut();
    }
}

/// Carries `client`'s connection to `upstream` both ways until either side closes or the link is
/// cut.
async fn forward(client: TcpStream, upstream: SocketAddr, link: Arc<Link>, open: CancellationToken) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let both = async {
        tokio::join!(
            pipe(client_read, server_write, &link),
            pipe(server_read, client_write, &link)
        )
    };
    tokio::select! {
        _ = both => {}
        () = open.cancelled() => {}
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: &Link,
) -> std::io::Result<()> {
    let mut buf = vec![0; 16 << 10];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        to.write_all(&buf[..n]).await?;
        link.passed(n);
    }
}
