//! Encoding: [`Packet`] → wire text (+ attachments).

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use super::Packet;

/// The Engine.IO `message` packet type, prefixed to every Socket.IO text packet.
pub(crate) const ENGINE_MESSAGE_PREFIX: u8 = b'4';

impl Packet {
    /// Appends the text part of the packet to `out`, following the grammar of the protocol:
    ///
    /// 1. the type digit ([`wire_type`](Self::wire_type));
    /// 2. binary types only: the attachment count, then `-`;
    /// 3. only if the namespace is not `/`: the namespace, then `,` (always, even when nothing
    ///    follows: `1/admin,`);
    /// 4. the ack id in decimal, if any;
    /// 5. the JSON payload, if any: compact, key order preserved, non-ASCII as raw UTF-8, `/` not
    ///    escaped.
    ///
    /// Nothing is validated: the packet is written as it is. Push the Engine.IO message prefix
    /// `b'4'` into `out` first to get a complete Engine.IO message (see also
    /// [`encode_engine_message`](Self::encode_engine_message)). The attachments are not written;
    /// send them after the text, each as its own binary Engine.IO message.
    ///
    /// ```
    /// use socketio::packet::Packet;
    /// use serde_json::json;
    ///
    /// let mut out = vec![b'4'];
    /// Packet::ack("/admin", json!(["bar"]), 13).encode_into(&mut out);
    /// assert_eq!(out, br#"43/admin,13["bar"]"#);
    /// ```
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let kind = self.wire_type();
        out.reserve(self.nsp.len() + 8);
        out.push(kind.as_ascii_digit());
        if kind.is_binary() {
            write_decimal(out, self.attachments.len() as u64);
            out.push(b'-');
        }
        if self.nsp != "/" {
            out.extend_from_slice(self.nsp.as_bytes());
            out.push(b',');
        }
        if let Some(id) = self.id {
            write_decimal(out, id);
        }
        if let Some(data) = &self.data {
            write_json(out, data);
        }
    }

    /// The text part of the packet as a `String` (without the Engine.IO `4` prefix).
    ///
    /// ```
    /// use socketio::packet::Packet;
    /// use serde_json::json;
    ///
    /// assert_eq!(Packet::disconnect("/admin").encode_to_string(), "1/admin,");
    /// assert_eq!(Packet::event("/", json!(["foo"]), Some(12)).encode_to_string(), r#"212["foo"]"#);
    /// ```
    pub fn encode_to_string(&self) -> String {
        let mut out = Vec::with_capacity(self.estimated_len());
        self.encode_into(&mut out);
        // Everything written is UTF-8 (a `String` namespace, ASCII digits, serde_json output), so
        // the fallback never runs; it only avoids a panic path.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// The complete Engine.IO text message (`4` + text part) and the attachments to send after it,
    /// each as its own binary Engine.IO message. The attachments are empty unless the
    /// [`wire_type`](Self::wire_type) is a binary type.
    ///
    /// The returned `Bytes` can be cloned cheaply and shared between many connections, so a
    /// broadcast is encoded once.
    ///
    /// ```
    /// use socketio::packet::Packet;
    /// use serde_json::json;
    ///
    /// let (text, attachments) = Packet::event("/", json!(["foo"]), None).encode_engine_message();
    /// assert_eq!(&text[..], br#"42["foo"]"#);
    /// assert!(attachments.is_empty());
    /// ```
    pub fn encode_engine_message(&self) -> (Bytes, Vec<Bytes>) {
        let attachments = if self.wire_type().is_binary() {
            self.attachments.clone()
        } else {
            Vec::new()
        };
        (self.engine_text(), attachments)
    }

    /// Like [`encode_engine_message`](Self::encode_engine_message), but consumes the packet and
    /// moves the attachments out instead of cloning them.
    pub fn into_engine_message(self) -> (Bytes, Vec<Bytes>) {
        let text = self.engine_text();
        let attachments = if self.wire_type().is_binary() {
            self.attachments
        } else {
            Vec::new()
        };
        (text, attachments)
    }

    fn engine_text(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.estimated_len() + 1);
        out.push(ENGINE_MESSAGE_PREFIX);
        self.encode_into(&mut out);
        Bytes::from(out)
    }

    /// A cheap guess of the encoded size, to size the output buffer.
    fn estimated_len(&self) -> usize {
        let data = match &self.data {
            None => 0,
            Some(Value::Array(items)) => 16 * items.len() + 2,
            Some(_) => 32,
        };
        8 + self.nsp.len() + data
    }
}

/// Writes `n` in decimal, without going through `fmt`.
fn write_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20]; // u64::MAX has 20 digits
    let mut len = 0;
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(buf.len() - len..).unwrap_or_default());
}

/// Writes `value` as compact JSON directly into `out`.
fn write_json(out: &mut Vec<u8>, value: &Value) {
    let mut ser = serde_json::Serializer::new(out);
    // Serializing a `Value` into a `Vec` cannot fail: object keys are strings and writes to a
    // `Vec` are infallible. There is nothing sensible to do with an error anyway.
    let _ = value.serialize(&mut ser);
}

#[cfg(test)]
mod tests {
    use super::write_decimal;

    #[test]
    fn decimal() {
        for n in [0, 1, 9, 10, 12, 99, 100, 1234567890, u64::MAX] {
            let mut out = Vec::new();
            write_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
