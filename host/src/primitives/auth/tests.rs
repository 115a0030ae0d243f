//! Specifications of the auth primitive's API, run against a private test database and a hand-set clock.

use std::sync::Arc;
use std::time::Duration;

use super::keys::Hash;
use super::keys::tests::{
    ED25519_PUBLIC, P256_PUBLIC, RSA_MD5, RSA_PUBLIC, RSA_SHA256, ed25519_sign, p256_sign, rsa_sign,
};
use super::*;

/// 2026-01-01T00:00:00Z.
const START: u64 = 1_767_225_600_000;
const PASSWORD: &str = "correct horse battery staple";
const SIGNING_STRING: &[u8] = b"date: Thu, 01 Jan 2026 00:00:00 GMT";
const PEER: &str = "192.0.2.10:40000";

struct Site {
    auth: Auth,
    clock: Arc<ManualClock>,
    db: Database,
}

type Result<T = (), E = AuthError> = std::result::Result<T, E>;

fn site() -> Site {
    site_with(AuthSettings::fast_hashing_for_tests())
}

fn site_with(settings: AuthSettings) -> Site {
    let db = Database::open_in_memory_for_tests().expect("a test database opens");
    let clock = Arc::new(ManualClock::new(START));
    let auth = Auth::new(db.clone(), settings, clock.clone()).expect("auth opens");
    Site { auth, clock, db }
}

impl Site {
    fn advance(&self, seconds: u64) {
        self.clock.advance(Duration::from_secs(seconds));
    }

    fn account(&self, login: &str) -> Result<Account> {
        self.auth.create_account(NewAccount {
            login: login.into(),
            email: format!("{login}@example.com"),
            password: Some(PASSWORD.into()),
            ..NewAccount::default()
        })
    }

    fn sub_user(&self, parent: &str, login: &str) -> Result<Account> {
        self.auth.create_account(NewAccount {
            login: login.into(),
            email: format!("{login}.{parent}@example.com"),
            password: Some(PASSWORD.into()),
            parent: Some(parent.into()),
            ..NewAccount::default()
        })
    }

    fn disable(&self, login: &str) -> Result<Account> {
        let update = AccountUpdate {
            disabled: Some(true),
            ..AccountUpdate::default()
        };
        self.auth.update_account(login, update)
    }

    fn login(&self, login: &str, password: &str) -> Result<Account> {
        self.auth.verify_password(login, password, None, PEER)
    }

    fn token(&self, owner: &str, scope: &str) -> Result<IssuedToken> {
        self.auth.issue_token(TokenRequest {
            owner: owner.into(),
            scope: scope.into(),
            ..TokenRequest::default()
        })
    }

    fn sign_rsa(&self, key_id: &str) -> Result<Signer> {
        let signature = rsa_sign(Hash::Sha256, SIGNING_STRING);
        self.auth
            .verify_signature(key_id, "rsa-sha256", SIGNING_STRING, &signature, PEER)
    }

    fn outcomes(&self, action: &str) -> Result<Vec<String>> {
        let entries = self.auth.list_audit(1000)?;
        Ok(entries
            .into_iter()
            .filter(|entry| entry.action == action)
            .map(|entry| entry.outcome)
            .collect())
    }
}

// Realms.

#[test]
fn a_new_site_has_the_default_realm() -> Result {
    let site = site();
    let again = Auth::new(
        site.db.clone(),
        AuthSettings::fast_hashing_for_tests(),
        site.clock.clone(),
    )?;
    let realms = again.list_realms()?;
    assert_eq!(realms.len(), 1);
    assert_eq!(
        (realms[0].name.as_str(), realms[0].is_default),
        ("default", true)
    );
    Ok(())
}

#[test]
fn a_realm_added_as_default_receives_new_accounts() -> Result {
    let site = site();
    site.auth.add_realm("staff", "Staff", true)?;
    let realms = site.auth.list_realms()?;
    let defaults: Vec<&str> = realms
        .iter()
        .filter(|realm| realm.is_default)
        .map(|realm| realm.name.as_str())
        .collect();
    assert_eq!(defaults, ["staff"]);
    assert_eq!(site.account("alice")?.realm, "staff");
    Ok(())
}

#[test]
fn a_realm_name_is_added_once() -> Result {
    let site = site();
    site.auth.add_realm("lab", "", false)?;
    assert!(matches!(
        site.auth.add_realm("lab", "", false),
        Err(AuthError::Conflict(_))
    ));
    assert!(matches!(
        site.auth.add_realm("la b", "", false),
        Err(AuthError::Invalid(_))
    ));
    Ok(())
}

// Accounts.

#[test]
fn a_created_account_reads_back_by_login_and_by_id() -> Result {
    let site = site();
    let created = site.auth.create_account(NewAccount {
        login: "alice".into(),
        email: "alice@example.com".into(),
        first_name: Some("Alice".into()),
        company: Some("".into()),
        admin: true,
        ..NewAccount::default()
    })?;
    assert_eq!(created.realm, "default");
    assert_eq!(created.first_name.as_deref(), Some("Alice"));
    assert_eq!(created.company, None);
    assert_eq!((created.created, created.updated), (START, START));
    assert!(created.admin && !created.disabled && created.parent.is_none());
    assert_eq!(site.auth.get_account("alice")?, Some(created.clone()));
    assert_eq!(site.auth.get_account_by_id(&created.id)?, Some(created));
    assert_eq!(site.auth.get_account("bob")?, None);
    Ok(())
}

#[test]
fn logins_must_match_the_pattern() {
    let site = site();
    let long = format!("a{}", "b".repeat(64));
    for login in [
        "",
        "a",
        "1alice",
        "_alice",
        "al ice",
        "alice!",
        long.as_str(),
    ] {
        assert!(
            matches!(site.account(login), Err(AuthError::Invalid(_))),
            "{login:?}"
        );
    }
    for (i, login) in ["ab", "alice.smith@corp-1", "A_b"].into_iter().enumerate() {
        let created = site.auth.create_account(NewAccount {
            login: login.into(),
            email: format!("user{i}@example.com"),
            ..NewAccount::default()
        });
        assert!(created.is_ok(), "{login:?}");
    }
}

