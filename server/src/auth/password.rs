//! Passwords: argon2id hashes in PHC strings, and the rules for user names.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 8;
/// Longest password accepted, in bytes: a longer one is refused before
/// anything is hashed.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// MiB one argon2id check holds (the argon2 crate's default parameters).
pub const CHECK_MIB: usize = 19;

/// Hashes `password` with argon2id and a random salt. CPU-heavy: call it
/// off the async runtime.
pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| format!("cannot make a salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches the PHC string `hash`. CPU-heavy.
pub fn verify(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of no one's password, verified against when the user does not
/// exist, so that a wrong name costs the same time as a wrong password.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("no user has this password").unwrap_or_default())
}

/// Refuses a password too long to be anyone's (before it is hashed).
pub fn check_length(password: &str) -> Result<(), String> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("a password is at most {MAX_PASSWORD_BYTES} bytes"));
    }
    Ok(())
}

/// Checks a new password; the message says what is wrong.
pub fn check_new(password: &str) -> Result<(), String> {
    check_length(password)?;
    if password.chars().count() < MIN_PASSWORD {
        return Err(format!(
            "a password needs at least {MIN_PASSWORD} characters"
        ));
    }
    Ok(())
}

/// A user name as stored: lower case, 1 to 64 of `a-z 0-9 . _ -` and `@`,
/// starting with a letter or digit.
pub fn normalize_name(name: &str) -> Result<String, String> {
    let name = name.trim().to_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(name)
    } else {
        Err(format!(
            "invalid user name {name:?}: use 1 to 64 letters, digits, '.', '_', '-' or '@', \
             starting with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_hides_it() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsf", &h));
        assert!(!verify("correct horse", "not a hash"));
        assert_ne!(h, hash("correct horse").unwrap(), "salted");
    }

    #[test]
    fn names_are_lower_case_and_plain() {
        assert_eq!(normalize_name(" Alice ").unwrap(), "alice");
        assert_eq!(
            normalize_name("bob.smith@example.org").unwrap(),
            "bob.smith@example.org"
        );
        for bad in ["", "-x", "a b", "ü", "a/b", "#1 x", &"a".repeat(65)] {
            assert!(normalize_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_new("short").is_err());
        assert!(check_new("long enough").is_ok());
    }
}
