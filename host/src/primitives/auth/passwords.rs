//! Password hashing: Argon2id PHC strings, and a dummy hash so an unknown login costs as much as a wrong password.
//!
//! Every hash runs in working memory borrowed from [`Workspace`]: Argon2 with
//! the default parameters needs 19 MiB per hash, and allocating that afresh for
//! each login left glibc's per-thread arenas holding tens of MiB after a burst
//! of basic-auth requests. Borrowing also caps how many hashes run at once, so
//! a login storm queues instead of taking every core and 19 MiB per request.

use std::sync::{Arc, Condvar, Mutex, OnceLock};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use super::AuthError;
use super::config::AuthSettings;
use super::crypto::fill_random;

/// Longest password accepted, in bytes: hashing cost must not depend on what a client sends.
pub(super) const MAX_PASSWORD_BYTES: usize = 1024;

/// Makes and checks Argon2id hashes with the site's parameters.
pub(super) struct PasswordHasher {
    argon2: Argon2<'static>,
    workspace: Arc<Workspace>,
    /// A hash of a random password with the current parameters, checked in place of a
    /// missing one so that a failed check costs the same whether or not the login exists.
    /// Made on a background thread at start so a kernel start does not pay for it.
    dummy: Arc<OnceLock<String>>,
}

impl PasswordHasher {
    pub(super) fn new(settings: &AuthSettings) -> Result<Self, AuthError> {
        let params = Params::new(
            settings.argon2_m_kib,
            settings.argon2_t,
            settings.argon2_p,
            None,
        )
        .map_err(|error| AuthError::Invalid(format!("auth argon2 parameters: {error}")))?;
        let workspace = Arc::new(Workspace::new(params.block_count(), concurrent_hashes()));
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = Arc::new(OnceLock::new());
        let (cell, hasher, memory) = (Arc::clone(&dummy), argon2.clone(), Arc::clone(&workspace));
        std::thread::spawn(move || {
            cell.get_or_init(|| dummy_hash(&hasher, &memory));
        });
        Ok(PasswordHasher {
            argon2,
            workspace,
            dummy,
        })
    }

    /// The dummy hash; waits for the start-up thread if it is still hashing.
    fn dummy(&self) -> &str {
        self.dummy
            .get_or_init(|| dummy_hash(&self.argon2, &self.workspace))
    }

    /// A new PHC string (`$argon2id$v=19$m=…`) for `password`, with a fresh random salt.
    pub(super) fn hash(&self, password: &str) -> Result<String, AuthError> {
        hash_with(&self.argon2, &self.workspace, password.as_bytes())
    }

    /// Whether `password` matches `stored`. With no stored hash (unknown login, account
    /// without a password) or an unreadable one, the dummy hash is checked instead and
    /// the answer is `false`. The final comparison of the derived keys is constant time.
    pub(super) fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let real = stored.and_then(|stored| PasswordHash::new(stored).ok());
        let is_real = real.is_some();
        let hash = real.or_else(|| PasswordHash::new(self.dummy()).ok());
        let matches = hash.is_some_and(|hash| self.matches(password.as_bytes(), &hash));
        is_real && matches
    }

    /// Derives the key of `password` with the algorithm, version, parameters and
    /// salt the stored hash names (older hashes keep theirs) and compares.
    fn matches(&self, password: &[u8], stored: &PasswordHash<'_>) -> bool {
        let (Some(salt), Some(expected)) = (stored.salt, stored.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(stored.algorithm) else {
            return false;
        };
        let version = match stored.version.map(Version::try_from) {
            None => Version::V0x13,
            Some(Ok(version)) => version,
            Some(Err(_)) => return false,
        };
        let Ok(params) = Params::try_from(stored) else {
            return false;
        };
        let mut salt_bytes = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
            return false;
        };
        let argon2 = Argon2::new(algorithm, version, params);
        let mut derived = vec![0u8; expected.len()];
        derive(&argon2, &self.workspace, password, salt, &mut derived).is_ok()
            && Output::new(&derived).is_ok_and(|derived| derived == expected)
    }
}

/// How many hashes may run at once: one per core, at most four.
fn concurrent_hashes() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Argon2 working memory, made on first use and kept for the next hash.
struct Workspace {
    /// Blocks one hash with the site's parameters needs.
    blocks: usize,
    /// At most this many buffers exist, so at most this many hashes run at once.
    limit: usize,
    /// Buffers not in use, and how many were made.
    free: Mutex<(Vec<Vec<Block>>, usize)>,
    returned: Condvar,
}

