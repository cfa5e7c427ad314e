//! Distinct visitors: a HyperLogLog sketch of user ids (Apache DataSketches).
//!
//! HLL rather than CPC: a bucket's sketch is written to the changelog at
//! every commit it changes in and merged at every query, and HLL updates and
//! unions are the cheaper of the two; most buckets (a minute of one
//! partition) hold few users, where HLL's list and set modes keep a few
//! bytes per user and count exactly; only a dense sketch is `2^(lg_k-1)`
//! bytes (HLL_4). Each id's UTF-8 bytes are hashed as they are (MurmurHash3
//! x64/128, seed 9001 as in every DataSketches library), so the sketch is
//! the same from any build, platform or language.

use base64::Engine as _;
use datasketches::hash::value::raw_bytes;
use datasketches::hll::{HllSketch, HllType, HllUnion};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::sync::OnceLock;

/// The largest `lg_k` DataSketches accepts; unions are built at it, so
/// sketches of any smaller `lg_k` merge.
const LG_K_MAX: u8 = 21;
const LG_K_MIN: u8 = 4;

/// The distinct user ids of a bucket.
///
/// Read from the changelog it stays in DataSketches' bytes until a query
/// (or the partition's next event) needs the sketch, which is then parsed
/// once and kept: the read model applies every bucket update of every
/// partition (an open bucket changes at every commit), most never queried
/// before the next replaces them, and parsing each was most of its work.
#[derive(Clone)]
pub struct Visitors(Repr);

#[derive(Clone)]
enum Repr {
    Sketch(HllSketch),
    Encoded {
        bytes: Vec<u8>,
        parsed: OnceLock<Option<HllSketch>>,
    },
}

impl PartialEq for Visitors {
    fn eq(&self, other: &Self) -> bool {
        self.to_bytes() == other.to_bytes()
    }
}

impl std::fmt::Debug for Visitors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.sketch() {
            Some(s) => write!(
                f,
                "Visitors(lg_k {}, ~{:.0})",
                s.lg_config_k(),
                s.estimate()
            ),
            None => f.write_str("Visitors(unreadable)"),
        }
    }
}

/// A sketch of `lg_k` (clamped to what DataSketches accepts).
fn sketch(lg_k: u8) -> HllSketch {
    let lg_k = lg_k.clamp(LG_K_MIN, LG_K_MAX);
    match HllSketch::new(lg_k, HllType::Hll4) {
        Ok(sketch) => sketch,
        // Unreachable: lg_k is in range.
        Err(_) => unreachable!("lg_k {lg_k} is within DataSketches' range"),
    }
}

/// The preamble every serialized HLL sketch starts with: its preamble
/// length, serial version 1, family 7 (HLL), then lg_k.
fn plausible_sketch(bytes: &[u8]) -> Result<(), String> {
    match bytes {
        [_, 1, 7, lg_k, ..] if (LG_K_MIN..=LG_K_MAX).contains(lg_k) => Ok(()),
        _ => Err("not a serialized DataSketches HLL sketch".into()),
    }
}

impl Visitors {
    pub fn new(lg_k: u8) -> Self {
        Self(Repr::Sketch(sketch(lg_k)))
    }

    /// The sketch, parsed from its bytes the first time; `None` when its
    /// bytes do not parse (a reader counts nothing from it).
    fn sketch(&self) -> Option<&HllSketch> {
        match &self.0 {
            Repr::Sketch(s) => Some(s),
            Repr::Encoded { bytes, parsed } => parsed
                .get_or_init(|| match HllSketch::deserialize(bytes) {
                    Ok(sketch) => Some(sketch),
                    Err(error) => {
                        tracing::error!(%error, "a visitors sketch in the changelog does not parse: its bucket counts no visitors");
                        None
                    }
                })
                .as_ref(),
        }
    }

    pub fn insert(&mut self, user_id: &str) {
        if let Repr::Encoded { bytes, parsed } = &mut self.0 {
            // Restored from the changelog. Bytes whose preamble is wrong
            // were refused when the entry was read; a body that does not
            // parse was logged as an error, and the bucket starts again.
            let sketch = parsed
                .take()
                .flatten()
                .or_else(|| HllSketch::deserialize(bytes).ok())
                .unwrap_or_else(|| sketch(LG_K_MIN));
            self.0 = Repr::Sketch(sketch);
        }
        if let Repr::Sketch(s) = &mut self.0 {
            s.update(raw_bytes::from_str(user_id));
        }
    }

    /// The sketch's `lg_k` (its precision), for a new sketch like it.
    pub fn lg_k(&self) -> u8 {
        match &self.0 {
            Repr::Sketch(s) => s.lg_config_k(),
            // The preamble was checked when the bytes were read.
            Repr::Encoded { bytes, .. } => bytes.get(3).copied().unwrap_or(LG_K_MIN),
        }
    }

    /// The estimated number of distinct ids.
    pub fn estimate(&self) -> f64 {
        self.sketch().map_or(0.0, HllSketch::estimate)
    }

    /// The sketch as DataSketches serializes it (any DataSketches library
    /// reads it).
    pub fn to_bytes(&self) -> Vec<u8> {
        match &self.0 {
            Repr::Sketch(s) => s.serialize(),
            Repr::Encoded { bytes, .. } => bytes.clone(),
        }
    }

