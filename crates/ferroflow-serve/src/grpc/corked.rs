//! A gRPC connection's socket, written once per turn of the connection.
//!
//! HTTP/2 sends a unary response as three frames: headers, data and trailers. `h2` writes
//! a data frame of more than a few hundred bytes from its own buffer, after flushing what
//! came before, so every response cost two `writev` calls; over loopback each one also
//! runs the receiving side's TCP processing on the sender's core. Here the connection's
//! writes go to a buffer that [`FlushEachTurn`] writes out after every poll of the
//! connection: one write per turn, however many frames (or responses) the turn produced.
//! Reads go through a buffer large enough for a typical request, so a request of a few
//! kilobytes is one `recv`, not two.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Buffered bytes past which a write waits for the socket (backpressure).
const WRITE_CAP: usize = 64 * 1024;
/// The read buffer: reads smaller than this are served from one `recv` of this size.
const READ_CHUNK: usize = 32 * 1024;

/// The write half and what the connection wrote since the last drain.
struct WriteSide {
    half: OwnedWriteHalf,
    out: Vec<u8>,
    /// Bytes of `out` already on the socket.
    sent: usize,
}

impl WriteSide {
    /// Writes the buffered bytes until none are left (`Ready`) or the socket is full
    /// (`Pending`, woken when it takes more).
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.out.len() {
            let n = ready!(Pin::new(&mut self.half).poll_write(cx, &self.out[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.out.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

type Shared = Arc<Mutex<WriteSide>>;

fn lock(w: &Shared) -> MutexGuard<'_, WriteSide> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

/// The connection's side of the socket: buffered reads, deferred writes.
pub(crate) struct CorkedStream {
    read: OwnedReadHalf,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    write: Shared,
}

/// Splits `stream` into the connection's I/O and the handle that writes out what the
/// connection buffered; run the connection inside [`FlushEachTurn`] with that handle.
pub(crate) fn cork(stream: TcpStream) -> (CorkedStream, Drain) {
    let (read, half) = stream.into_split();
    let write = Arc::new(Mutex::new(WriteSide {
        half,
        out: Vec::new(),
        sent: 0,
    }));
    let io = CorkedStream {
        read,
        buf: vec![0; READ_CHUNK].into_boxed_slice(),
        pos: 0,
        len: 0,
        write: write.clone(),
    };
    (io, Drain(write))
}

impl AsyncRead for CorkedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos == this.len {
            if dst.remaining() >= READ_CHUNK {
                return Pin::new(&mut this.read).poll_read(cx, dst);
            }
            let mut rb = ReadBuf::new(&mut this.buf);
            ready!(Pin::new(&mut this.read).poll_read(cx, &mut rb))?;
            this.len = rb.filled().len();
            this.pos = 0;
        }
        let n = dst.remaining().min(this.len - this.pos);
        dst.put_slice(&this.buf[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl CorkedStream {
    /// The write buffer, drained first when it holds its cap or more.
    fn reserve(&self, cx: &mut Context<'_>) -> Poll<io::Result<MutexGuard<'_, WriteSide>>> {
        let mut w = lock(&self.write);
        if w.out.len() >= WRITE_CAP {
            ready!(w.poll_drain(cx))?;
        }
        Poll::Ready(Ok(w))
    }
}

impl AsyncWrite for CorkedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut w = ready!(self.reserve(cx))?;
        w.out.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut w = ready!(self.reserve(cx))?;
        let mut n = 0;
        for b in bufs {
            w.out.extend_from_slice(b);
            n += b.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Deferred: [`FlushEachTurn`] writes the buffer out when this turn of the
    /// connection ends.
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut w = lock(&self.write);
        ready!(w.poll_drain(cx))?;
        Pin::new(&mut w.half).poll_shutdown(cx)
    }
}

/// Writes out what a [`CorkedStream`] buffered.
pub(crate) struct Drain(Shared);

/// Runs a connection and writes out its buffered bytes after every poll; ends when the
/// connection has ended and its last bytes are written (or the socket failed).
pub(crate) struct FlushEachTurn<F> {
    conn: Pin<Box<F>>,
    drain: Drain,
    ended: bool,
}

impl<F: Future> FlushEachTurn<F> {
    /// `conn` reading and writing through the [`CorkedStream`] that `drain` belongs to.
    pub(crate) fn new(conn: F, drain: Drain) -> Self {
        FlushEachTurn {
            conn: Box::pin(conn),
            drain,
            ended: false,
        }
    }
}

impl<F: Future> Future for FlushEachTurn<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if !this.ended && this.conn.as_mut().poll(cx).is_ready() {
            this.ended = true;
        }
        match lock(&this.drain.0).poll_drain(cx) {
            // A socket that fails ends the connection: its bytes cannot be delivered.
            Poll::Ready(Err(_)) => Poll::Ready(()),
            Poll::Ready(Ok(())) if this.ended => Poll::Ready(()),
            _ => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connection that writes three frames in one turn, then a large body in many,
    /// reaches the peer whole and in order.
    #[test]
    fn buffered_writes_arrive_whole_and_in_order() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
            let expect = [b"head".as_slice(), b"data", b"tail", &big].concat();
            let sent = big.clone();
            let server = tokio::spawn(async move {
                let (s, _) = listener.accept().await.unwrap();
                let (mut io, drain) = cork(s);
                let conn = async move {
                    io.write_all(b"head").await.unwrap();
                    let n = io
                        .write_vectored(&[io::IoSlice::new(b"data"), io::IoSlice::new(b"tail")])
                        .await
                        .unwrap();
                    assert_eq!(n, 8);
                    io.flush().await.unwrap();
                    io.write_all(&sent).await.unwrap();
                    let mut echo = [0u8; 5];
                    io.read_exact(&mut echo).await.unwrap();
                    assert_eq!(&echo, b"hello");
                    io.shutdown().await.unwrap();
                };
                FlushEachTurn::new(conn, drain).await;
            });
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.write_all(b"hello").await.unwrap();
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            assert_eq!(got.len(), expect.len());
            assert!(got == expect);
            server.await.unwrap();
        });
    }
}
