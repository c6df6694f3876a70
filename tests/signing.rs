//! keel's signing against Bybit's rule as pybit implements it: every vector of
//! `private/signing_vectors.json` (made by pybit 5.17.0's own functions, see PROVENANCE.md).

use keel_core::wire::sign::{rest_signature, ws_auth_signature};
use keel_suite::fixtures_dir;
use serde_json::Value;

fn vectors() -> Value {
    let text =
        std::fs::read_to_string(fixtures_dir().join("private/signing_vectors.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_rest_vector_signs_to_pybits_signature() {
    let v = vectors();
    let http = v["http"].as_array().unwrap();
    assert!(http.len() >= 4);
    for case in http {
        let i = &case["inputs"];
        let payload = case["payload_as_sent"].as_str().unwrap_or("");
        let got = rest_signature(
            i["api_secret"].as_str().unwrap(),
            i["timestamp"].as_u64().unwrap(),
            i["api_key"].as_str().unwrap(),
            i["recv_window"].as_u64().unwrap(),
            payload,
        );
        assert_eq!(
            got,
            case["x_bapi_sign"].as_str().unwrap(),
            "{}",
            case["name"]
        );
        let signed = format!(
            "{}{}{}{payload}",
            i["timestamp"],
            i["api_key"].as_str().unwrap(),
            i["recv_window"]
        );
        assert_eq!(
            signed,
            case["string_signed"].as_str().unwrap(),
            "{}",
            case["name"]
        );
    }
}

#[test]
fn every_websocket_auth_vector_signs_to_pybits_signature() {
    let v = vectors();
    let ws = v["websocket_auth"].as_array().unwrap();
    assert!(!ws.is_empty());
    for case in ws {
        let i = &case["inputs"];
        let got = ws_auth_signature(
            i["api_secret"].as_str().unwrap(),
            i["expires"].as_u64().unwrap(),
        );
        assert_eq!(got, case["signature"].as_str().unwrap(), "{}", case["name"]);
    }
}