impl Workspace {
    fn new(blocks: usize, limit: usize) -> Self {
        Workspace {
            blocks,
            limit: limit.max(1),
            free: Mutex::new((Vec::new(), 0)),
            returned: Condvar::new(),
        }
    }

    /// Runs `f` with at least `need` blocks, waiting while every buffer is busy.
    /// A stored hash stronger than the site's parameters gets a buffer of its
    /// own for the call, so the kept ones never outgrow the site's setting.
    fn with<R>(&self, need: usize, f: impl FnOnce(&mut [Block]) -> R) -> R {
        let mut borrowed = Borrowed {
            workspace: self,
            buffer: self.take(),
        };
        if need <= borrowed.buffer.len() {
            f(&mut borrowed.buffer)
        } else {
            f(&mut vec![Block::default(); need])
        }
    }

    fn take(&self) -> Vec<Block> {
        let mut free = self
            .free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            if let Some(buffer) = free.0.pop() {
                return buffer;
            }
            if free.1 < self.limit {
                free.1 += 1;
                drop(free);
                return vec![Block::default(); self.blocks];
            }
            free = self
                .returned
                .wait(free)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn give_back(&self, buffer: Vec<Block>) {
        let mut free = self
            .free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        free.0.push(buffer);
        drop(free);
        self.returned.notify_one();
    }
}

/// A buffer out of the workspace, given back when dropped, so a hash that
/// panics cannot leave the workspace a buffer short (and later callers waiting).
struct Borrowed<'a> {
    workspace: &'a Workspace,
    buffer: Vec<Block>,
}

impl Drop for Borrowed<'_> {
    fn drop(&mut self) {
        self.workspace.give_back(std::mem::take(&mut self.buffer));
    }
}

fn derive(
    argon2: &Argon2<'_>,
    workspace: &Workspace,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    workspace.with(argon2.params().block_count(), |blocks| {
        argon2.hash_password_into_with_memory(password, salt, out, blocks)
    })
}

/// A hash of 32 random bytes; parameters were validated in `new`, so hashing
/// cannot fail there (an empty string would only make the dummy check fail fast).
fn dummy_hash(argon2: &Argon2<'_>, workspace: &Workspace) -> String {
    let mut unguessable = [0u8; 32];
    fill_random(&mut unguessable);
    hash_with(argon2, workspace, &unguessable).unwrap_or_default()
}