#[test]
fn a_taken_login_is_a_conflict() -> Result {
    let site = site();
    site.account("alice")?;
    let again = site.auth.create_account(NewAccount {
        login: "alice".into(),
        email: "other@example.com".into(),
        ..NewAccount::default()
    });
    assert!(matches!(again, Err(AuthError::Conflict(what)) if what.contains("login")));
    Ok(())
}

#[test]
fn a_taken_email_is_a_conflict_whatever_its_case() -> Result {
    let site = site();
    site.account("alice")?;
    let again = site.auth.create_account(NewAccount {
        login: "alice2".into(),
        email: "ALICE@Example.com".into(),
        ..NewAccount::default()
    });
    assert_eq!(again, Err(AuthError::Conflict("email".into())));
    Ok(())
}

#[test]
fn a_login_spelt_like_another_accounts_email_is_a_conflict() -> Result {
    let site = site();
    site.account("alice")?;
    let lookalike = site.auth.create_account(NewAccount {
        login: "alice@example.com".into(),
        email: "mallory@example.com".into(),
        ..NewAccount::default()
    });
    assert!(matches!(lookalike, Err(AuthError::Conflict(_))));
    Ok(())
}

#[test]
fn sub_user_logins_are_unique_within_their_parent() -> Result {
    let site = site();
    site.account("alice")?;
    site.account("carol")?;
    site.sub_user("alice", "bob")?;
    site.sub_user("carol", "bob")?;
    site.account("bob")?;
    assert!(matches!(
        site.sub_user("alice", "bob"),
        Err(AuthError::Conflict(_))
    ));
    Ok(())
}

#[test]
fn sub_users_are_addressed_as_parent_slash_login() -> Result {
    let site = site();
    let alice = site.account("alice")?;
    let bob = site.sub_user("alice", "bob")?;
    assert_eq!(bob.parent.as_deref(), Some("alice"));
    assert_eq!(bob.realm, alice.realm);
    assert_eq!(site.auth.get_account("alice/bob")?, Some(bob.clone()));
    assert_eq!(site.auth.get_account("bob")?, None);
    assert_eq!(site.auth.list_accounts(None, Some("alice"))?, [bob]);
    assert_eq!(site.auth.list_accounts(None, None)?, [alice]);
    Ok(())
}

#[test]
fn a_sub_user_needs_an_existing_top_level_parent_in_its_realm() -> Result {
    let site = site();
    site.account("alice")?;
    site.sub_user("alice", "bob")?;
    assert!(matches!(
        site.sub_user("nobody", "bob"),
        Err(AuthError::NotFound(_))
    ));
    assert!(matches!(
        site.sub_user("alice/bob", "eve"),
        Err(AuthError::Invalid(_))
    ));
    site.auth.add_realm("lab", "", false)?;
    let elsewhere = site.auth.create_account(NewAccount {
        login: "eve".into(),
        email: "eve@example.com".into(),
        realm: Some("lab".into()),
        parent: Some("alice".into()),
        ..NewAccount::default()
    });
    assert!(matches!(elsewhere, Err(AuthError::Invalid(_))));
    Ok(())
}

#[test]
fn accounts_are_listed_by_realm() -> Result {
    let site = site();
    site.auth.add_realm("lab", "", false)?;
    site.account("alice")?;
    site.auth.create_account(NewAccount {
        login: "zed".into(),
        email: "zed@example.com".into(),
        realm: Some("lab".into()),
        ..NewAccount::default()
    })?;
    let logins = |realm| -> Result<Vec<String>> {
        let found = site.auth.list_accounts(realm, None)?;
        Ok(found.into_iter().map(|account| account.login).collect())
    };
    assert_eq!(logins(Some("lab"))?, ["zed"]);
    assert_eq!(logins(None)?, ["alice", "zed"]);
    assert!(matches!(
        site.auth.create_account(NewAccount {
            login: "yann".into(),
            email: "yann@example.com".into(),
            realm: Some("nowhere".into()),
            ..NewAccount::default()
        }),
        Err(AuthError::NotFound(_))
    ));
    Ok(())
}

#[test]
fn an_update_changes_the_given_fields_and_clears_empty_ones() -> Result {
    let site = site();
    site.auth.create_account(NewAccount {
        login: "alice".into(),
        email: "alice@example.com".into(),
        phone: Some("+1 555 0100".into()),
        ..NewAccount::default()
    })?;
    site.advance(10);
    let updated = site.auth.update_account(
        "alice",
        AccountUpdate {
            email: Some("alice@corp.example".into()),
            first_name: Some("Alice".into()),
            phone: Some(String::new()),
            ..AccountUpdate::default()
        },
    )?;
    assert_eq!(updated.email, "alice@corp.example");
    assert_eq!(updated.first_name.as_deref(), Some("Alice"));
    assert_eq!(updated.phone, None);
    assert_eq!((updated.created, updated.updated), (START, START + 10_000));
    let entry = &site.auth.list_audit(1)?[0];
    assert_eq!(
        (entry.action.as_str(), entry.detail.as_str()),
        ("account.update", "email, first-name, phone")
    );
    Ok(())
}

#[test]
fn an_update_to_a_taken_email_is_a_conflict() -> Result {
    let site = site();
    site.account("alice")?;
    site.account("bob")?;
    let update = AccountUpdate {
        email: Some("bob@example.com".into()),
        ..AccountUpdate::default()
    };
    assert!(matches!(
        site.auth.update_account("alice", update),
        Err(AuthError::Conflict(_))
    ));
    let same = AccountUpdate {
        email: Some("ALICE@example.com".into()),
        ..AccountUpdate::default()
    };
    assert_eq!(
        site.auth.update_account("alice", same)?.email,
        "ALICE@example.com"
    );
    Ok(())
}

#[test]
fn a_new_password_replaces_the_old_one() -> Result {
    let site = site();
    site.account("alice")?;
    let update = AccountUpdate {
        password: Some("new secret".into()),
        ..AccountUpdate::default()
    };
    site.auth.update_account("alice", update)?;
    assert!(site.login("alice", "new secret").is_ok());
    assert_eq!(
        site.login("alice", PASSWORD),
        Err(AuthError::InvalidCredentials)
    );
    Ok(())
}

