//! Binary values inside payloads: the [`Data`] tree and the placeholder ⇄ attachment mapping.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::DecodeError;

const PLACEHOLDER_KEY: &str = "_placeholder";
const NUM_KEY: &str = "num";

/// A JSON value that may hold binary buffers: what the application sends and receives.
///
/// Binary-free parts are kept as plain [`serde_json::Value`]s ([`Data::Json`]); only the
/// containers on the path to a buffer need [`Data::Array`] / [`Data::Object`]. Several trees
/// therefore mean the same thing (`Json([1])` and `Array([Json(1)])`); [`reconstruct`] always
/// returns the *canonical* form, where every binary-free subtree is a single `Json`, and
/// [`Data::normalized`] converts any tree to it. The derived `PartialEq` compares the trees as they
/// are, so compare canonical forms.
///
/// Object keys keep their order. If an `Object` repeats a key, [`deconstruct`] keeps the last value
/// at the position of the first, like [`serde_json::Map::insert`].
///
/// A `Json` part that itself contains `{"_placeholder":true,"num":…}` objects is sent as is and
/// will be taken for a placeholder by the receiver if the packet has attachments (same as the
/// reference implementation); don't do that.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// A binary-free JSON value.
    Json(Value),
    /// A binary buffer (a JS `Buffer` / `ArrayBuffer` / `Blob` on the other side).
    Binary(Bytes),
    /// An array that (possibly) holds binary somewhere inside.
    Array(Vec<Data>),
    /// An object that (possibly) holds binary somewhere inside, keys in order.
    Object(Vec<(String, Data)>),
}

impl Data {
    /// Whether a [`Data::Binary`] occurs anywhere in the tree.
    pub fn has_binary(&self) -> bool {
        match self {
            Data::Json(_) => false,
            Data::Binary(_) => true,
            Data::Array(items) => items.iter().any(Data::has_binary),
            Data::Object(entries) => entries.iter().any(|(_, v)| v.has_binary()),
        }
    }

    /// The canonical form: every binary-free subtree collapsed into one [`Data::Json`].
    pub fn normalized(self) -> Data {
        match self {
            Data::Json(_) | Data::Binary(_) => self,
            Data::Array(items) => {
                let items: Vec<Data> = items.into_iter().map(Data::normalized).collect();
                if items.iter().all(|d| matches!(d, Data::Json(_))) {
                    Data::Json(Value::Array(items.into_iter().map(into_json).collect()))
                } else {
                    Data::Array(items)
                }
            }
            Data::Object(entries) => {
                let entries: Vec<(String, Data)> = entries
                    .into_iter()
                    .map(|(k, v)| (k, v.normalized()))
                    .collect();
                if entries.iter().all(|(_, d)| matches!(d, Data::Json(_))) {
                    let mut map = Map::with_capacity(entries.len());
                    for (k, v) in entries {
                        map.insert(k, into_json(v));
                    }
                    Data::Json(Value::Object(map))
                } else {
                    Data::Object(entries)
                }
            }
        }
    }
}

/// Only called on `Data::Json` (checked by the callers); anything else would be a logic error, so
/// fall back to a full deconstruction instead of panicking.
fn into_json(d: Data) -> Value {
    match d {
        Data::Json(v) => v,
        other => deconstruct(other).0,
    }
}

impl From<Value> for Data {
    fn from(v: Value) -> Self {
        Data::Json(v)
    }
}

impl From<Bytes> for Data {
    fn from(b: Bytes) -> Self {
        Data::Binary(b)
    }
}

impl From<Vec<u8>> for Data {
    fn from(b: Vec<u8>) -> Self {
        Data::Binary(Bytes::from(b))
    }
}

impl From<Vec<Data>> for Data {
    fn from(items: Vec<Data>) -> Self {
        Data::Array(items)
    }
}

impl From<&str> for Data {
    fn from(s: &str) -> Self {
        Data::Json(Value::String(s.to_owned()))
    }
}

impl From<String> for Data {
    fn from(s: String) -> Self {
        Data::Json(Value::String(s))
    }
}

/// Splits `data` into wire JSON and attachments: walks it depth-first (array items in order, object
/// values in key order) and replaces the `i`-th buffer met by `{"_placeholder":true,"num":i}` (keys
/// in exactly that order) while pushing the buffer to the returned vector.
///
/// ```
/// use socketio::packet::{deconstruct, Data};
/// use bytes::Bytes;
/// use serde_json::json;
///
/// let data = Data::Array(vec![
///     Data::from("upload"),
///     Data::Object(vec![("file".into(), Data::Binary(Bytes::from_static(b"abc")))]),
/// ]);
/// let (json, attachments) = deconstruct(data);
/// assert_eq!(
///     serde_json::to_string(&json).unwrap(),
///     r#"["upload",{"file":{"_placeholder":true,"num":0}}]"#
/// );
/// assert_eq!(attachments, vec![Bytes::from_static(b"abc")]);
/// ```
pub fn deconstruct(data: Data) -> (Value, Vec<Bytes>) {
    let mut attachments = Vec::new();
    let value = deconstruct_into(data, &mut attachments);
    (value, attachments)
}

/// Like [`deconstruct`], but appends the buffers to `attachments`; placeholders are numbered from
/// `attachments.len()` on, so several values can be deconstructed into one packet in turn.
///
/// The walk is recursive: its depth is the depth of `data`, which the application controls.
pub fn deconstruct_into(data: Data, attachments: &mut Vec<Bytes>) -> Value {
    match data {
        Data::Json(v) => v,
        Data::Binary(b) => {
            let num = attachments.len();
            attachments.push(b);
            placeholder(num as u64)
        }
        Data::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|d| deconstruct_into(d, attachments))
                .collect(),
        ),
        Data::Object(entries) => {
            let mut map = Map::with_capacity(entries.len());
            for (k, d) in entries {
                let v = deconstruct_into(d, attachments);
                map.insert(k, v);
            }
            Value::Object(map)
        }
    }
}

