//! A TCP proxy the tests put between buildfund and PostgreSQL, to cut the database off and
//! bring it back the way a server restart does (every connection dropped, new ones refused)
//! without touching the PostgreSQL server other tests share.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    down: Arc<AtomicBool>,
    /// Bumped on every outage: connections of an older generation close.
    generation: watch::Sender<u64>,
    counter: Arc<AtomicU64>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let down = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let counter = Arc::new(AtomicU64::new(0));
        let (down2, gen_tx) = (down.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if down2.load(Ordering::SeqCst) {
                    drop(client); // refused, as by a server that is not up
                    continue;
                }
                let mut gen_rx = gen_tx.subscribe();
                let born = *gen_rx.borrow();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut c, mut s) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut c, &mut s) => {}
                        _ = async {
                            while gen_rx.changed().await.is_ok() {
                                if *gen_rx.borrow() != born { break; }
                            }
                        } => {}
                    }
                });
            }
        });
        Proxy {
            port,
            down,
            generation,
            counter,
        }
    }

    /// Drops every connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        let next = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.generation.send(next);
    }

    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}