#[test]
fn a_renamed_sub_user_keeps_its_id_and_keys() -> Result {
    let site = site();
    site.account("alice")?;
    let bob = site.sub_user("alice", "bob")?;
    site.auth.add_key("alice/bob", "laptop", RSA_PUBLIC)?;
    site.advance(5);
    let robert = site.auth.rename_account("alice/bob", "robert")?;
    assert_eq!(
        (robert.id.as_str(), robert.login.as_str()),
        (bob.id.as_str(), "robert")
    );
    assert!(robert.updated > bob.updated);
    assert_eq!(site.auth.get_account("alice/bob")?, None);
    assert_eq!(
        site.auth.get_account("alice/robert")?.map(|a| a.id),
        Some(bob.id)
    );
    assert_eq!(site.auth.list_keys("alice/robert")?.len(), 1);
    let signer = site.sign_rsa(&format!("/alice/users/robert/keys/{RSA_MD5}"))?;
    assert_eq!(signer.account.login, "robert");
    Ok(())
}

#[test]
fn a_rename_to_a_taken_or_malformed_login_is_refused() -> Result {
    let site = site();
    site.account("alice")?;
    site.account("carol")?;
    site.sub_user("alice", "bob")?;
    site.sub_user("alice", "dave")?;
    assert!(matches!(
        site.auth.rename_account("alice/bob", "dave"),
        Err(AuthError::Conflict(_))
    ));
    assert!(matches!(
        site.auth.rename_account("alice", "carol"),
        Err(AuthError::Conflict(_))
    ));
    assert!(matches!(
        site.auth.rename_account("alice/bob", "9bad"),
        Err(AuthError::Invalid(_))
    ));
    assert!(matches!(
        site.auth.rename_account("alice/nobody", "x1"),
        Err(AuthError::NotFound(_))
    ));
    // A sub-user may take a top-level login: logins are unique within their parent.
    assert_eq!(
        site.auth.rename_account("alice/bob", "carol")?.login,
        "carol"
    );
    assert_eq!(
        site.auth.rename_account("alice/carol", "carol")?.login,
        "carol"
    );
    Ok(())
}

#[test]
fn deleting_an_account_removes_its_sub_users_keys_and_tokens() -> Result {
    let site = site();
    site.account("alice")?;
    site.sub_user("alice", "bob")?;
    site.auth.add_key("alice", "laptop", RSA_PUBLIC)?;
    let token = site.token("alice/bob", "ticrypt:drive")?;
    site.auth.delete_account("alice")?;
    assert_eq!(site.auth.get_account("alice")?, None);
    assert_eq!(site.auth.get_account("alice/bob")?, None);
    let remaining: i64 = site.db.with_conn(|conn| {
        Ok::<_, AuthError>(conn.query_row(
            "SELECT (SELECT count(*) FROM auth_keys) + (SELECT count(*) FROM auth_tokens)",
            [],
            |row| row.get(0),
        )?)
    })?;
    assert_eq!(remaining, 0);
    assert_eq!(
        site.auth.check_token(&token.value, "ticrypt:drive", PEER),
        Err(AuthError::InvalidCredentials)
    );
    assert!(matches!(
        site.auth.delete_account("alice"),
        Err(AuthError::NotFound(_))
    ));
    Ok(())
}

#[test]
fn debug_output_hides_passwords_and_token_values() -> Result {
    let site = site();
    site.account("alice")?;
    let new = NewAccount {
        password: Some("hunter2".into()),
        ..NewAccount::default()
    };
    let update = AccountUpdate {
        password: Some("hunter2".into()),
        ..AccountUpdate::default()
    };
    let issued = site.token("alice", "x")?;
    assert!(!format!("{new:?}{update:?}").contains("hunter2"));
    assert!(!format!("{issued:?}").contains(&issued.value));
    Ok(())
}

// Passwords.

#[test]
fn the_right_password_returns_the_account() -> Result {
    let site = site();
    let alice = site.account("alice")?;
    assert_eq!(site.login("alice", PASSWORD)?, alice);
    Ok(())
}

#[test]
fn a_wrong_password_is_invalid_credentials() -> Result {
    let site = site();
    site.account("alice")?;
    assert_eq!(
        site.login("alice", "wrong"),
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(site.login("alice", ""), Err(AuthError::InvalidCredentials));
    Ok(())
}

#[test]
fn an_unknown_login_is_invalid_credentials() {
    let site = site();
    assert_eq!(
        site.login("nobody", PASSWORD),
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(
        site.login("nobody@example.com", PASSWORD),
        Err(AuthError::InvalidCredentials)
    );
}

#[test]
fn an_email_logs_in_whatever_its_case() -> Result {
    let site = site();
    let alice = site.account("alice")?;
    assert_eq!(site.login("Alice@Example.COM", PASSWORD)?, alice);
    Ok(())
}

#[test]
fn a_sub_user_logs_in_as_parent_slash_login() -> Result {
    let site = site();
    site.account("alice")?;
    let bob = site.sub_user("alice", "bob")?;
    assert_eq!(site.login("alice/bob", PASSWORD)?, bob);
    assert_eq!(site.login("bob.alice@example.com", PASSWORD)?, bob);
    Ok(())
}

#[test]
fn a_disabled_account_is_disabled_only_with_the_right_password() -> Result {
    let site = site();
    site.account("alice")?;
    site.disable("alice")?;
    assert_eq!(site.login("alice", PASSWORD), Err(AuthError::Disabled));
    assert_eq!(
        site.login("alice", "wrong"),
        Err(AuthError::InvalidCredentials)
    );
    Ok(())
}

#[test]
fn a_sub_user_of_a_disabled_account_is_disabled() -> Result {
    let site = site();
    site.account("alice")?;
    site.sub_user("alice", "bob")?;
    site.disable("alice")?;
    assert_eq!(site.login("alice/bob", PASSWORD), Err(AuthError::Disabled));
    Ok(())
}

#[test]
fn a_password_check_can_be_held_to_a_realm() -> Result {
    let site = site();
    site.auth.add_realm("lab", "", false)?;
    let alice = site.account("alice")?;
    let check = |realm| {
        site.auth
            .verify_password("alice", PASSWORD, Some(realm), PEER)
    };
    assert_eq!(check("default")?, alice);
    assert_eq!(check("lab"), Err(AuthError::InvalidCredentials));
    Ok(())
}

#[test]
fn an_account_without_a_password_cannot_log_in() -> Result {
    let site = site();
    site.auth.create_account(NewAccount {
        login: "robot".into(),
        email: "robot@example.com".into(),
        ..NewAccount::default()
    })?;
    assert_eq!(site.login("robot", ""), Err(AuthError::InvalidCredentials));
    assert_eq!(
        site.login("robot", "anything"),
        Err(AuthError::InvalidCredentials)
    );
    Ok(())
}

#[test]
fn stored_passwords_are_argon2id_hashes() -> Result {
    let site = site();
    site.account("alice")?;
    let hash: String = site.db.with_conn(|conn| {
        Ok::<_, AuthError>(conn.query_row(
            "SELECT password_hash FROM auth_accounts WHERE login = 'alice'",
            [],
            |row| row.get(0),
        )?)
    })?;
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD));
    Ok(())
}

