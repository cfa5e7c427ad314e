//! Where a partition's input resumes once its state is restored: the one
//! offset decision of the restore, apart from the seeks that carry it out.
//!
//! ```text
//! a reset            ─▶ the reset's offset (committed in the reset's transaction)
//! a fresh assignment ─▶ the first record delivered and not processed while
//!                       restoring, if any; else where the fetch already is
//! a rollback         ─▶ the group's committed offset (the start when none)
//! ```
//!
//! Every case lands where the restored state ends: the committed offsets
//! are those of the last transaction, which wrote exactly that state.

/// Where to seek, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeFrom {
    /// Seek to this offset.
    Offset(i64),
    /// Seek to the group's committed offset, or the start when it has none.
    Committed,
    /// No seek: the fetch position is where processing resumes.
    AsFetched,
}

/// Why the partition was restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    /// Newly assigned. `first_unprocessed`: a record delivered while the
    /// state was read (its partition paused a moment late), if any.
    Assigned { first_unprocessed: Option<i64> },
    /// Rolled back to its last commit (an abort, a restarted actor).
    RolledBack,
    /// Moved by an offset reset to `to`.
    Reset { to: i64 },
}

pub fn resume_from(restored: Restored) -> ResumeFrom {
    match restored {
        Restored::Reset { to } => ResumeFrom::Offset(to),
        Restored::Assigned {
            first_unprocessed: Some(at),
        } => ResumeFrom::Offset(at),
        Restored::Assigned {
            first_unprocessed: None,
        } => ResumeFrom::AsFetched,
        Restored::RolledBack => ResumeFrom::Committed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_restore_resumes_where_its_state_ends() {
        assert_eq!(
            resume_from(Restored::Reset { to: 42 }),
            ResumeFrom::Offset(42)
        );
        assert_eq!(
            resume_from(Restored::Assigned {
                first_unprocessed: Some(7)
            }),
            ResumeFrom::Offset(7)
        );
        assert_eq!(
            resume_from(Restored::Assigned {
                first_unprocessed: None
            }),
            ResumeFrom::AsFetched
        );
        assert_eq!(resume_from(Restored::RolledBack), ResumeFrom::Committed);
    }
}
