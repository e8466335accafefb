//! Who is calling: the one value the authentication layer hands every
//! request, and the domain takes it from there.

use crate::meta::{OwnerId, Role, DEFAULT_OWNER};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Whose files the caller sees: their user id.
    pub owner: OwnerId,
    /// Their user name, recorded as the uploader of what they store.
    pub name: String,
    pub role: Role,
    /// The login their token was issued under (`None` with
    /// authentication switched off).
    pub login: Option<String>,
}

impl Caller {
    /// Everyone, with authentication switched off: one open namespace.
    pub fn anyone() -> Self {
        Self {
            owner: DEFAULT_OWNER,
            name: "default".into(),
            role: Role::Admin,
            login: None,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}