    /// Checks the bytes' preamble now; parses them when first needed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        plausible_sketch(bytes)?;
        Ok(Self(Repr::Encoded {
            bytes: bytes.to_vec(),
            parsed: OnceLock::new(),
        }))
    }
}

impl Serialize for Visitors {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(self.to_bytes()))
    }
}

impl<'de> Deserialize<'de> for Visitors {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text: std::borrow::Cow<'de, str> = Deserialize::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(de::Error::custom)?;
        Self::from_bytes(&bytes).map_err(de::Error::custom)
    }
}

/// Visitors of several buckets or partitions, merged.
#[derive(Debug, Clone)]
pub struct VisitorUnion(HllUnion);

impl Default for VisitorUnion {
    fn default() -> Self {
        match HllUnion::new(LG_K_MAX) {
            Ok(union) => Self(union),
            Err(_) => unreachable!("{LG_K_MAX} is DataSketches' largest lg_k"),
        }
    }
}

impl VisitorUnion {
    pub fn add(&mut self, visitors: &Visitors) {
        if let Some(sketch) = visitors.sketch() {
            self.0.update(sketch);
        }
    }

    /// Adds another union's ids (visitors of several event types: a user
    /// of two of them counts once).
    pub fn merge(&mut self, other: &VisitorUnion) {
        if !other.0.is_empty() {
            self.0.update(&other.0.to_sketch(HllType::Hll8));
        }
    }

    /// The estimated number of distinct ids, rounded.
    pub fn estimate(&self) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.estimate().round() as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exact below the sketch's list and set limits; within 2% above, after
    /// a union of several sketches (as a query merges partitions).
    #[test]
    fn estimates_are_exact_when_small_and_within_two_percent_merged() {
        for (distinct, parts) in [(1_000u64, 4usize), (100_000, 8), (1_000_000, 12)] {
            let mut sketches: Vec<Visitors> = (0..parts).map(|_| Visitors::new(14)).collect();
            for i in 0..distinct {
                let id = format!("user-{i}");
                // Each user in one partition (keyed by user), some twice.
                let part = (crate::key_hash(&id) % parts as u64) as usize;
                sketches[part].insert(&id);
                if i % 3 == 0 {
                    sketches[part].insert(&id);
                }
            }
            // Through the changelog's encoding, as the read model gets them.
            let mut union = VisitorUnion::default();
            for s in &sketches {
                let text = serde_json::to_string(s).expect("encodes");
                let back: Visitors = serde_json::from_str(&text).expect("decodes");
                assert_eq!(&back, s);
                union.add(&back);
            }
            let estimate = union.estimate() as f64;
            let error = (estimate - distinct as f64).abs() / distinct as f64;
            assert!(
                error <= 0.02,
                "{distinct} distinct over {parts} sketches: estimate {estimate}, error {error:.4}"
            );
            if distinct == 1_000 {
                assert_eq!(union.estimate(), 1_000);
            }
        }
    }

    #[test]
    fn read_sketches_keep_their_bytes_and_parse_when_needed() {
        let mut v = Visitors::new(12);
        for id in ["a", "b", "c"] {
            v.insert(id);
        }
        let read = Visitors::from_bytes(&v.to_bytes()).expect("a sketch");
        assert_eq!(read.to_bytes(), v.to_bytes());
        assert_eq!(read.estimate().round(), 3.0);
        let mut grown = read.clone();
        grown.insert("d");
        assert_eq!(grown.estimate().round(), 4.0);
        assert!(Visitors::from_bytes(b"not a sketch").is_err());
        assert!(serde_json::from_str::<Visitors>("\"bm90IGEgc2tldGNo\"").is_err());
    }

    #[test]
    fn the_hash_is_stable_across_builds() {
        // The serialized sketch of two known ids: DataSketches' MurmurHash3
        // with its fixed seed over the ids' bytes, not std's randomized
        // hasher. (A sketch in list mode keeps its ids' coupons in the order
        // they came: a partition applies its records in offset order, so its
        // entries are the same bytes however batches were cut.)
        let mut v = Visitors::new(12);
        v.insert("alice");
        v.insert("bob");
        let mut again = Visitors::new(12);
        again.insert("bob");
        again.insert("alice");
        assert_eq!(v.estimate().round(), 2.0);
        let text = serde_json::to_string(&v).expect("encodes");
        assert_eq!(text, "\"AgEHDAMIAgCuAHkHvyBkHA==\"");
        assert_eq!(again.estimate(), v.estimate());
    }

    /// Unions of unions (visitors of several event types): overlapping ids
    /// count once, within 2%; a restored sketch keeps its `lg_k`.
    #[test]
    fn merged_unions_count_shared_ids_once() {
        let (mut a, mut b) = (Visitors::new(14), Visitors::new(14));
        for i in 0..60_000 {
            a.insert(&format!("user-{i}"));
        }
        for i in 40_000..100_000 {
            b.insert(&format!("user-{i}"));
        }
        let (mut ua, mut ub) = (VisitorUnion::default(), VisitorUnion::default());
        ua.add(&a);
        ub.add(&b);
        ua.merge(&ub);
        ua.merge(&VisitorUnion::default());
        let got = ua.estimate() as f64;
        assert!((got - 100_000.0).abs() <= 2_000.0, "{got}");
        let restored = Visitors::from_bytes(&a.to_bytes()).expect("reads");
        assert_eq!((a.lg_k(), restored.lg_k()), (14, 14));
    }
}
