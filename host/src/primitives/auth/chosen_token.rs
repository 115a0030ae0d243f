//! Tokens whose value the holder chose (the appliance admin API's token):
//! stored, like every token, only as their SHA-256; possession is proved by
//! the value itself or by an HMAC keyed with the hex of that hash.

use super::audit::{Action, Outcome};
use super::store::{StoredToken, Tx};
use super::{
    Attempt, Auth, AuthError, LoginRef, check_scope, constant_time_eq, existing, hmac_sha256,
    invalid, throttle, tokens,
};

impl Auth {
    /// Replaces the live tokens of `owner` for `scope` with one of value `value`.
    pub fn set_chosen_token(&self, owner: &str, scope: &str, value: &str) -> Result<(), AuthError> {
        let owner = LoginRef::parse(owner)?;
        check_scope(scope, false)?;
        if value.is_empty() || value.len() > tokens::MAX_TOKEN_BYTES {
            return Err(invalid("token: 1 to 512 bytes"));
        }
        let now = self.now();
        self.write(|tx| {
            let account = existing(tx, owner)?;
            let mut replaced = 0;
            for token in tx.tokens(&account.account.id)? {
                if token.scope == scope && token.revoked_at.is_none() {
                    tx.revoke_token(token.id, now)?;
                    replaced += 1;
                }
            }
            // Revoked rows still hold their hash; a value chosen again must not
            // collide with its own revoked predecessor.
            tx.purge_tokens(now)?;
            let hash = tokens::hash(value);
            if tx.token_by_hash(&hash)?.is_some() {
                return Err(AuthError::Conflict("token value".into()));
            }
            let id = tx.next_token_id()?;
            tx.insert_token(&StoredToken {
                id,
                hash,
                account_id: account.account.id.clone(),
                scope: scope.to_owned(),
                binding: None,
                description: Some("chosen by its holder".into()),
                one_use: false,
                created: now,
                expires_at: None,
                idle_ttl_secs: None,
                idle_expires_at: None,
                last_used: None,
                revoked_at: None,
            })?;
            let detail = format!("token {id} scope {scope} chosen, {replaced} replaced");
            self.audit(
                tx,
                Action::TokenIssue,
                &account.qualified_login(),
                detail,
                now,
            )
        })
    }

    /// Whether `owner` holds a live token for `scope`.
    pub fn has_token(&self, owner: &str, scope: &str) -> Result<bool, AuthError> {
        let owner = LoginRef::parse(owner)?;
        let now = self.now();
        self.read(|tx| {
            let Some(account) = super::find_account(tx, owner)? else {
                return Ok(false);
            };
            Ok(tx
                .tokens(&account.account.id)?
                .iter()
                .any(|t| t.scope == scope && tokens::refusal(t, now).is_none()))
        })
    }

    /// Checks `mac` = HMAC-SHA256(key = hex(SHA-256(token)), `message`) against the
    /// live tokens of `owner` for `scope`. A miss counts against the peer, as a
    /// wrong token value does.
    pub fn verify_token_hmac(
        &self,
        owner: &str,
        scope: &str,
        message: &[u8],
        mac: &[u8],
        peer: &str,
    ) -> Result<(), AuthError> {
        let login = LoginRef::parse(owner)?;
        let now = self.now();
        let attempt = Attempt {
            action: Action::TokenCheck,
            presented: owner.to_owned(),
            counters: throttle::peer_subject(peer).into_iter().collect(),
            peer,
        };
        self.refuse_if_throttled(&attempt, now)?;
        let live: Vec<StoredToken> = self.read(|tx| {
            let Some(account) = super::find_account(tx, login)? else {
                return Ok(Vec::new());
            };
            Ok(tx
                .tokens(&account.account.id)?
                .into_iter()
                .filter(|t| t.scope == scope && tokens::refusal(t, now).is_none())
                .collect())
        })?;
        // Every candidate is compared, so the time taken does not say which matched.
        let matched = live.iter().fold(false, |found, token| {
            let key = hex::encode(&token.hash);
            constant_time_eq(&hmac_sha256(key.as_bytes(), message), mac) | found
        });
        if matched {
            return Ok(());
        }
        let detail = format!("hmac for scope {scope}");
        Err(self.fail(&attempt, Outcome::InvalidCredentials, detail, now))
    }

    /// Audits a refused change of a credential (`subject`, why) from `peer`.
    pub fn audit_refused_change(
        &self,
        subject: &str,
        reason: &str,
        peer: &str,
    ) -> Result<(), AuthError> {
        let now = self.now();
        let attempt = Attempt {
            action: Action::TokenUpdate,
            presented: subject.to_owned(),
            counters: Vec::new(),
            peer,
        };
        self.write(|tx: &dyn Tx| {
            self.audit_attempt(
                tx,
                &attempt,
                Outcome::InvalidCredentials,
                reason.to_owned(),
                now,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::{AuthSettings, ManualClock, NewAccount};
    use super::*;
    use crate::db::Database;

    fn auth() -> Auth {
        let db = Database::open_in_memory_for_tests().unwrap();
        let auth = Auth::new(
            db,
            AuthSettings::fast_hashing_for_tests(),
            Arc::new(ManualClock::new(1_000)),
        )
        .unwrap();
        auth.create_account(NewAccount {
            login: "site-admin".into(),
            email: "site-admin@localhost".into(),
            password: None,
            first_name: None,
            last_name: None,
            company: None,
            phone: None,
            realm: None,
            admin: true,
            parent: None,
        })
        .unwrap();
        auth
    }

    #[test]
    fn a_chosen_token_checks_by_value_and_by_hmac_and_replaces_the_last() {
        let auth = auth();
        assert!(!auth.has_token("site-admin", "appliance:api").unwrap());
        auth.set_chosen_token("site-admin", "appliance:api", "testtoken")
            .unwrap();
        assert!(auth.has_token("site-admin", "appliance:api").unwrap());
        auth.check_token("testtoken", "appliance:api", "p").unwrap();
        // The CLIENTS.md vector.
        let mac = hex::decode("39791be66bfbce4966b6c3feb7bfcb9118c285fa952b030a9af2fcf64f1a67ac")
            .unwrap();
        auth.verify_token_hmac(
            "site-admin",
            "appliance:api",
            b"GET/api/v1/admin/version",
            &mac,
            "p",
        )
        .unwrap();
        assert!(
            auth.verify_token_hmac(
                "site-admin",
                "appliance:api",
                b"GET/api/v1/admin/build",
                &mac,
                "p"
            )
            .is_err()
        );
        auth.set_chosen_token("site-admin", "appliance:api", "other")
            .unwrap();
        assert!(auth.check_token("testtoken", "appliance:api", "q").is_err());
        auth.check_token("other", "appliance:api", "q").unwrap();
        // Choosing a value again does not collide with its revoked predecessor.
        auth.set_chosen_token("site-admin", "appliance:api", "other")
            .unwrap();
        auth.check_token("other", "appliance:api", "q").unwrap();
        auth.audit_refused_change("site-admin", "newtoken invalid", "q")
            .unwrap();
        let trail = auth.list_audit(1).unwrap();
        assert_eq!(trail[0].action, "token.update");
    }
}
