//! Heavy hitters of one bucket: the pages read most, in bounded space.
//!
//! Space-Saving (Metwally, Agrawal, El Abbadi, 2005): at most `capacity`
//! items are counted; an item not counted yet, when the table is full,
//! takes the place of the least counted one and inherits its count as its
//! possible overcount (`err`). Every count is then at most `err` above the
//! item's true count, and an item absent from the table occurred at most
//! [`TopK::floor`] times — zero while the table never filled, so a bucket
//! with fewer distinct items than the capacity is exact. The items of a
//! skewed stream (a Zipf law, as page popularity is) that matter never
//! leave the table, and their counts stay exact.
//!
//! Fed in offset order by one partition consumer, the table is a function
//! of the partition's records; a query merges partitions by adding counts
//! and bounds (the mergeable form of Agarwal et al., 2012).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counted {
    #[serde(rename = "n")]
    pub count: u64,
    /// At most this much of `count` may belong to items it replaced.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub err: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopK {
    items: BTreeMap<String, Counted>,
    /// Whether an item was ever replaced (the table filled).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    full: bool,
}

impl TopK {
    pub fn add(&mut self, item: &str, capacity: usize) {
        if let Some(c) = self.items.get_mut(item) {
            c.count += 1;
            return;
        }
        if self.items.len() < capacity.max(1) {
            self.items
                .insert(item.to_owned(), Counted { count: 1, err: 0 });
            return;
        }
        // The least counted item (the first by name among equals, so the
        // choice is the same every time) gives its place.
        let Some((victim, least)) = self
            .items
            .iter()
            .min_by(|a, b| a.1.count.cmp(&b.1.count).then_with(|| a.0.cmp(b.0)))
            .map(|(k, c)| (k.clone(), *c))
        else {
            return;
        };
        self.items.remove(&victim);
        self.full = true;
        self.items.insert(
            item.to_owned(),
            Counted {
                count: least.count + 1,
                err: least.count,
            },
        );
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How often an item absent from the table may have occurred.
    pub fn floor(&self) -> u64 {
        if !self.full {
            return 0;
        }
        self.items.values().map(|c| c.count).min().unwrap_or(0)
    }

    pub fn items(&self) -> impl Iterator<Item = (&String, &Counted)> {
        self.items.iter()
    }
}

/// Several partitions' tables merged (the mergeable form of Agarwal et
/// al., 2012): per item, the sum of its counts, where a part that does not
/// hold it adds its floor (the most it can have had there) to the count
/// and to the bound. So every count stays an overestimate by at most its
/// bound, as in one table.
#[derive(Debug, Clone, Default)]
pub struct TopKUnion {
    items: BTreeMap<String, Counted>,
    floors: u64,
}

impl TopKUnion {
    pub fn add(&mut self, table: &TopK) {
        let floor = table.floor();
        for (item, held) in self.items.iter_mut() {
            if !table.items.contains_key(item) {
                held.count += floor;
                held.err += floor;
            }
        }
        for (item, c) in &table.items {
            let held = self.items.entry(item.clone()).or_insert(Counted {
                // Every earlier part might have had it, below its floor.
                count: self.floors,
                err: self.floors,
            });
            held.count += c.count;
            held.err += c.err;
        }
        self.floors += floor;
    }

    /// Items by count, most first (then by name): `(item, count, bound)`,
    /// where the true count is in `count - bound ..= count`; an item no
    /// part held occurred at most [`Self::floor`] times.
    pub fn ranked(&self) -> Vec<(String, u64, u64)> {
        let mut out: Vec<(String, u64, u64)> = self
            .items
            .iter()
            .map(|(k, c)| (k.clone(), c.count, c.err.min(c.count)))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }

    /// How often an item no part held may have occurred.
    pub fn floor(&self) -> u64 {
        self.floors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_of_a_zipf_stream_is_exact_and_bounds_hold_for_the_rest() {
        // 5,000 distinct pages, popularity 1/rank, 100,000 views, 200 kept.
        let n = 5_000u64;
        let harmonic: f64 = (1..=n).map(|i| 1.0 / i as f64).sum();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut exact: BTreeMap<String, u64> = BTreeMap::new();
        let mut parts = [TopK::default(), TopK::default()];
        for i in 0..100_000 {
            let mut x = (next() % 1_000_000) as f64 / 1_000_000.0 * harmonic;
            let mut rank = n;
            for r in 1..=n {
                x -= 1.0 / r as f64;
                if x <= 0.0 {
                    rank = r;
                    break;
                }
            }
            let page = format!("/page/{rank}");
            *exact.entry(page.clone()).or_default() += 1;
            parts[i % 2].add(&page, 200);
        }
        let mut union = TopKUnion::default();
        for p in &parts {
            union.add(p);
        }
        let ranked = union.ranked();
        let mut want: Vec<(&String, &u64)> = exact.iter().collect();
        want.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        // The ten largest: exact, in order, with no overcount possible.
        for i in 0..10 {
            assert_eq!(
                (&ranked[i].0, ranked[i].1),
                (want[i].0, *want[i].1),
                "rank {i}"
            );
            assert_eq!(ranked[i].2, 0, "{} may be overcounted", ranked[i].0);
        }
        // Every count held is within its bound of the true count.
        for (page, count, bound) in &ranked {
            let truth = exact[page];
            assert!(
                *count >= truth && count - bound <= truth,
                "{page}: {count}±{bound} vs {truth}"
            );
        }
        // A page not held occurred at most the floor.
        let held: std::collections::BTreeSet<&String> = ranked.iter().map(|r| &r.0).collect();
        for (page, truth) in &exact {
            if !held.contains(page) {
                assert!(
                    *truth <= union.floor(),
                    "{page}: {truth} > {}",
                    union.floor()
                );
            }
        }
    }

    #[test]
    fn below_the_capacity_everything_is_exact() {
        let mut t = TopK::default();
        for page in ["/a", "/b", "/a", "/c", "/a"] {
            t.add(page, 3);
        }
        assert_eq!(t.floor(), 0);
        let mut u = TopKUnion::default();
        u.add(&t);
        assert_eq!(
            u.ranked(),
            [
                ("/a".into(), 3, 0),
                ("/b".into(), 1, 0),
                ("/c".into(), 1, 0)
            ]
        );
        // A fourth page replaces the least counted (the first by name).
        t.add("/d", 3);
        let names: Vec<&String> = t.items().map(|(k, _)| k).collect();
        assert_eq!(names, ["/a", "/c", "/d"]);
        assert_eq!(t.floor(), 1);
    }
}