// Throttling.

#[test]
fn five_failures_on_an_account_refuse_even_the_right_password() -> Result {
    let site = site();
    site.account("alice")?;
    for i in 0..5 {
        let peer = format!("198.51.100.{i}:1000");
        let failed = site.auth.verify_password("alice", "wrong", None, &peer);
        assert_eq!(failed, Err(AuthError::InvalidCredentials));
    }
    assert_eq!(site.login("alice", PASSWORD), Err(AuthError::Throttled(2)));
    Ok(())
}

#[test]
fn five_failures_from_a_peer_refuse_its_next_attempts_on_any_account() -> Result {
    let site = site();
    site.account("alice")?;
    for i in 0..5 {
        let login = format!("nobody{i}");
        let peer = format!("192.0.2.10:{}", 50_000 + i);
        let failed = site.auth.verify_password(&login, "wrong", None, &peer);
        assert_eq!(failed, Err(AuthError::InvalidCredentials));
    }
    assert_eq!(site.login("alice", PASSWORD), Err(AuthError::Throttled(2)));
    let elsewhere = site
        .auth
        .verify_password("alice", PASSWORD, None, "203.0.113.7:1");
    assert!(elsewhere.is_ok());
    Ok(())
}

#[test]
fn unknown_logins_are_throttled_like_known_ones() {
    let site = site();
    for i in 0..5 {
        let peer = format!("198.51.100.{i}");
        let _ = site.auth.verify_password("nobody", "wrong", None, &peer);
    }
    assert_eq!(
        site.auth
            .verify_password("nobody", "wrong", None, "203.0.113.7"),
        Err(AuthError::Throttled(2))
    );
}

#[test]
fn the_throttle_lifts_after_the_pause() -> Result {
    let site = site();
    site.account("alice")?;
    for _ in 0..5 {
        let _ = site.login("alice", "wrong");
    }
    site.clock.advance(Duration::from_millis(1500));
    assert_eq!(site.login("alice", PASSWORD), Err(AuthError::Throttled(1)));
    site.clock.advance(Duration::from_millis(500));
    assert!(site.login("alice", PASSWORD).is_ok());
    Ok(())
}

#[test]
fn the_failure_count_resets_after_the_window() -> Result {
    let site = site();
    site.account("alice")?;
    for _ in 0..4 {
        let _ = site.login("alice", "wrong");
    }
    site.advance(61);
    for _ in 0..4 {
        let _ = site.login("alice", "wrong");
    }
    assert!(site.login("alice", PASSWORD).is_ok());
    Ok(())
}

#[test]
fn throttled_attempts_are_audited() -> Result {
    let site = site();
    site.account("alice")?;
    for _ in 0..5 {
        let _ = site.login("alice", "wrong");
    }
    let _ = site.login("alice", PASSWORD);
    let outcomes = site.outcomes("auth.password")?;
    assert_eq!(outcomes[0], "throttled");
    assert_eq!(outcomes[1..], ["invalid-credentials"; 5]);
    Ok(())
}

#[test]
fn thresholds_come_from_the_settings() -> Result {
    let site = site_with(AuthSettings {
        max_failures: 2,
        throttle_pause_secs: 30,
        ..AuthSettings::fast_hashing_for_tests()
    });
    site.account("alice")?;
    let _ = site.login("alice", "wrong");
    let _ = site.login("alice", "wrong");
    assert_eq!(site.login("alice", PASSWORD), Err(AuthError::Throttled(30)));
    Ok(())
}

#[test]
fn kernels_sharing_a_database_share_failure_counts() -> Result {
    let site = site();
    site.account("alice")?;
    let other = Auth::new(
        site.db.clone(),
        AuthSettings::fast_hashing_for_tests(),
        site.clock.clone(),
    )?;
    for i in 0..5 {
        let kernel = if i % 2 == 0 { &site.auth } else { &other };
        let _ = kernel.verify_password("alice", "wrong", None, PEER);
    }
    assert_eq!(site.login("alice", PASSWORD), Err(AuthError::Throttled(2)));
    Ok(())
}

// SSH keys.

#[test]
fn an_added_key_carries_both_fingerprints_and_its_owner() -> Result {
    let site = site();
    site.account("alice")?;
    let key = site.auth.add_key("alice", "laptop", RSA_PUBLIC)?;
    assert_eq!(key.name, "laptop");
    assert_eq!(key.key, RSA_PUBLIC.trim());
    assert_eq!(key.fingerprint_md5, RSA_MD5);
    assert_eq!(key.fingerprint_sha256, RSA_SHA256);
    assert_eq!((key.owner.as_str(), key.created), ("alice", START));
    assert_eq!(site.auth.list_keys("alice")?, [key]);
    Ok(())
}

#[test]
fn a_key_without_a_name_is_named_by_its_md5_fingerprint() -> Result {
    let site = site();
    site.account("alice")?;
    assert_eq!(site.auth.add_key("alice", "", RSA_PUBLIC)?.name, RSA_MD5);
    Ok(())
}

#[test]
fn a_key_is_found_by_name_or_either_fingerprint() -> Result {
    let site = site();
    site.account("alice")?;
    let key = site.auth.add_key("alice", "laptop", RSA_PUBLIC)?;
    site.auth.add_key("alice", "other", ED25519_PUBLIC)?;
    for lookup in [
        "laptop",
        RSA_MD5,
        RSA_SHA256,
        &format!("MD5:{}", RSA_MD5.to_uppercase()),
    ] {
        assert_eq!(
            site.auth.get_key("alice", lookup)?,
            Some(key.clone()),
            "{lookup}"
        );
    }
    assert_eq!(site.auth.get_key("alice", "missing")?, None);
    Ok(())
}

