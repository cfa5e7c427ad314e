//! Between rdkafka's records and arus's own: one conversion each way.

use arus_actors::model::source::RawRecord;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};

/// A polled record, owned.
pub fn raw_record<M: Message>(message: &M) -> RawRecord {
    RawRecord {
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec),
        timestamp_ms: message.timestamp().to_millis(),
        headers: message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Headers to write, in order.
pub fn owned_headers<'a>(
    pairs: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
) -> OwnedHeaders {
    pairs
        .into_iter()
        .fold(OwnedHeaders::new(), |headers, (key, value)| {
            headers.insert(Header { key, value })
        })
}

/// [`owned_headers`] of headers as a [`RawRecord`] holds them.
pub fn owned_headers_of(headers: &[(String, Option<Vec<u8>>)]) -> OwnedHeaders {
    owned_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())))
}
