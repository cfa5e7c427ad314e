//! Who owns a partition number, as its owner wrote it to the changelog.
//!
//! The instance that holds `user-events/p` (and so `page-views/p`, and
//! every user of partition *p*) writes `owner/<p>` in the first
//! transaction after it has restored the partition: its instance id and the
//! address other instances reach it at. The record is compacted like any
//! entry, so the changelog always names the last instance that took *p*;
//! every instance's read model reads it, and a per-user query on any
//! instance is forwarded there. An owner that has since lost the partition
//! refuses a forwarded query (it no longer holds the user); the new owner's
//! record follows within one commit of its restore. No second coordination
//! system: Kafka's group decides, the changelog tells.

use serde::{Deserialize, Serialize};

/// The key prefix of ownership records (never a state entry: restores skip
/// them, the read model keeps them apart).
pub const OWNER_PREFIX: &str = "owner/";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    pub instance: String,
    pub url: String,
}

/// The record's key for partition `partition`.
pub fn owner_key(partition: i32) -> String {
    format!("{OWNER_PREFIX}{partition}")
}

/// The partition of an ownership record's key; `None` for any other key.
pub fn owner_partition(key: &[u8]) -> Option<i32> {
    let rest = key.strip_prefix(OWNER_PREFIX.as_bytes())?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// Whether `key` is an ownership record's (well formed or not).
pub fn is_owner_key(key: &[u8]) -> bool {
    key.starts_with(OWNER_PREFIX.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_partition_and_nothing_else_is_one() {
        assert_eq!(owner_key(7), "owner/7");
        assert_eq!(owner_partition(b"owner/7"), Some(7));
        assert_eq!(owner_partition(b"owner/x"), None);
        assert!(is_owner_key(b"owner/x"));
        assert!(!is_owner_key(b"users/user-events/0/owner"));
        assert_eq!(owner_partition(b"users/user-events/0/u"), None);
        let owner: Owner =
            serde_json::from_str(r#"{"instance":"arus-0","url":"http://arus-0.arus:3000"}"#)
                .expect("reads");
        assert_eq!(owner.instance, "arus-0");
    }
}