#[test]
fn a_repeated_key_name_or_key_is_a_conflict() -> Result {
    let site = site();
    site.account("alice")?;
    site.auth.add_key("alice", "laptop", RSA_PUBLIC)?;
    let same_name = site.auth.add_key("alice", "laptop", ED25519_PUBLIC);
    assert!(matches!(same_name, Err(AuthError::Conflict(_))));
    let same_key = site.auth.add_key("alice", "desktop", RSA_PUBLIC);
    assert!(matches!(same_key, Err(AuthError::Conflict(_))));
    site.account("carol")?;
    assert!(site.auth.add_key("carol", "laptop", RSA_PUBLIC).is_ok());
    Ok(())
}

#[test]
fn a_key_is_deleted_by_fingerprint() -> Result {
    let site = site();
    site.account("alice")?;
    site.auth.add_key("alice", "laptop", RSA_PUBLIC)?;
    site.auth.delete_key("alice", RSA_SHA256)?;
    assert_eq!(site.auth.list_keys("alice")?, []);
    assert!(matches!(
        site.auth.delete_key("alice", "laptop"),
        Err(AuthError::NotFound(_))
    ));
    Ok(())
}

#[test]
fn an_unusable_key_is_invalid() -> Result {
    let site = site();
    site.account("alice")?;
    let garbage = site.auth.add_key("alice", "bad", "ssh-rsa not-base64");
    assert!(matches!(garbage, Err(AuthError::Invalid(_))));
    let control = site.auth.add_key("alice", "bad\nname", RSA_PUBLIC);
    assert!(matches!(control, Err(AuthError::Invalid(_))));
    Ok(())
}

#[test]
fn sub_users_have_keys_of_their_own() -> Result {
    let site = site();
    site.account("alice")?;
    site.sub_user("alice", "bob")?;
    let key = site.auth.add_key("alice/bob", "bob-key", RSA_PUBLIC)?;
    assert_eq!(key.owner, "alice/bob");
    assert_eq!(site.auth.list_keys("alice")?, []);
    assert_eq!(site.auth.list_keys("alice/bob")?, [key]);
    Ok(())
}

// Signatures.

#[test]
fn a_valid_signature_names_the_account_and_key() -> Result {
    let site = site();
    let alice = site.account("alice")?;
    let key = site.auth.add_key("alice", "laptop", RSA_PUBLIC)?;
    let signer = site.sign_rsa(&format!("/alice/keys/{RSA_MD5}"))?;
    assert_eq!(
        signer,
        Signer {
            account: alice,
            key
        }
    );
    Ok(())
}

#[test]
fn a_key_id_may_name_the_sha256_fingerprint_or_the_key_name() -> Result {
    let site = site();
    site.account("alice")?;
    site.auth.add_key("alice", "id_rsa", RSA_PUBLIC)?;
    assert!(site.sign_rsa(&format!("/alice/keys/{RSA_SHA256}")).is_ok());
    assert!(site.sign_rsa("/alice/keys/id_rsa").is_ok());
    Ok(())
}

#[test]
fn a_sub_user_key_id_verifies_as_the_sub_user() -> Result {
    let site = site();
    site.account("alice")?;
    let bob = site.sub_user("alice", "bob")?;
    site.auth.add_key("alice/bob", "bob-key", RSA_PUBLIC)?;
    let signer = site.sign_rsa(&format!("/alice/users/bob/keys/{RSA_MD5}"))?;
    assert_eq!(signer.account, bob);
    assert_eq!(signer.key.owner, "alice/bob");
    // The parent's key id does not reach the sub-user's key.
    let parent = site.sign_rsa(&format!("/alice/keys/{RSA_MD5}"));
    assert_eq!(parent, Err(AuthError::InvalidCredentials));
    Ok(())
}

#[test]
fn an_ed25519_signature_verifies_under_the_name_triton_sends() -> Result {
    let site = site();
    site.account("alice")?;
    let key = site.auth.add_key("alice", "ed", ED25519_PUBLIC)?;
    let signature = ed25519_sign(SIGNING_STRING);
    let key_id = format!("/alice/keys/{}", key.fingerprint_md5);
    let signer =
        site.auth
            .verify_signature(&key_id, "ed25519-sha512", SIGNING_STRING, &signature, PEER)?;
    assert_eq!(signer.key, key);
    Ok(())
}

#[test]
fn an_ecdsa_signature_from_a_node_client_verifies() -> Result {
    let site = site();
    site.account("alice")?;
    let key = site.auth.add_key("alice", "p256", P256_PUBLIC)?;
    let key_id = format!("/alice/keys/{}", key.fingerprint_md5);
    let signature = p256_sign(SIGNING_STRING);
    let signer =
        site.auth
            .verify_signature(&key_id, "ecdsa-sha256", SIGNING_STRING, &signature, PEER)?;
    assert_eq!(signer.key, key);
    Ok(())
}

#[test]
fn a_tampered_signing_string_is_invalid_credentials() -> Result {
    let site = site();
    site.account("alice")?;
    site.auth.add_key("alice", "laptop", RSA_PUBLIC)?;
    let signature = rsa_sign(Hash::Sha256, SIGNING_STRING);
    let key_id = format!("/alice/keys/{RSA_MD5}");
    let tampered = b"date: Fri, 02 Jan 2026 00:00:00 GMT";
    let result = site
        .auth
        .verify_signature(&key_id, "rsa-sha256", tampered, &signature, PEER);
    assert_eq!(result, Err(AuthError::InvalidCredentials));
    assert_eq!(site.outcomes("auth.signature")?, ["invalid-credentials"]);
    Ok(())
}

#[test]
fn an_algorithm_unfit_for_the_key_is_invalid_credentials_and_an_unknown_one_invalid() -> Result {
    let site = site();
    site.account("alice")?;
    site.auth.add_key("alice", "laptop", RSA_PUBLIC)?;
    let signature = rsa_sign(Hash::Sha256, SIGNING_STRING);
    let key_id = format!("/alice/keys/{RSA_MD5}");
    let verify = |algorithm| {
        site.auth
            .verify_signature(&key_id, algorithm, SIGNING_STRING, &signature, PEER)
    };
    assert_eq!(verify("ecdsa-sha256"), Err(AuthError::InvalidCredentials));
    assert!(matches!(verify("hmac-sha256"), Err(AuthError::Invalid(_))));
    Ok(())
}

