//! The table that keeps a metric's entries per source partition and key,
//! and knows which changed since the last commit.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

use super::entries::Entry;
use crate::model::source::SourcePartition;

struct Slot<E> {
    entry: E,
    dirty: bool,
}

/// Entries by source partition and key, remembering which changed since the
/// last [`Table::drain_dirty`].
pub struct Table<K, E> {
    partitions: HashMap<SourcePartition, HashMap<K, Slot<E>>>,
    dirty: Vec<(SourcePartition, K)>,
}

impl<K, E> Default for Table<K, E> {
    fn default() -> Self {
        Self {
            partitions: HashMap::new(),
            dirty: Vec::new(),
        }
    }
}

impl<K: Hash + Eq + Clone, E: Entry> Table<K, E> {
    /// Applies `change` to the entry of `key` unless the entry already
    /// includes `offset`. Returns whether it was applied.
    pub fn apply<Q>(
        &mut self,
        source: SourcePartition,
        key: &Q,
        offset: i64,
        change: impl FnOnce(&mut E),
    ) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let entries = self.partitions.entry(source).or_default();
        // Look up by reference first: the common case (a known key) then
        // allocates nothing.
        let slot = match entries.get_mut(key) {
            Some(slot) => slot,
            None => entries.entry(key.to_owned()).or_insert(Slot {
                entry: E::default(),
                dirty: false,
            }),
        };
        if offset <= slot.entry.as_of() {
            return false;
        }
        change(&mut slot.entry);
        slot.entry.set_as_of(offset);
        if !slot.dirty {
            slot.dirty = true;
            self.dirty.push((source, key.to_owned()));
        }
        true
    }

    /// Loads an entry restored from the changelog, unless the table already
    /// holds a newer one. Restored entries are not dirty: they are already
    /// in the changelog.
    pub fn restore(&mut self, source: SourcePartition, key: K, entry: E) {
        let entries = self.partitions.entry(source).or_default();
        match entries.get_mut(&key) {
            Some(slot) if slot.entry.as_of() >= entry.as_of() => {}
            Some(slot) => slot.entry = entry,
            None => {
                entries.insert(
                    key,
                    Slot {
                        entry,
                        dirty: false,
                    },
                );
            }
        }
    }

    /// The entries changed since the last call, each once, in its latest state.
    pub fn drain_dirty(&mut self) -> impl Iterator<Item = (SourcePartition, K, E)> + '_ {
        let partitions = &mut self.partitions;
        self.dirty.drain(..).filter_map(move |(source, key)| {
            let slot = partitions.get_mut(&source)?.get_mut(&key)?;
            slot.dirty = false;
            Some((source, key, slot.entry.clone()))
        })
    }

    /// Drops a source partition's entries (its partition was revoked).
    pub fn forget(&mut self, source: SourcePartition) {
        self.partitions.remove(&source);
        self.dirty.retain(|(s, _)| *s != source);
    }

    pub fn get<Q>(&self, source: SourcePartition, key: &Q) -> Option<&E>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.partitions
            .get(&source)?
            .get(key)
            .map(|slot| &slot.entry)
    }

    pub fn len(&self) -> usize {
        self.partitions.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::source::InputTopic;
    use crate::state::Counter;

    #[test]
    fn replayed_offsets_are_skipped_per_entry() {
        let p0 = SourcePartition::new(InputTopic::UserEvents, 0);
        let p1 = SourcePartition::new(InputTopic::UserEvents, 1);
        let mut t: Table<String, Counter> = Table::default();
        assert!(t.apply(p0, "login", 0, |c| c.count += 1));
        assert!(t.apply(p0, "login", 5, |c| c.count += 1));
        // Offset 5 again (a replay) and an older offset: already included.
        assert!(!t.apply(p0, "login", 5, |c| c.count += 1));
        assert!(!t.apply(p0, "login", 3, |c| c.count += 1));
        // Another key's entry of the same partition has its own as_of.
        assert!(t.apply(p0, "view", 3, |c| c.count += 1));
        // Another partition has its own offsets.
        assert!(t.apply(p1, "login", 1, |c| c.count += 1));
        assert_eq!(t.get(p0, "login").map(|c| (c.count, c.as_of)), Some((2, 5)));
        assert_eq!(t.get(p0, "view").map(|c| (c.count, c.as_of)), Some((1, 3)));
        assert_eq!(t.get(p1, "login").map(|c| (c.count, c.as_of)), Some((1, 1)));
    }

    #[test]
    fn drain_yields_each_changed_entry_once_in_its_latest_state() {
        let p0 = SourcePartition::new(InputTopic::PageViews, 0);
        let mut t: Table<String, Counter> = Table::default();
        for offset in 0..10 {
            t.apply(p0, if offset % 2 == 0 { "a" } else { "b" }, offset, |c| {
                c.count += 1
            });
        }
        let mut drained: Vec<_> = t
            .drain_dirty()
            .map(|(_, k, c)| (k, c.count, c.as_of))
            .collect();
        drained.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(drained, vec![("a".into(), 5, 8), ("b".into(), 5, 9)]);
        assert_eq!(t.drain_dirty().count(), 0);
        t.forget(p0);
        assert!(t.is_empty());
    }
}
