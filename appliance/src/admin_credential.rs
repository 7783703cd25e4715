//! The first admin credential: made at first start, printed once, and kept
//! only as an argon2id hash in the data directory.

use std::path::Path;

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::Argon2;
use cairn_storage::DataDir;
use rand::distributions::{Alphanumeric, DistString};

/// The file, inside the data directory, that holds the hash.
pub const FILE: &str = "admin.json";
/// The admin's user name.
pub const USER: &str = "admin";

/// Makes the credential if the data directory has none yet and returns the
/// clear password (to print once); `None` when it already exists.
pub fn ensure(dir: &DataDir) -> Result<Option<String>, String> {
    if dir.path().join(FILE).exists() {
        return Ok(None);
    }
    let password = Alphanumeric.sample_string(&mut rand::thread_rng(), 24);
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| format!("cannot hash the admin password: {e}"))?
        .to_string();
    let record = serde_json::json!({ "user": USER, "password_hash": hash });
    dir.write_file(Path::new(FILE), record.to_string().as_bytes(), 0o600)
        .map_err(|e| format!("cannot write {}: {e}", dir.path().join(FILE).display()))?;
    Ok(Some(password))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::{PasswordHash, PasswordVerifier};

    #[test]
    fn made_once_and_stored_only_hashed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::open(tmp.path()).expect("open");
        let password = ensure(&dir).expect("ensure").expect("first time");
        assert_eq!(ensure(&dir).expect("ensure again"), None);
        let stored = std::fs::read_to_string(tmp.path().join(FILE)).expect("read");
        assert!(!stored.contains(&password));
        let record: serde_json::Value = serde_json::from_str(&stored).expect("json");
        let hash = record["password_hash"].as_str().expect("hash field");
        let parsed = PasswordHash::new(hash).expect("phc string");
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .expect("the printed password verifies");
    }
}
