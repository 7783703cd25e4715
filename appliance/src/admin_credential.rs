//! The first admin credential: made at first start, printed once, and kept
//! only as an argon2id hash in the data directory; and the API token that
//! the local `cairn admin` uses, kept (0600) beside it.

use std::path::Path;

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::Argon2;
use cairn_storage::DataDir;
use rand::distributions::{Alphanumeric, DistString};

/// The file, inside the data directory, that holds the hash.
pub const FILE: &str = "admin.json";
/// The admin's user name.
pub const USER: &str = "admin";
/// The file, inside the data directory, that holds the API token.
pub const TOKEN_FILE: &str = "api-token";

/// The stored admin credentials.
pub struct Credentials {
    pub user: String,
    pub password_hash: String,
    pub token: String,
}

/// Reads the stored credentials.
pub fn load(dir: &DataDir) -> Result<Credentials, String> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.path().join(name))
            .map_err(|e| format!("cannot read {}: {e}", dir.path().join(name).display()))
    };
    let record: serde_json::Value =
        serde_json::from_str(&read(FILE)?).map_err(|e| format!("{FILE} is not valid JSON: {e}"))?;
    let field = |name: &str| {
        record[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{FILE} has no {name}"))
    };
    Ok(Credentials {
        user: field("user")?,
        password_hash: field("password_hash")?,
        token: read(TOKEN_FILE)?.trim().to_string(),
    })
}

/// Makes the credential if the data directory has none yet and returns the
/// clear password (to print once); `None` when it already exists.
pub fn ensure(dir: &DataDir) -> Result<Option<String>, String> {
    if !dir.path().join(TOKEN_FILE).exists() {
        let token = Alphanumeric.sample_string(&mut rand::thread_rng(), 40);
        dir.write_file(Path::new(TOKEN_FILE), token.as_bytes(), 0o600)
            .map_err(|e| {
                format!(
                    "cannot write {}: {e}",
                    dir.path().join(TOKEN_FILE).display()
                )
            })?;
    }
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
        let creds = load(&dir).expect("load");
        assert_eq!(creds.user, USER);
        assert_eq!(creds.token.len(), 40);
    }
}
