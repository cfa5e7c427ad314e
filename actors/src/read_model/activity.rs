//! Users counted by when they were last seen, so that "how many users were
//! active since T" is answered without walking every user.
//!
//! Each user is held once, at its latest `last_seen_ms`, in two sparse
//! counts: by millisecond and by whole second. A query sums the whole seconds
//! after the one T falls in, and the milliseconds from T to the end of T's
//! second: at most one second's worth of entries plus one per second of the
//! window, however many users there are.

use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub(crate) struct ActivityIndex {
    by_ms: BTreeMap<i64, u64>,
    by_second: BTreeMap<i64, u64>,
}

fn second_of(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

fn add(counts: &mut BTreeMap<i64, u64>, at: i64) {
    *counts.entry(at).or_default() += 1;
}

fn take(counts: &mut BTreeMap<i64, u64>, at: i64) {
    if let Some(count) = counts.get_mut(&at) {
        *count -= 1;
        if *count == 0 {
            counts.remove(&at);
        }
    }
}

impl ActivityIndex {
    /// One user's latest activity moved from `from` to `to` (`None`: the
    /// user is not held, before or after).
    pub(crate) fn moved(&mut self, from: Option<i64>, to: Option<i64>) {
        if from == to {
            return;
        }
        if let Some(ms) = from {
            take(&mut self.by_ms, ms);
            take(&mut self.by_second, second_of(ms));
        }
        if let Some(ms) = to {
            add(&mut self.by_ms, ms);
            add(&mut self.by_second, second_of(ms));
        }
    }

    /// Users last seen at or after `since_ms`.
    pub(crate) fn since(&self, since_ms: i64) -> u64 {
        let second = second_of(since_ms);
        let in_first_second: u64 = self
            .by_ms
            .range(since_ms..)
            .take_while(|(ms, _)| second_of(**ms) == second)
            .map(|(_, n)| n)
            .sum();
        let later: u64 = match second.checked_add(1) {
            Some(next) => self.by_second.range(next..).map(|(_, n)| n).sum(),
            None => 0,
        };
        in_first_second + later
    }

    /// Users held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.by_second.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_any_millisecond_including_negative_and_extreme_times() {
        let mut index = ActivityIndex::default();
        let seen = [
            i64::MIN,
            -1_500,
            -1,
            0,
            999,
            1_000,
            1_000,
            1_999,
            2_000,
            5_432,
            i64::MAX,
        ];
        for ms in seen {
            index.moved(None, Some(ms));
        }
        for since in [
            i64::MIN,
            -2_000,
            -1_500,
            -1_499,
            -1,
            0,
            1,
            999,
            1_000,
            1_001,
            1_999,
            2_000,
            2_001,
            5_432,
            5_433,
            i64::MAX - 1,
            i64::MAX,
        ] {
            let expected = seen.iter().filter(|ms| **ms >= since).count() as u64;
            assert_eq!(index.since(since), expected, "since {since}");
        }
    }

    #[test]
    fn a_user_moving_is_counted_once_at_its_new_time() {
        let mut index = ActivityIndex::default();
        index.moved(None, Some(1_200));
        index.moved(None, Some(1_200));
        index.moved(Some(1_200), Some(3_400));
        assert_eq!(index.len(), 2);
        assert_eq!(index.since(1_201), 1);
        assert_eq!(index.since(1_200), 2);
        index.moved(Some(3_400), None);
        index.moved(Some(1_200), None);
        assert_eq!(index.len(), 0);
        assert_eq!(index.since(i64::MIN), 0);
        assert!(index.by_ms.is_empty() && index.by_second.is_empty());
        // Nothing moved: nothing changes.
        index.moved(Some(7), Some(7));
        index.moved(None, None);
        assert_eq!(index.len(), 0);
    }
}