#[test]
fn an_unknown_key_or_account_is_invalid_credentials() -> Result {
    let site = site();
    site.account("alice")?;
    site.auth.add_key("alice", "p256", P256_PUBLIC)?;
    assert_eq!(
        site.sign_rsa(&format!("/alice/keys/{RSA_MD5}")),
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(
        site.sign_rsa(&format!("/nobody/keys/{RSA_MD5}")),
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(site.outcomes("auth.signature")?, ["unknown", "unknown"]);
    assert!(matches!(
        site.sign_rsa("alice/machines"),
        Err(AuthError::Invalid(_))
    ));
    Ok(())
}

#[test]
fn a_disabled_account_cannot_sign() -> Result {
    let site = site();
    site.account("alice")?;
    site.sub_user("alice", "bob")?;
    site.auth.add_key("alice/bob", "k", RSA_PUBLIC)?;
    site.disable("alice")?;
    let result = site.sign_rsa(&format!("/alice/users/bob/keys/{RSA_MD5}"));
    assert_eq!(result, Err(AuthError::Disabled));
    Ok(())
}

#[test]
fn bad_signatures_count_towards_the_throttle() -> Result {
    let site = site();
    site.account("alice")?;
    site.auth.add_key("alice", "laptop", RSA_PUBLIC)?;
    let key_id = format!("/alice/keys/{RSA_MD5}");
    for _ in 0..5 {
        let bad =
            site.auth
                .verify_signature(&key_id, "rsa-sha256", SIGNING_STRING, &[0; 256], PEER);
        assert_eq!(bad, Err(AuthError::InvalidCredentials));
    }
    assert_eq!(site.sign_rsa(&key_id), Err(AuthError::Throttled(2)));
    Ok(())
}

// Tokens.

#[test]
fn an_issued_token_checks_for_its_scope_and_names_its_owner() -> Result {
    let site = site();
    let alice = site.account("alice")?;
    let issued = site.auth.issue_token(TokenRequest {
        owner: "alice".into(),
        scope: "ticrypt:drive".into(),
        binding: Some("drive-7".into()),
        ttl_seconds: Some(3600),
        description: Some("upload".into()),
        ..TokenRequest::default()
    })?;
    assert_eq!(issued.expires_at, Some(START + 3_600_000));
    let claims = site
        .auth
        .check_token(&issued.value, "ticrypt:drive", PEER)?;
    assert_eq!(
        claims,
        TokenClaims {
            id: issued.id,
            owner: alice,
            scope: "ticrypt:drive".into(),
            binding: Some("drive-7".into()),
            expires_at: Some(START + 3_600_000),
            description: Some("upload".into()),
        }
    );
    Ok(())
}

#[test]
fn every_format_is_issued_and_checked() -> Result {
    let site = site();
    site.account("alice")?;
    for format in [
        TokenFormat::Opaque,
        TokenFormat::IdUuid,
        TokenFormat::Alnum32,
    ] {
        let issued = site.auth.issue_token(TokenRequest {
            owner: "alice".into(),
            scope: "s".into(),
            format,
            ..TokenRequest::default()
        })?;
        let expected_len = match format {
            TokenFormat::Opaque => 43,
            TokenFormat::IdUuid => issued.id.len() + 37,
            TokenFormat::Alnum32 => 32,
        };
        assert_eq!(issued.value.len(), expected_len, "{format:?}");
        assert!(
            site.auth.check_token(&issued.value, "s", PEER).is_ok(),
            "{format:?}"
        );
    }
    Ok(())
}

#[test]
fn an_id_uuid_token_starts_with_its_id() -> Result {
    let site = site();
    site.account("alice")?;
    let issued = site.auth.issue_token(TokenRequest {
        owner: "alice".into(),
        scope: "vmmanager:session".into(),
        format: TokenFormat::IdUuid,
        ..TokenRequest::default()
    })?;
    assert!(issued.value.starts_with(&format!("{}-", issued.id)));
    Ok(())
}

#[test]
fn only_the_sha256_of_a_token_is_stored() -> Result {
    let site = site();
    site.account("alice")?;
    let issued = site.token("alice", "s")?;
    let (hash, row): (Vec<u8>, String) = site.db.with_conn(|conn| {
        Ok::<_, AuthError>(conn.query_row(
            "SELECT hash, id || scope || coalesce(binding, '') || coalesce(description, '') \
             FROM auth_tokens",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?)
    })?;
    assert_eq!(hash, sha256(issued.value.as_bytes()));
    assert!(!row.contains(&issued.value));
    Ok(())
}

#[test]
fn a_token_past_its_absolute_expiry_is_refused() -> Result {
    let site = site();
    site.account("alice")?;
    let issued = site.auth.issue_token(TokenRequest {
        owner: "alice".into(),
        scope: "s".into(),
        ttl_seconds: Some(60),
        ..TokenRequest::default()
    })?;
    site.advance(59);
    assert!(site.auth.check_token(&issued.value, "s", PEER).is_ok());
    site.advance(1);
    assert_eq!(
        site.auth.check_token(&issued.value, "s", PEER),
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(site.outcomes("auth.token")?, ["expired"]);
    Ok(())
}

#[test]
fn the_idle_expiry_slides_on_each_successful_check() -> Result {
    let site = site();
    site.account("alice")?;
    let issued = site.auth.issue_token(TokenRequest {
        owner: "alice".into(),
        scope: "vmmanager:session".into(),
        idle_ttl_seconds: Some(60),
        ..TokenRequest::default()
    })?;
    assert_eq!(issued.expires_at, Some(START + 60_000));
    site.advance(50);
    let claims = site
        .auth
        .check_token(&issued.value, "vmmanager:session", PEER)?;
    assert_eq!(claims.expires_at, Some(START + 110_000));
    site.advance(50);
    assert!(
        site.auth
            .check_token(&issued.value, "vmmanager:session", PEER)
            .is_ok()
    );
    site.advance(60);
    assert_eq!(
        site.auth
            .check_token(&issued.value, "vmmanager:session", PEER),
        Err(AuthError::InvalidCredentials)
    );
    Ok(())
}

#[test]
fn the_claimed_expiry_is_the_earlier_of_absolute_and_idle() -> Result {
    let site = site();
    site.account("alice")?;
    let issued = site.auth.issue_token(TokenRequest {
        owner: "alice".into(),
        scope: "s".into(),
        ttl_seconds: Some(100),
        idle_ttl_seconds: Some(60),
        ..TokenRequest::default()
    })?;
    site.advance(50);
    let claims = site.auth.check_token(&issued.value, "s", PEER)?;
    assert_eq!(claims.expires_at, Some(START + 100_000));
    Ok(())
}

#[test]
fn a_scope_idle_ttl_applies_to_tokens_issued_after_it() -> Result {
    let site = site();
    site.account("alice")?;
    let before = site.token("alice", "vmmanager:session")?;
    site.auth.set_idle_ttl("vmmanager:session", 3600)?;
    let after = site.token("alice", "vmmanager:session")?;
    let other = site.token("alice", "ticrypt:drive")?;
    assert_eq!(before.expires_at, None);
    assert_eq!(after.expires_at, Some(START + 3_600_000));
    assert_eq!(other.expires_at, None);
    site.auth.set_idle_ttl("vmmanager:session", 0)?;
    assert_eq!(site.token("alice", "vmmanager:session")?.expires_at, None);
    Ok(())
}

#[test]
fn a_revoked_token_is_refused() -> Result {
    let site = site();
    site.account("alice")?;
    let issued = site.token("alice", "s")?;
    site.auth.revoke_token(&issued.id)?;
    site.auth.revoke_token(&issued.id)?;
    assert_eq!(
        site.auth.check_token(&issued.value, "s", PEER),
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(site.outcomes("auth.token")?, ["revoked"]);
    assert_eq!(site.outcomes("token.revoke")?, ["ok"]);
    assert!(matches!(
        site.auth.revoke_token("999"),
        Err(AuthError::NotFound(_))
    ));
    assert!(matches!(
        site.auth.revoke_token("abc"),
        Err(AuthError::Invalid(_))
    ));
    Ok(())
}

#[test]
fn purge_removes_expired_and_revoked_tokens_only() -> Result {
    let site = site();
    site.account("alice")?;
    let request = |ttl, idle| TokenRequest {
        owner: "alice".into(),
        scope: "s".into(),
        ttl_seconds: ttl,
        idle_ttl_seconds: idle,
        ..TokenRequest::default()
    };
    site.auth.issue_token(request(Some(10), None))?;
    site.auth.issue_token(request(None, Some(10)))?;
    let revoked = site.auth.issue_token(request(None, None))?;
    let live = site.auth.issue_token(request(Some(3600), Some(3600)))?;
    site.auth.revoke_token(&revoked.id)?;
    site.advance(10);
    assert_eq!(site.auth.purge_expired()?, 3);
    let left: Vec<String> = site
        .auth
        .list_tokens("alice")?
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(left, [live.id]);
    assert_eq!(site.auth.purge_expired()?, 0);
    Ok(())
}

#[test]
fn a_one_use_key_is_consumed_by_its_first_check() -> Result {
    let site = site();
    site.account("alice")?;
    let key = site.auth.issue_token(TokenRequest {
        owner: "alice".into(),
        scope: "vmmanager:key".into(),
        ttl_seconds: Some(3600),
        format: TokenFormat::IdUuid,
        one_use: true,
        ..TokenRequest::default()
    })?;
    assert_eq!(
        site.auth.check_token(&key.value, "vmmanager:session", PEER),
        Err(AuthError::InvalidCredentials)
    );
    assert!(
        site.auth
            .check_token(&key.value, "vmmanager:key", PEER)
            .is_ok()
    );
    assert_eq!(
        site.auth.check_token(&key.value, "vmmanager:key", PEER),
        Err(AuthError::InvalidCredentials)
    );
    Ok(())
}

#[test]
fn a_one_use_key_checked_at_once_from_many_threads_succeeds_once() -> Result {
    let site = site();
    site.account("alice")?;
    let key = site.auth.issue_token(TokenRequest {
        owner: "alice".into(),
        scope: "vmmanager:key".into(),
        one_use: true,
        ..TokenRequest::default()
    })?;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let auth = site.auth.clone();
            let value = key.value.clone();
            std::thread::spawn(move || auth.check_token(&value, "vmmanager:key", "").is_ok())
        })
        .collect();
    let successes = threads
        .into_iter()
        .map(|thread| thread.join().unwrap_or(false))
        .filter(|ok| *ok)
        .count();
    assert_eq!(successes, 1);
    Ok(())
}

#[test]
fn a_trailing_star_matches_a_scope_prefix() -> Result {
    let site = site();
    site.account("alice")?;
    let issued = site.token("alice", "ticrypt:drive")?;
    assert!(
        site.auth
            .check_token(&issued.value, "ticrypt:*", PEER)
            .is_ok()
    );
    assert!(site.auth.check_token(&issued.value, "*", PEER).is_ok());
    assert_eq!(
        site.auth.check_token(&issued.value, "vmmanager:*", PEER),
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(
        site.auth.check_token(&issued.value, "ticrypt:vm", PEER),
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(site.outcomes("auth.token")?, ["wrong-scope", "wrong-scope"]);
    assert!(matches!(
        site.auth.check_token(&issued.value, "ticrypt:*:x", PEER),
        Err(AuthError::Invalid(_))
    ));
    Ok(())
}

#[test]
fn a_disabled_owner_makes_its_tokens_disabled() -> Result {
    let site = site();
    site.account("alice")?;
    let issued = site.token("alice", "s")?;
    site.disable("alice")?;
    assert_eq!(
        site.auth.check_token(&issued.value, "s", PEER),
        Err(AuthError::Disabled)
    );
    assert_eq!(site.token("alice", "s"), Err(AuthError::Disabled));
    Ok(())
}

#[test]
fn a_token_listing_shows_no_values() -> Result {
    let site = site();
    site.account("alice")?;
    site.sub_user("alice", "bob")?;
    let issued = site.auth.issue_token(TokenRequest {
        owner: "alice/bob".into(),
        scope: "s".into(),
        idle_ttl_seconds: Some(60),
        description: Some("cli".into()),
        ..TokenRequest::default()
    })?;
    let listed = site.auth.list_tokens("alice/bob")?;
    assert_eq!(
        listed,
        [TokenInfo {
            id: issued.id,
            owner: "alice/bob".into(),
            scope: "s".into(),
            binding: None,
            description: Some("cli".into()),
            one_use: false,
            created: START,
            expires_at: None,
            idle_ttl_seconds: Some(60),
            idle_expires_at: Some(START + 60_000),
            last_used: None,
            revoked: false,
        }]
    );
    assert!(!format!("{listed:?}").contains(&issued.value));
    Ok(())
}

#[test]
fn unknown_tokens_count_towards_the_peer_throttle() -> Result {
    let site = site();
    site.account("alice")?;
    let issued = site.token("alice", "s")?;
    for i in 0..5 {
        let peer = format!("192.0.2.10:{i}");
        let unknown = site.auth.check_token("not-a-token", "s", &peer);
        assert_eq!(unknown, Err(AuthError::InvalidCredentials));
    }
    assert_eq!(
        site.auth.check_token(&issued.value, "s", PEER),
        Err(AuthError::Throttled(2))
    );
    assert!(
        site.auth
            .check_token(&issued.value, "s", "203.0.113.1")
            .is_ok()
    );
    Ok(())
}

#[test]
fn expired_tokens_do_not_count_towards_the_throttle() -> Result {
    let site = site();
    site.account("alice")?;
    let expired = site.auth.issue_token(TokenRequest {
        owner: "alice".into(),
        scope: "s".into(),
        ttl_seconds: Some(1),
        ..TokenRequest::default()
    })?;
    let live = site.token("alice", "s")?;
    site.advance(1);
    for _ in 0..10 {
        let _ = site.auth.check_token(&expired.value, "s", PEER);
    }
    assert!(site.auth.check_token(&live.value, "s", PEER).is_ok());
    Ok(())
}

#[test]
fn token_requests_are_validated() -> Result {
    let site = site();
    site.account("alice")?;
    let request = |scope: &str, ttl| TokenRequest {
        owner: "alice".into(),
        scope: scope.into(),
        ttl_seconds: ttl,
        ..TokenRequest::default()
    };
    let invalid = |result: Result<IssuedToken>| matches!(result, Err(AuthError::Invalid(_)));
    assert!(invalid(site.auth.issue_token(request("", None))));
    assert!(invalid(site.auth.issue_token(request("ticrypt:*", None))));
    assert!(invalid(site.auth.issue_token(request("s", Some(0)))));
    assert!(matches!(
        site.auth.issue_token(TokenRequest {
            owner: "nobody".into(),
            ..request("s", None)
        }),
        Err(AuthError::NotFound(_))
    ));
    Ok(())
}

// Audit.

#[test]
fn changes_are_audited_with_actor_and_peer() -> Result {
    let site = site();
    let plugin = site.auth.with_origin("plugin:cloudapi", "198.51.100.4:443");
    plugin.create_account(NewAccount {
        login: "alice".into(),
        email: "alice@example.com".into(),
        ..NewAccount::default()
    })?;
    let entry = &site.auth.list_audit(1)?[0];
    assert_eq!(entry.actor, "plugin:cloudapi");
    assert_eq!(entry.action, "account.create");
    assert_eq!(entry.subject, "alice");
    assert_eq!(entry.peer, "198.51.100.4:443");
    assert_eq!(entry.outcome, "ok");
    assert_eq!(entry.at, START);
    Ok(())
}

#[test]
fn every_change_to_identities_keys_and_tokens_is_audited() -> Result {
    let site = site();
    site.auth.add_realm("lab", "", false)?;
    site.account("alice")?;
    site.disable("alice")?;
    site.auth.update_account(
        "alice",
        AccountUpdate {
            disabled: Some(false),
            ..AccountUpdate::default()
        },
    )?;
    site.auth.add_key("alice", "k", RSA_PUBLIC)?;
    site.auth.delete_key("alice", "k")?;
    let issued = site.token("alice", "s")?;
    site.auth.revoke_token(&issued.id)?;
    site.auth.set_idle_ttl("s", 60)?;
    site.auth.purge_expired()?;
    site.auth.delete_account("alice")?;
    let mut actions: Vec<String> = site
        .auth
        .list_audit(100)?
        .into_iter()
        .map(|entry| entry.action)
        .collect();
    actions.reverse();
    assert_eq!(
        actions,
        [
            "realm.add",
            "account.create",
            "account.update",
            "account.update",
            "key.add",
            "key.delete",
            "token.issue",
            "token.revoke",
            "scope.idle-ttl",
            "token.purge",
            "account.delete",
        ]
    );
    Ok(())
}

#[test]
fn the_audit_trail_never_holds_a_secret() -> Result {
    let site = site();
    site.account("alice")?;
    let issued = site.token("alice", "s")?;
    let _ = site.login("alice", "hunter2-is-wrong");
    site.auth.check_token(&issued.value, "s", PEER)?;
    let _ = site
        .auth
        .check_token(&format!("{}x", issued.value), "s", PEER);
    let trail = format!("{:?}", site.auth.list_audit(100)?);
    assert!(!trail.contains("hunter2-is-wrong"));
    assert!(!trail.contains(PASSWORD));
    assert!(!trail.contains(&issued.value));
    Ok(())
}

#[test]
fn list_audit_gives_the_newest_entries_first() -> Result {
    let site = site();
    for login in ["ann", "ben", "cat"] {
        site.account(login)?;
        site.advance(1);
    }
    let subjects: Vec<String> = site
        .auth
        .list_audit(2)?
        .into_iter()
        .map(|entry| entry.subject)
        .collect();
    assert_eq!(subjects, ["cat", "ben"]);
    Ok(())
}

#[test]
fn seal_keeps_its_key_in_the_data_dir_and_binds_the_plugin() -> Result {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = Database::open(&dir.path().join("tessera.db")).expect("a database opens");
    let auth = Auth::new(
        db,
        AuthSettings::fast_hashing_for_tests(),
        Arc::new(ManualClock::new(START)),
    )?;
    assert!(
        !dir.path().join(SEAL_KEY_FILE).exists(),
        "made on first use"
    );
    let sealed = auth.seal("fosscloud", b"vnc-password")?;
    assert!(dir.path().join(SEAL_KEY_FILE).exists());
    assert_eq!(auth.unseal("fosscloud", &sealed)?, b"vnc-password");
    assert_eq!(
        auth.unseal("ticrypt", &sealed),
        Err(AuthError::InvalidCredentials)
    );
    Ok(())
}
