//! One WebSocket connection's task: connect through the transport, then read frames into the
//! engine's inbox and write from the connection's own bounded queue. It never touches the
//! engine.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use keel_core::engine::link::LinkId;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::{Msg, WS_MESSAGE_BYTES_MAX};

/// One WebSocket connection: connect, then read into the inbox and write from the queue.
pub(super) async fn connection(
    link: LinkId,
    conn: u64,
    url: String,
    connector: Arc<dyn crate::transport::Connector>,
    mut writes: mpsc::Receiver<String>,
    inbox: mpsc::Sender<Msg>,
) {
    let ws = match open(&url, connector).await {
        Ok(ws) => ws,
        Err(error) => {
            let _ = inbox.send(Msg::WsConnectFailed { link, conn, error }).await;
            return;
        }
    };
    if inbox.send(Msg::WsConnected { link, conn }).await.is_err() {
        return;
    }
    let (mut sink, mut stream) = ws.split();
    let reason = loop {
        tokio::select! {
            biased;
            w = writes.recv() => match w {
                Some(text) => {
                    if let Err(e) = sink.send(Message::Text(text.into())).await {
                        break format!("write failed: {e}");
                    }
                }
                None => {
                    // The engine closed this connection.
                    let _ = sink.send(Message::Close(None)).await;
                    return;
                }
            },
            m = stream.next() => match m {
                Some(Ok(Message::Text(text))) => {
                    // Waiting for room here slows this reader down, never the event loop.
                    let received = Instant::now();
                    if inbox.send(Msg::WsFrame { link, conn, text, received }).await.is_err() {
                        return;
                    }
                    // Let the loop apply this frame before this task goes back to the socket: on
                    // the one-thread runtime it would otherwise wait behind a read that finds
                    // nothing (a syscall), or behind the rest of a burst already buffered.
                    tokio::task::yield_now().await;
                }
                Some(Ok(Message::Ping(p))) => {
                    let _ = sink.send(Message::Pong(p)).await;
                }
                Some(Ok(Message::Close(f))) => break format!("closed by venue: {f:?}"),
                Some(Ok(Message::Binary(b))) => {
                    let _ = b;
                    continue;
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => break format!("read failed: {e}"),
                None => break "stream ended".to_string(),
            },
        }
    };
    let _ = inbox.send(Msg::WsClosed { link, conn, reason }).await;
}

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<
    tokio_tungstenite::MaybeTlsStream<Box<dyn crate::transport::Io>>,
>;

pub(crate) async fn open(
    url: &str,
    connector: Arc<dyn crate::transport::Connector>,
) -> Result<Ws, String> {
    // Errors name the URL as shown, never with its credentials.
    let shown = keel_core::redact::redact_url(url);
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("bad url {shown}: {e}"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("no host in {shown}"))?
        .to_string();
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| format!("no port for {shown}"))?;
    let io = connector
        .connect(host, port)
        .await
        .map_err(|e| format!("connect to {shown}: {e}"))?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(WS_MESSAGE_BYTES_MAX))
        .max_frame_size(Some(WS_MESSAGE_BYTES_MAX));
    let (ws, _) = tokio_tungstenite::client_async_tls_with_config(url, io, Some(config), None)
        .await
        .map_err(|e| {
            format!(
                "handshake with {shown}: {}",
                keel_core::redact::redact_urls_in(&e.to_string())
            )
        })?;
    Ok(ws)
}