/// The placeholder object `{"_placeholder":true,"num":num}`, keys in that order.
pub(crate) fn placeholder(num: u64) -> Value {
    let mut map = Map::with_capacity(2);
    map.insert(PLACEHOLDER_KEY.to_owned(), Value::Bool(true));
    map.insert(NUM_KEY.to_owned(), Value::from(num));
    Value::Object(map)
}

/// If `map` is a placeholder (`"_placeholder": true`), its `num`; an error if `num` is not a
/// non-negative integer. `None` if `map` is an ordinary object. Extra keys are ignored, as in the
/// reference parser.
fn placeholder_num(map: &Map<String, Value>) -> Option<Result<u64, DecodeError>> {
    match map.get(PLACEHOLDER_KEY) {
        Some(Value::Bool(true)) => Some(
            map.get(NUM_KEY)
                .and_then(Value::as_u64)
                .ok_or(DecodeError::InvalidPlaceholder),
        ),
        _ => None,
    }
}

fn check_num(num: u64, count: usize) -> Result<usize, DecodeError> {
    match usize::try_from(num) {
        Ok(n) if n < count => Ok(n),
        _ => Err(DecodeError::PlaceholderOutOfRange { num, count }),
    }
}

/// Checks every placeholder in `value`, at any depth: well-formed and `0 ≤ num < count`.
///
/// Recursive; decoded values nest at most 127 containers deep (serde_json's parser
/// recursion limit of 128).
pub(crate) fn validate_placeholders(value: &Value, count: usize) -> Result<(), DecodeError> {
    match value {
        Value::Array(items) => items
            .iter()
            .try_for_each(|v| validate_placeholders(v, count)),
        Value::Object(map) => match placeholder_num(map) {
            Some(num) => check_num(num?, count).map(drop),
            None => map
                .values()
                .try_for_each(|v| validate_placeholders(v, count)),
        },
        _ => Ok(()),
    }
}

/// The inverse of [`deconstruct`]: replaces every placeholder `{"_placeholder":true,"num":N}` in
/// `value` (at any depth) by `Data::Binary(attachments[N].clone())` (a cheap reference-count
/// copy). The result is in canonical form (see [`Data`]).
///
/// Errors: [`DecodeError::InvalidPlaceholder`] for a placeholder whose `num` is not a
/// non-negative integer, [`DecodeError::PlaceholderOutOfRange`] when `N ≥ attachments.len()`.
///
/// The walk is recursive; decoded values nest at most 127 containers deep (serde_json's parser
/// recursion limit of 128).
///
/// ```
/// use socketio::packet::{reconstruct, Data};
/// use bytes::Bytes;
/// use serde_json::json;
///
/// let buf = Bytes::from_static(b"abc");
/// let data = reconstruct(
///     json!(["x", {"_placeholder": true, "num": 0}]),
///     &[buf.clone()],
/// )?;
/// assert_eq!(data, Data::Array(vec![Data::from("x"), Data::Binary(buf)]));
///
/// assert!(reconstruct(json!([{"_placeholder": true, "num": 1}]), &[]).is_err());
/// # Ok::<(), socketio::packet::DecodeError>(())
/// ```
pub fn reconstruct(value: Value, attachments: &[Bytes]) -> Result<Data, DecodeError> {
    match value {
        Value::Array(mut items) => {
            // Put binary-free children back in place; remember the others by index.
            let mut special: Vec<(usize, Data)> = Vec::new();
            for (i, slot) in items.iter_mut().enumerate() {
                match reconstruct(std::mem::take(slot), attachments)? {
                    Data::Json(v) => *slot = v,
                    other => special.push((i, other)),
                }
            }
            if special.is_empty() {
                return Ok(Data::Json(Value::Array(items)));
            }
            let mut special = special.into_iter().peekable();
            let out = items
                .into_iter()
                .enumerate()
                .map(|(i, v)| match special.next_if(|(j, _)| *j == i) {
                    Some((_, d)) => d,
                    None => Data::Json(v),
                })
                .collect();
            Ok(Data::Array(out))
        }
        Value::Object(mut map) => {
            if let Some(num) = placeholder_num(&map) {
                let n = check_num(num?, attachments.len())?;
                return attachments.get(n).cloned().map(Data::Binary).ok_or(
                    DecodeError::PlaceholderOutOfRange {
                        num: n as u64,
                        count: attachments.len(),
                    },
                );
            }
            let mut special: Vec<(usize, Data)> = Vec::new();
            for (i, slot) in map.values_mut().enumerate() {
                match reconstruct(std::mem::take(slot), attachments)? {
                    Data::Json(v) => *slot = v,
                    other => special.push((i, other)),
                }
            }
            if special.is_empty() {
                return Ok(Data::Json(Value::Object(map)));
            }
            let mut special = special.into_iter().peekable();
            let out = map
                .into_iter()
                .enumerate()
                .map(|(i, (k, v))| match special.next_if(|(j, _)| *j == i) {
                    Some((_, d)) => (k, d),
                    None => (k, Data::Json(v)),
                })
                .collect();
            Ok(Data::Object(out))
        }
        other => Ok(Data::Json(other)),
    }
}
