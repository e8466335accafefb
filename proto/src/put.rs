//! Conditional writes: what a write (an upload, a delete, a move) expects
//! to find at its path, as one value (object_store's `PutMode`). On the
//! wire it is the optional `baseVersion` (0: no live file).

/// What a write expects at its path; a write whose expectation fails is
/// refused as stale and changes nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PutMode {
    /// Whatever is there.
    #[default]
    Overwrite,
    /// No live file.
    Create,
    /// The file's latest version is this one.
    Update(u64),
}

impl PutMode {
    /// From the wire's `baseVersion`.
    pub fn from_base(base: Option<u64>) -> Self {
        match base {
            None => PutMode::Overwrite,
            Some(0) => PutMode::Create,
            Some(n) => PutMode::Update(n),
        }
    }

    /// As the wire's `baseVersion`.
    pub fn base(self) -> Option<u64> {
        match self {
            PutMode::Overwrite => None,
            PutMode::Create => Some(0),
            PutMode::Update(n) => Some(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_base_round_trips() {
        for mode in [PutMode::Overwrite, PutMode::Create, PutMode::Update(7)] {
            assert_eq!(PutMode::from_base(mode.base()), mode);
        }
        assert_eq!(PutMode::from_base(Some(0)), PutMode::Create);
    }
}
