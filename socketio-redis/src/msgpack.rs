//! MessagePack as `notepack.io` 3.x writes it, to and from [`Data`].
//!
//! Encoding matches notepack byte for byte: integers (and integral floats, which JavaScript
//! cannot tell apart) in their smallest int/uint form, other numbers as float64, strings as
//! fixstr/str8/16/32, binary as bin, objects as maps with their keys in order.
//!
//! Decoding accepts every MessagePack type: bin becomes [`Data::Binary`], nil `null`, and the
//! extensions notepack has used are mapped as follows: type −1 (timestamp) and notepack 2.x's
//! fixext8 type 0 (Date) become the ISO 8601 string `JSON.stringify` gives a `Date`; notepack 2.x's
//! ext type 0 (ArrayBuffer) becomes binary and its fixext1 type 0 (`undefined`) `null`. Other
//! extensions are refused.

use bytes::Bytes;
use rmp::encode;
use serde_json::{Number, Value};
use socketio::Data;

/// How deeply arrays and maps may nest in a decoded message.
pub const MAX_DEPTH: usize = 128;

/// A message that is not valid MessagePack, or holds something JSON cannot carry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input ended inside a value.
    #[error("msgpack: unexpected end of input")]
    Truncated,
    /// Bytes are left after the value.
    #[error("msgpack: {0} trailing bytes")]
    Trailing(usize),
    /// A marker byte that MessagePack reserves (0xc1).
    #[error("msgpack: reserved marker 0x{0:02x}")]
    Reserved(u8),
    /// A string that is not UTF-8.
    #[error("msgpack: string is not UTF-8")]
    Utf8,
    /// A map key that is neither a string nor an integer.
    #[error("msgpack: map key is not a string")]
    Key,
    /// An extension type this codec does not know.
    #[error("msgpack: unsupported extension type {0} ({1} bytes)")]
    Extension(i8, usize),
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("msgpack: nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A value too large to encode (more than 2³² − 1 items or bytes).
    #[error("msgpack: value too large")]
    TooLarge,
}

/// Encodes a value as notepack does.
pub fn encode(data: &Data) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(64);
    write_data(&mut out, data)?;
    Ok(out)
}

/// Encodes a binary-free value as notepack does.
pub fn encode_json(value: &Value) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(64);
    write_json(&mut out, value)?;
    Ok(out)
}

fn len32(n: usize) -> Result<u32, CodecError> {
    u32::try_from(n).map_err(|_| CodecError::TooLarge)
}

