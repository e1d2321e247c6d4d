//! Query parameters and path variables as a request message's proto3 JSON object, the way
//! grpc-gateway fills a GET or DELETE request: each parameter names a field (its proto or its
//! JSON name), repeated fields take the parameter repeated, and the field's type — read from
//! the service descriptor the server is built from, not listed here again — says whether
//! `true` is a boolean or text. Numbers stay text: the proto3 JSON mapping accepts quoted
//! numbers. Unknown parameters and message-typed fields are refused.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::grpc::pb::FILE_DESCRIPTOR_SET;

/// Just enough of `google.protobuf.FileDescriptorSet` to read the request messages' fields.
#[derive(Clone, PartialEq, prost::Message)]
struct FileSet {
    #[prost(message, repeated, tag = "1")]
    file: Vec<FileProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct FileProto {
    #[prost(string, tag = "2")]
    package: String,
    #[prost(message, repeated, tag = "4")]
    message_type: Vec<MessageProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct MessageProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(message, repeated, tag = "2")]
    field: Vec<FieldProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct FieldProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int32, tag = "4")]
    label: i32,
    #[prost(int32, tag = "5")]
    r#type: i32,
    #[prost(string, tag = "10")]
    json_name: String,
}

const LABEL_REPEATED: i32 = 3;
const TYPE_BOOL: i32 = 8;
const TYPE_MESSAGE: i32 = 11;

/// A field of a request message, as a query parameter fills it.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    repeated: bool,
    kind: i32,
}

/// The fields of every `auth.v1` message by message name, by proto and by JSON field name.
fn messages() -> &'static HashMap<String, HashMap<String, Field>> {
    static MESSAGES: OnceLock<HashMap<String, HashMap<String, Field>>> = OnceLock::new();
    MESSAGES.get_or_init(|| {
        let set = <FileSet as prost::Message>::decode(FILE_DESCRIPTOR_SET).unwrap_or_default();
        set.file
            .into_iter()
            .filter(|f| f.package == "auth.v1")
            .flat_map(|f| f.message_type)
            .map(|m| {
                let mut fields = HashMap::new();
                for f in m.field {
                    let field = Field {
                        name: f.name.clone(),
                        repeated: f.label == LABEL_REPEATED,
                        kind: f.r#type,
                    };
                    fields.insert(f.json_name, field.clone());
                    fields.insert(f.name, field);
                }
                (m.name, fields)
            })
            .collect()
    })
}

/// The JSON object of `auth.v1.<message>` that `params` (path variables, then query
/// parameters, in order) describe.
///
/// # Errors
/// A message for the client: an unknown parameter, a value the field cannot take, or a
/// single field given twice.
pub fn object(message: &str, params: &[(String, String)]) -> Result<Map<String, Value>, String> {
    let fields = messages()
        .get(message)
        .ok_or_else(|| format!("no message {message}"))?;
    let mut out = Map::new();
    for (key, raw) in params {
        let field = fields
            .get(key)
            .ok_or_else(|| format!("unknown query parameter {:?}", clip(key)))?;
        let value = match field.kind {
            TYPE_BOOL => match raw.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => return Err(format!("{} must be true or false", field.name)),
            },
            TYPE_MESSAGE => return Err(format!("{} cannot be a query parameter", field.name)),
            _ => Value::String(raw.clone()),
        };
        if field.repeated {
            if let Value::Array(items) = out
                .entry(field.name.clone())
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                items.push(value);
            }
        } else if out.insert(field.name.clone(), value).is_some() {
            return Err(format!("{} given more than once", field.name));
        }
    }
    Ok(out)
}

fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(raw: &[(&str, &str)]) -> Vec<(String, String)> {
        raw.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parameters_take_the_types_of_their_fields() {
        let object = object(
            "ListUsersRequest",
            &pairs(&[
                ("pageSize", "5"),
                ("disabled_only", "true"),
                ("role", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(
            Value::Object(object),
            serde_json::json!({"page_size": "5", "disabled_only": true, "role": "true"})
        );
        let roles = super::object(
            "UpdateUserRolesRequest",
            &pairs(&[("add", "a"), ("add", "b")]),
        )
        .unwrap();
        assert_eq!(Value::Object(roles), serde_json::json!({"add": ["a", "b"]}));
    }

    #[test]
    fn unknown_repeated_or_ill_typed_parameters_are_refused() {
        assert!(object("ListUsersRequest", &pairs(&[("nope", "1")])).is_err());
        assert!(object("ListUsersRequest", &pairs(&[("lockedOnly", "yes")])).is_err());
        assert!(object("ListUsersRequest", &pairs(&[("role", "a"), ("role", "b")])).is_err());
    }
}
