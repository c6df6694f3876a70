//! Private requests and live-order writes as the driver handles them: requests are signed here
//! (the key pair never enters the engine) with the wall clock plus the engine's offset to the
//! venue's, and sent on their own task; live writes go to the store thread in order, never
//! dropped, and the store answers each intent back through the inbox.

use keel_core::engine::StoreWrite;
use keel_core::engine::scheduler::HttpError;
use keel_core::trading::orders::{Method, Request};
use keel_core::wire::sign::rest_signature;

use super::{Driver, Msg};

/// How far ahead of the wall clock a private-stream authentication expires.
pub const PRIVATE_AUTH_EXPIRES_MS: u64 = 5_000;
use crate::transport::SignedRequest;

/// A store written in line, on the loop: for simulations, where a store thread would make the
/// run depend on the real clock. The production store is the thread behind `with_store`.
pub trait LiveStore: Send {
    fn write(&mut self, w: &StoreWrite) -> Result<(), String>;
}

impl Driver {
    /// Live writes go to `s` in line instead of the store thread (simulations only).
    pub fn with_live_store(mut self, s: Box<dyn LiveStore>) -> Driver {
        self.live_store = Some(s);
        self
    }

    pub(super) fn send_private(&mut self, r: Request) {
        let Some(c) = self.credentials.as_ref() else {
            // Fail closed: nothing unsigned ever leaves.
            self.local.push(keel_core::engine::Input::PrivateError {
                id: r.id,
                error: HttpError::Other("no API key configured: private request not sent".into()),
            });
            return;
        };
        let wall = (self.config.wall_ms)() as i64;
        let ts = wall.saturating_add(r.clock_offset_ms).max(0) as u64;
        let sign = rest_signature(&c.api_secret, ts, &c.api_key, r.recv_window_ms, &r.payload);
        let post = r.method == Method::Post;
        let mut url = format!("{}{}", self.config.rest_base, r.path);
        if !post && !r.payload.is_empty() {
            url.push('?');
            url.push_str(&r.payload);
        }
        let req = SignedRequest {
            post,
            url,
            headers: vec![
                ("X-BAPI-API-KEY", c.api_key.clone()),
                ("X-BAPI-TIMESTAMP", ts.to_string()),
                ("X-BAPI-RECV-WINDOW", r.recv_window_ms.to_string()),
                ("X-BAPI-SIGN", sign),
            ],
            body: if post { r.payload } else { String::new() },
        };
        let (http, tx, wall_ms, id, timeout) = (
            self.transports.http.clone(),
            self.inbox_tx.clone(),
            self.config.wall_ms.clone(),
            r.id,
            r.timeout,
        );
        tokio::spawn(async move {
            let result = http.send(req, timeout).await;
            let wall_ms = wall_ms();
            // A closed inbox means the driver is gone; the order machine of the next run looks
            // the order up.
            let _ = tx
                .send(Msg::Private {
                    id,
                    result,
                    wall_ms,
                })
                .await;
        });
    }

    /// Signs `op: auth` for a private-stream connection (websocket/wss-authentication.mdx:
    /// HMAC of "GET/realtime" + expires). Without a key pair nothing is sent and the link's
    /// wait for the answer ends the connection.
    pub(super) fn authenticate(&mut self, link: keel_core::engine::link::LinkId, conn: u64) {
        let Some(c) = self.credentials.as_ref() else {
            return;
        };
        let expires = (self.config.wall_ms)() + PRIVATE_AUTH_EXPIRES_MS;
        let sign = keel_core::wire::sign::ws_auth_signature(&c.api_secret, expires);
        let text = format!(
            r#"{{"req_id":"auth-{conn}","op":"auth","args":["{}",{expires},"{sign}"]}}"#,
            c.api_key
        );
        let queued = match self.conns.get(&link) {
            Some(x) if x.conn == conn => x.tx.try_send(text).is_ok(),
            _ => true,
        };
        if !queued {
            self.local
                .push(keel_core::engine::Input::WsWriteOverflow { link, conn });
        }
    }

    pub(super) fn store_live(&mut self, w: StoreWrite) {
        if let Some(ls) = self.live_store.as_mut() {
            let intent = match &w {
                StoreWrite::Order(r) => (r.stage == keel_core::trading::orders::Stage::Intent)
                    .then(|| r.link_id.clone()),
                StoreWrite::Fill(_) => None,
            };
            match ls.write(&w) {
                Ok(()) => {
                    if let Some(link_id) = intent {
                        self.local
                            .push(keel_core::engine::Input::Durable { link_id });
                    }
                }
                Err(error) => self
                    .local
                    .push(keel_core::engine::Input::StoreFailed { error }),
            }
            return;
        }
        let reply = self.inbox_tx.clone();
        let Some(st) = self.store.as_mut() else {
            self.local.push(keel_core::engine::Input::StoreFailed {
                error: "no store: live orders need one".into(),
            });
            return;
        };
        let cmd = crate::store::StoreCmd::Live { write: w, reply };
        // Held in order behind anything already held; never dropped.
        if !st.held.is_empty() {
            st.held.push_back(cmd);
        } else if let Err(std::sync::mpsc::TrySendError::Full(cmd)) = st.tx.try_send(cmd) {
            st.held.push_back(cmd);
        }
    }
}
