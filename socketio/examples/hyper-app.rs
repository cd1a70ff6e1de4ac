//! Socket.IO inside your own hyper server: `/hello` is the application's, everything under
//! `/socket.io/` (including the client bundle) is Socket.IO's.
use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;
use socketio::{Config, SocketIo};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let io = SocketIo::new(Config::default());
    io.of("/").on_connection(|socket| async move {
        socket.on("chat", |socket, event| async move {
            let _ = socket.broadcast().emit("chat", event.args);
        });
    });
    let app = service_fn(|_req: Request<hyper::body::Incoming>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello"))))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    loop {
        let (stream, peer) = listener.accept().await?;
        let service = io.service(app).with_peer(peer);
        tokio::spawn(
            http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades(),
        );
    }
}
