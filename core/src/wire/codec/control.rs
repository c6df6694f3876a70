//! Control frames: pongs (both of Bybit's shapes), subscription answers (public and
//! `COMMAND_RESP`), and requests as a venue receives them. They go from the decoder to the link
//! that owns the connection; no market state is involved.

use super::{Decoder, R, Top, json, need, typed};
use crate::wire::error::DecodeError;
use crate::wire::frame::{ACK_TOPICS_MAX, Ack, Control, Frame, Request};
use crate::wire::json::Scanner;

impl Decoder {
    pub(super) fn control<'a>(&mut self, text: &'a str, top: Top<'a>) -> R<Frame<'a>> {
        let op = top.op.as_deref();
        if op == Some("pong") {
            let echoed = top.args.and_then(|a| a.into_iter().next());
            return Ok(Frame::Control(Control::Pong {
                req_id: top.req_id.or(echoed),
            }));
        }
        if op == Some("ping") && top.ret_msg.as_deref() == Some("pong") {
            return Ok(Frame::Control(Control::Pong { req_id: top.req_id }));
        }
        if top.kind == Some("COMMAND_RESP") {
            let at = need(top.data_at, "data")?;
            let failed = command_resp_failures(&text[at..])?;
            return Ok(Frame::Control(Control::Ack(Ack {
                op: "subscribe".into(),
                success: need(top.success, "success")? && failed.is_empty(),
                ret_msg: top.ret_msg.unwrap_or_default(),
                req_id: top.req_id,
                conn_id: top.conn_id,
                failed_topics: failed,
            })));
        }
        let (op, success) = match (top.op, top.success) {
            (Some(op), Some(success)) => (op, success),
            (Some(op), None) if top.ret_msg.is_none() => {
                return Ok(Frame::Control(Control::Request(Request {
                    op,
                    req_id: top.req_id,
                    args: top.args.unwrap_or_default(),
                })));
            }
            _ => return Err(DecodeError::Unrecognized),
        };
        let ret_msg = top.ret_msg.unwrap_or_default();
        let failed_topics = if success {
            Vec::new()
        } else {
            // Observed: "error:handler not found,topic:getOrderBook.1.BTCUSDT".
            ret_msg
                .split_once("topic:")
                .map(|(_, t)| vec![t.trim().to_string()])
                .unwrap_or_default()
        };
        Ok(Frame::Control(Control::Ack(Ack {
            op,
            success,
            ret_msg,
            req_id: top.req_id,
            conn_id: top.conn_id,
            failed_topics,
        })))
    }
}

fn command_resp_failures(text: &str) -> R<Vec<String>> {
    let mut sc = Scanner::new(text);
    sc.begin_object().map_err(typed("data"))?;
    let mut failed = Vec::new();
    let mut first = true;
    while let Some(key) = sc.next_key(&mut first).map_err(json)? {
        if key.is("failTopics") {
            sc.begin_array().map_err(typed("failTopics"))?;
            let mut f = true;
            while sc.next_elem(&mut f).map_err(json)? {
                if failed.len() == ACK_TOPICS_MAX {
                    return Err(DecodeError::TooMany {
                        field: "failTopics",
                        max: ACK_TOPICS_MAX,
                    });
                }
                failed.push(sc.string().map_err(typed("failTopics"))?.get().into_owned());
            }
        } else {
            sc.skip().map_err(json)?;
        }
    }
    Ok(failed)
}