fn hash_with(
    argon2: &Argon2<'_>,
    workspace: &Workspace,
    password: &[u8],
) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    fill_random(&mut salt);
    let mut key = vec![
        0u8;
        argon2
            .params()
            .output_len()
            .unwrap_or(Params::DEFAULT_OUTPUT_LEN)
    ];
    derive(argon2, workspace, password, &salt, &mut key)
        .map_err(|error| AuthError::Backend(format!("password hashing failed: {error}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(hashing_failed)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params()).map_err(hashing_failed)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&key).map_err(hashing_failed)?),
    };
    Ok(phc.to_string())
}

fn hashing_failed(error: argon2::password_hash::Error) -> AuthError {
    AuthError::Backend(format!("password hashing failed: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PasswordHasher {
        PasswordHasher::new(&AuthSettings::fast_hashing_for_tests())
            .expect("test parameters are valid")
    }

    #[test]
    fn hashes_are_argon2id_with_the_configured_parameters() -> Result<(), AuthError> {
        let hash = hasher().hash("correct horse")?;
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        Ok(())
    }

    #[test]
    fn the_same_password_hashes_differently_each_time() -> Result<(), AuthError> {
        let hasher = hasher();
        assert_ne!(hasher.hash("pw")?, hasher.hash("pw")?);
        Ok(())
    }

    #[test]
    fn verify_accepts_the_password_and_refuses_others() -> Result<(), AuthError> {
        let hasher = hasher();
        let hash = hasher.hash("correct horse")?;
        assert!(hasher.verify("correct horse", Some(&hash)));
        assert!(!hasher.verify("correct horsE", Some(&hash)));
        assert!(!hasher.verify("", Some(&hash)));
        Ok(())
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_costs() -> Result<(), AuthError> {
        // Same algorithm and parameters: checking it takes as long as checking a real hash.
        let hasher = hasher();
        let params = |hash: &str| hash.rsplitn(3, '$').nth(2).map(str::to_owned);
        assert_eq!(params(hasher.dummy()), params(&hasher.hash("pw")?));
        Ok(())
    }

    #[test]
    fn the_default_parameters_are_owasps() -> Result<(), AuthError> {
        let hasher = PasswordHasher::new(&AuthSettings::default())?;
        let hash = hasher.hash("pw")?;
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(hasher.verify("pw", Some(&hash)));
        Ok(())
    }

    #[test]
    fn missing_or_garbled_hashes_never_verify() {
        let hasher = hasher();
        assert!(!hasher.verify("anything", None));
        assert!(!hasher.verify("anything", Some("not a phc string")));
    }

    #[test]
    fn stored_hashes_keep_their_own_parameters() -> Result<(), AuthError> {
        let old = PasswordHasher::new(&AuthSettings {
            argon2_m_kib: 128,
            ..AuthSettings::fast_hashing_for_tests()
        })?;
        let hash = old.hash("pw")?;
        assert!(hasher().verify("pw", Some(&hash)));
        Ok(())
    }

    #[test]
    fn hashes_agree_with_the_argon2_crates_own_hasher() -> Result<(), AuthError> {
        // Hashes stored before hashing moved onto the workspace must still verify,
        // and ours must verify with any standard Argon2 implementation.
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let settings = AuthSettings::fast_hashing_for_tests();
        let params = Params::new(
            settings.argon2_m_kib,
            settings.argon2_t,
            settings.argon2_p,
            None,
        )
        .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::encode_b64(b"sixteen byte slt").map_err(hashing_failed)?;
        let theirs = reference
            .hash_password(b"correct horse", &salt)
            .map_err(hashing_failed)?
            .to_string();
        let hasher = hasher();
        assert!(hasher.verify("correct horse", Some(&theirs)));
        assert!(!hasher.verify("correct horsE", Some(&theirs)));
        let ours = hasher.hash("correct horse")?;
        let parsed = PasswordHash::new(&ours).map_err(hashing_failed)?;
        assert!(reference.verify_password(b"correct horse", &parsed).is_ok());
        assert!(reference.verify_password(b"wrong", &parsed).is_err());
        // An Argon2i hash names its own algorithm and is checked with it.
        let argon2i = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            reference.params().clone(),
        )
        .hash_password(b"pw", &salt)
        .map_err(hashing_failed)?
        .to_string();
        assert!(hasher.verify("pw", Some(&argon2i)));
        Ok(())
    }

    #[test]
    fn the_workspace_runs_at_most_its_limit_at_once_and_keeps_its_buffers() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let workspace = Arc::new(Workspace::new(8, 2));
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (workspace, running, most) = (workspace.clone(), running.clone(), most.clone());
                std::thread::spawn(move || {
                    workspace.with(8, |blocks| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                        blocks.len()
                    })
                })
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().ok(), Some(8));
        }
        assert!(most.load(Ordering::SeqCst) <= 2);
        let free = workspace.free.lock().map(|f| (f.0.len(), f.1)).ok();
        assert_eq!(free, Some((2, 2)), "two buffers made, both back");
        // A hash that panics still gives its buffer back.
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            workspace.with(8, |_| panic!("a hash that fails hard"))
        }));
        assert!(panicked.is_err());
        let free = workspace.free.lock().map(|f| (f.0.len(), f.1)).ok();
        assert_eq!(free, Some((2, 2)), "the buffer came back");
        // A bigger need borrows a one-off buffer; the kept ones stay small.
        assert_eq!(workspace.with(20, |blocks| blocks.len()), 20);
        let sizes: Vec<usize> = workspace
            .free
            .lock()
            .map(|f| f.0.iter().map(Vec::len).collect())
            .unwrap_or_default();
        assert_eq!(sizes, vec![8, 8]);
    }

    #[test]
    fn impossible_parameters_are_refused() {
        let settings = AuthSettings {
            argon2_m_kib: 1,
            ..AuthSettings::default()
        };
        assert!(matches!(
            PasswordHasher::new(&settings),
            Err(AuthError::Invalid(_))
        ));
    }
}
