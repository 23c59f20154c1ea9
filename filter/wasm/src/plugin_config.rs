//! The plugin configuration bytes, in whichever form Envoy hands them over.
//!
//! envoy-wasm.md §5.1: a `google.protobuf.Struct` configuration reaches `on_configure` as
//! protobuf binary (not JSON, whatever the API docs say); a `google.protobuf.StringValue`
//! arrives unwrapped, as its text, which may be JSON or YAML. All three become one
//! `serde_json::Value` for `gitgate_core::config`.

use prost::Message;
use serde_json::{Map, Number, Value};

/// Largest integer a double holds exactly (2^53).
const MAX_EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// The first byte of a non-empty encoded Struct: field 1 (`fields`), length-delimited.
const STRUCT_FIRST_BYTE: u8 = 0x0a;

/// Decodes configuration bytes: a protobuf Struct, JSON text, or YAML text.
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    if bytes.first() == Some(&STRUCT_FIRST_BYTE)
        && let Ok(parsed) = prost_types::Struct::decode(bytes)
        && !parsed.fields.is_empty()
    {
        return Ok(struct_to_value(parsed));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| "configuration is neither a protobuf Struct nor UTF-8 text".to_owned())?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("configuration is empty".to_owned());
    }
    if trimmed.starts_with('{') {
        return serde_json::from_str(trimmed).map_err(|err| format!("invalid JSON: {err}"));
    }
    serde_norway::from_str(trimmed).map_err(|err| format!("invalid YAML: {err}"))
}

fn struct_to_value(parsed: prost_types::Struct) -> Value {
    let map: Map<String, Value> = parsed
        .fields
        .into_iter()
        .map(|(key, value)| (key, proto_to_value(value)))
        .collect();
    Value::Object(map)
}

fn proto_to_value(value: prost_types::Value) -> Value {
    use prost_types::value::Kind;
    match value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::NumberValue(n)) => number(n),
        Some(Kind::StructValue(s)) => struct_to_value(s),
        Some(Kind::ListValue(list)) => {
            Value::Array(list.values.into_iter().map(proto_to_value).collect())
        }
    }
}

/// Struct numbers are doubles; whole ones become integers so that `timeout_ms: 5000` reads as
/// the integer field it is.
fn number(n: f64) -> Value {
    if n.is_finite() && n.fract() == 0.0 && n.abs() <= MAX_EXACT_INTEGER {
        // Exact: the value is whole and within the range a double holds exactly.
        return Value::Number(Number::from(n as i64));
    }
    Number::from_f64(n).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitgate_core::config::{FailureMode, GateConfig};
    use prost_types::{ListValue, Struct, value::Kind};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn string(s: &str) -> prost_types::Value {
        prost_types::Value {
            kind: Some(Kind::StringValue(s.into())),
        }
    }

    fn fields(pairs: Vec<(&str, prost_types::Value)>) -> prost_types::Value {
        let fields: BTreeMap<String, prost_types::Value> =
            pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        prost_types::Value {
            kind: Some(Kind::StructValue(Struct { fields })),
        }
    }

    fn struct_bytes() -> Vec<u8> {
        let approval = fields(vec![
            ("cluster", string("gitgate_approval")),
            (
                "timeout_ms",
                prost_types::Value {
                    kind: Some(Kind::NumberValue(2500.0)),
                },
            ),
            ("failure_mode", string("open")),
        ]);
        let repositories = prost_types::Value {
            kind: Some(Kind::ListValue(ListValue {
                values: vec![string("org/**")],
            })),
        };
        let gate = fields(vec![("repositories", repositories)]);
        let Some(Kind::StructValue(root)) =
            fields(vec![("approval", approval), ("gate", gate)]).kind
        else {
            unreachable!("built as a struct")
        };
        root.encode_to_vec()
    }

    #[test]
    fn a_protobuf_struct_decodes_with_whole_numbers_as_integers() {
        let value = decode(&struct_bytes()).expect("valid");
        assert_eq!(value["approval"]["timeout_ms"], json!(2500));
        let config = GateConfig::from_value(value).expect("valid config");
        assert_eq!(config.config.approval.timeout_ms, 2500);
        assert_eq!(config.config.approval.failure_mode, FailureMode::Open);
        assert!(config.is_gated("org/app.git"));
    }

    #[test]
    fn json_text_decodes() {
        let value = decode(br#" {"approval": {"cluster": "c"}} "#).expect("valid");
        assert_eq!(value, json!({"approval": {"cluster": "c"}}));
    }

    #[test]
    fn yaml_text_decodes() {
        let text = b"approval:\n  cluster: c\n  timeout_ms: 100\ngate:\n  repositories: [\"**\"]\n";
        let value = decode(text).expect("valid");
        assert_eq!(value["approval"]["timeout_ms"], json!(100));
        assert!(GateConfig::from_value(value).is_ok());
    }

    #[test]
    fn empty_and_binary_garbage_are_errors() {
        assert!(decode(b"").is_err());
        assert!(decode(b"  \n").is_err());
        assert!(decode(&[0xff, 0xfe, 0x00]).is_err());
    }

    #[test]
    fn fractional_and_huge_numbers_stay_floats() {
        assert_eq!(number(1.5), json!(1.5));
        assert_eq!(number(1e300), json!(1e300));
        assert_eq!(number(f64::NAN), Value::Null);
    }
}