fn write_data(out: &mut Vec<u8>, data: &Data) -> Result<(), CodecError> {
    match data {
        Data::Json(v) => write_json(out, v),
        Data::Binary(b) => {
            encode::write_bin_len(out, len32(b.len())?).map_err(|_| CodecError::TooLarge)?;
            out.extend_from_slice(b);
            Ok(())
        }
        Data::Array(items) => {
            encode::write_array_len(out, len32(items.len())?).map_err(|_| CodecError::TooLarge)?;
            items.iter().try_for_each(|d| write_data(out, d))
        }
        Data::Object(entries) => {
            encode::write_map_len(out, len32(entries.len())?).map_err(|_| CodecError::TooLarge)?;
            for (k, v) in entries {
                write_str(out, k)?;
                write_data(out, v)?;
            }
            Ok(())
        }
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) -> Result<(), CodecError> {
    encode::write_str_len(out, len32(s.len())?).map_err(|_| CodecError::TooLarge)?;
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// 2⁶³: integral floats below this (in magnitude) fit the int forms notepack would pick.
const I64_BOUND: f64 = 9_223_372_036_854_775_808.0;

fn write_number(out: &mut Vec<u8>, n: &Number) -> Result<(), CodecError> {
    let io = |_| CodecError::TooLarge;
    if let Some(u) = n.as_u64() {
        encode::write_uint(out, u).map_err(io)?;
    } else if let Some(i) = n.as_i64() {
        encode::write_sint(out, i).map_err(io)?;
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        // JavaScript has one number type: an integral value is written as an integer.
        if f.is_finite() && f.fract() == 0.0 && f.abs() < I64_BOUND {
            if f >= 0.0 {
                encode::write_uint(out, f as u64).map_err(io)?;
            } else {
                encode::write_sint(out, f as i64).map_err(io)?;
            }
        } else {
            encode::write_f64(out, f).map_err(io)?;
        }
    }
    Ok(())
}

fn write_json(out: &mut Vec<u8>, value: &Value) -> Result<(), CodecError> {
    match value {
        Value::Null => {
            encode::write_nil(out).map_err(|_| CodecError::TooLarge)?;
            Ok(())
        }
        Value::Bool(b) => encode::write_bool(out, *b).map_err(|_| CodecError::TooLarge),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            encode::write_array_len(out, len32(items.len())?).map_err(|_| CodecError::TooLarge)?;
            items.iter().try_for_each(|v| write_json(out, v))
        }
        Value::Object(map) => {
            encode::write_map_len(out, len32(map.len())?).map_err(|_| CodecError::TooLarge)?;
            for (k, v) in map {
                write_str(out, k)?;
                write_json(out, v)?;
            }
            Ok(())
        }
    }
}

/// Decodes one value that must fill `bytes` exactly; the result is canonical (see
/// [`Data::normalized`]).
pub fn decode(bytes: &[u8]) -> Result<Data, CodecError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let data = r.value(0)?;
    let rest = bytes.len() - r.pos;
    if rest != 0 {
        return Err(CodecError::Trailing(rest));
    }
    Ok(data.normalized())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).ok_or(CodecError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(CodecError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len(&mut self, width: usize) -> Result<usize, CodecError> {
        Ok(match width {
            1 => self.u8()? as usize,
            2 => u16::from_be_bytes(self.be()?) as usize,
            _ => u32::from_be_bytes(self.be()?) as usize,
        })
    }

    fn str(&mut self, len: usize) -> Result<String, CodecError> {
        let s = self.take(len)?;
        std::str::from_utf8(s)
            .map(str::to_owned)
            .map_err(|_| CodecError::Utf8)
    }

    fn value(&mut self, depth: usize) -> Result<Data, CodecError> {
        if depth > MAX_DEPTH {
            return Err(CodecError::TooDeep);
        }
        let m = self.u8()?;
        let json = |v: Value| Ok(Data::Json(v));
        match m {
            0x00..=0x7f => json(Value::from(m)),
            0x80..=0x8f => self.map((m & 0x0f) as usize, depth),
            0x90..=0x9f => self.array((m & 0x0f) as usize, depth),
            0xa0..=0xbf => json(Value::String(self.str((m & 0x1f) as usize)?)),
            0xc0 => json(Value::Null),
            0xc1 => Err(CodecError::Reserved(m)),
            0xc2 => json(Value::Bool(false)),
            0xc3 => json(Value::Bool(true)),
            0xc4..=0xc6 => {
                let len = self.len(1 << (m - 0xc4))?;
                Ok(Data::Binary(Bytes::copy_from_slice(self.take(len)?)))
            }
            0xc7..=0xc9 => {
                let len = self.len(1 << (m - 0xc7))?;
                let kind = self.u8()? as i8;
                self.ext(kind, len, false)
            }
            0xca => json(float(f32::from_be_bytes(self.be()?) as f64)),
            0xcb => json(float(f64::from_be_bytes(self.be()?))),
            0xcc => json(Value::from(self.u8()?)),
            0xcd => json(Value::from(u16::from_be_bytes(self.be()?))),
            0xce => json(Value::from(u32::from_be_bytes(self.be()?))),
            0xcf => json(Value::from(u64::from_be_bytes(self.be()?))),
            0xd0 => json(Value::from(self.u8()? as i8)),
            0xd1 => json(Value::from(i16::from_be_bytes(self.be()?))),
            0xd2 => json(Value::from(i32::from_be_bytes(self.be()?))),
            0xd3 => json(Value::from(i64::from_be_bytes(self.be()?))),
            0xd4..=0xd8 => {
                let kind = self.u8()? as i8;
                self.ext(kind, 1 << (m - 0xd4), true)
            }
            0xd9..=0xdb => {
                let len = self.len(1 << (m - 0xd9))?;
                json(Value::String(self.str(len)?))
            }
            0xdc | 0xdd => {
                let len = self.len(if m == 0xdc { 2 } else { 4 })?;
                self.array(len, depth)
            }
            0xde | 0xdf => {
                let len = self.len(if m == 0xde { 2 } else { 4 })?;
                self.map(len, depth)
            }
            0xe0..=0xff => json(Value::from(m as i8)),
        }
    }

    fn array(&mut self, len: usize, depth: usize) -> Result<Data, CodecError> {
        // Each item takes at least one byte: a bogus length cannot make us allocate much.
        let mut items = Vec::with_capacity(len.min(self.buf.len() - self.pos));
        for _ in 0..len {
            items.push(self.value(depth + 1)?);
        }
        Ok(Data::Array(items))
    }

    fn map(&mut self, len: usize, depth: usize) -> Result<Data, CodecError> {
        let mut entries: Vec<(String, Data)> =
            Vec::with_capacity(len.min((self.buf.len() - self.pos) / 2));
        for _ in 0..len {
            let key = match self.value(depth + 1)? {
                Data::Json(Value::String(s)) => s,
                Data::Json(Value::Number(n)) => n.to_string(),
                _ => return Err(CodecError::Key),
            };
            let value = self.value(depth + 1)?;
            // A repeated key keeps the last value, as a JavaScript object does.
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = value,
                None => entries.push((key, value)),
            }
        }
        Ok(Data::Object(entries))
    }

    fn ext(&mut self, kind: i8, len: usize, fixed: bool) -> Result<Data, CodecError> {
        let body = self.take(len)?;
        match (kind, fixed, len) {
            (-1, _, 4) => {
                let secs = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                Ok(date(secs as i64, 0))
            }
            (-1, _, 8) => {
                let mut b = [0u8; 8];
                b.copy_from_slice(body);
                let v = u64::from_be_bytes(b);
                Ok(date((v & 0x3_ffff_ffff) as i64, (v >> 34) as u32))
            }
            (-1, _, 12) => {
                let nanos = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let mut b = [0u8; 8];
                b.copy_from_slice(&body[4..]);
                Ok(date(i64::from_be_bytes(b), nanos))
            }
            // notepack 2.x: fixext1 type 0 is `undefined`.
            (0, true, 1) => Ok(Data::Json(Value::Null)),
            // notepack 2.x: fixext8 type 0 is a Date in milliseconds.
            (0, true, 8) => {
                let mut b = [0u8; 8];
                b.copy_from_slice(body);
                let ms = i64::from_be_bytes(b);
                Ok(date(
                    ms.div_euclid(1000),
                    (ms.rem_euclid(1000) * 1_000_000) as u32,
                ))
            }
            // notepack 2.x: ext8/16/32 type 0 is an ArrayBuffer.
            (0, false, _) => Ok(Data::Binary(Bytes::copy_from_slice(body))),
            _ => Err(CodecError::Extension(kind, len)),
        }
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// A timestamp as `Date.prototype.toJSON` prints it (millisecond precision, UTC).
fn date(secs: i64, nanos: u32) -> Data {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        nanos.min(999_999_999) / 1_000_000
    );
    Data::Json(Value::String(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn integers_take_notepack_forms() {
        let cases = [
            (json!(0), "00"),
            (json!(127), "7f"),
            (json!(128), "cc80"),
            (json!(256), "cd0100"),
            (json!(65536), "ce00010000"),
            (json!(4294967296u64), "cf0000000100000000"),
            (json!(-1), "ff"),
            (json!(-32), "e0"),
            (json!(-33), "d0df"),
            (json!(-129), "d1ff7f"),
            (json!(-32769), "d2ffff7fff"),
            (json!(2.0), "02"),
            (json!(-300.0), "d1fed4"),
            (json!(1.5), "cb3ff8000000000000"),
        ];
        for (v, want) in cases {
            assert_eq!(hex(&encode_json(&v).unwrap()), want, "{v}");
        }
    }

    #[test]
    fn strings_and_containers() {
        let s31 = "a".repeat(31);
        let s32 = "a".repeat(32);
        assert_eq!(&hex(&encode_json(&json!(s31)).unwrap())[..2], "bf");
        assert_eq!(&hex(&encode_json(&json!(s32)).unwrap())[..4], "d920");
        let v = json!({"a": [1, null, true], "b": "é"});
        let bytes = encode_json(&v).unwrap();
        assert_eq!(hex(&bytes), "82a1619301c0c3a162a2c3a9");
        assert_eq!(decode(&bytes).unwrap(), Data::Json(v));
    }

    #[test]
    fn binary_round_trips() {
        let data = Data::Array(vec![
            Data::from("ev"),
            Data::Binary(Bytes::from_static(&[1, 2, 3])),
        ]);
        let bytes = encode(&data).unwrap();
        assert_eq!(hex(&bytes), "92a26576c403010203");
        assert_eq!(decode(&bytes).unwrap(), data);
    }

    #[test]
    fn extensions() {
        // timestamp 32: 2021-01-01T00:00:00Z
        let t32 = [0xd6, 0xff, 0x5f, 0xee, 0x66, 0x00];
        assert_eq!(
            decode(&t32).unwrap(),
            Data::Json(json!("2021-01-01T00:00:00.000Z"))
        );
        // timestamp 64 with 5 ms
        let ns: u64 = 5_000_000;
        let v = (ns << 34) | 0x5fee_6600;
        let mut t64 = vec![0xd7, 0xff];
        t64.extend_from_slice(&v.to_be_bytes());
        assert_eq!(
            decode(&t64).unwrap(),
            Data::Json(json!("2021-01-01T00:00:00.005Z"))
        );
        // timestamp 96 before the epoch
        let mut t96 = vec![0xc7, 12, 0xff, 0, 0, 0, 0];
        t96.extend_from_slice(&(-86_400i64).to_be_bytes());
        assert_eq!(
            decode(&t96).unwrap(),
            Data::Json(json!("1969-12-31T00:00:00.000Z"))
        );
        // notepack 2.x: undefined, Date, ArrayBuffer
        assert_eq!(decode(&[0xd4, 0, 0]).unwrap(), Data::Json(Value::Null));
        let mut d2 = vec![0xd7, 0];
        d2.extend_from_slice(&1_609_459_200_123i64.to_be_bytes());
        assert_eq!(
            decode(&d2).unwrap(),
            Data::Json(json!("2021-01-01T00:00:00.123Z"))
        );
        assert_eq!(
            decode(&[0xc7, 2, 0, 9, 8]).unwrap(),
            Data::Binary(Bytes::from_static(&[9, 8]))
        );
        assert_eq!(decode(&[0xd5, 7, 0, 0]), Err(CodecError::Extension(7, 2)));
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(decode(&[]), Err(CodecError::Truncated));
        assert_eq!(decode(&[0x92, 0x01]), Err(CodecError::Truncated));
        assert_eq!(
            decode(&[0xdd, 0xff, 0xff, 0xff, 0xff]),
            Err(CodecError::Truncated)
        );
        assert_eq!(decode(&[0xc1]), Err(CodecError::Reserved(0xc1)));
        assert_eq!(decode(&[0x01, 0x02]), Err(CodecError::Trailing(1)));
        assert_eq!(decode(&[0xa1, 0xff]), Err(CodecError::Utf8));
        assert_eq!(decode(&[0x81, 0xc0, 0x01]), Err(CodecError::Key));
        let deep = vec![0x91; MAX_DEPTH + 2];
        assert_eq!(decode(&deep), Err(CodecError::TooDeep));
    }
}
