//! The `auth` interface: converts WIT values and calls [`Auth`]. Account
//! changes need the mount's `auth-admin` grant; nothing here returns a secret.

use super::{
    Account, AccountUpdate, Auth, AuthError, IssuedToken, NewAccount, Realm, Signer, SshKey,
    TokenClaims, TokenFormat, TokenRequest,
};
use crate::config::Grant;
use crate::runtime::bindings::tessera::kernel::auth as wit;
use crate::runtime::state::InstanceState;

type WitResult<T> = Result<T, wit::AuthError>;

impl InstanceState {
    /// The identity store, audited as this plugin and this request's peer.
    fn auth(&self) -> WitResult<Auth> {
        let auth =
            self.plugin.auth.as_ref().ok_or_else(|| {
                wit::AuthError::Unsupported(crate::primitives::unsupported("auth"))
            })?;
        Ok(auth.with_origin(&format!("plugin:{}", self.plugin.name), &self.peer))
    }

    /// The identity store for a change: only with the `auth-admin` grant.
    fn auth_admin(&self) -> WitResult<Auth> {
        if !self.plugin.grants.contains(&Grant::AuthAdmin) {
            return Err(wit::AuthError::Forbidden);
        }
        self.auth()
    }
}

impl wit::Host for InstanceState {
    fn get_account(&mut self, login: String) -> WitResult<Option<wit::Account>> {
        Ok(self.auth()?.get_account(&login)?.map(Into::into))
    }

    fn get_account_by_id(&mut self, id: String) -> WitResult<Option<wit::Account>> {
        Ok(self.auth()?.get_account_by_id(&id)?.map(Into::into))
    }

    fn list_accounts(
        &mut self,
        realm: Option<String>,
        parent: Option<String>,
    ) -> WitResult<Vec<wit::Account>> {
        let accounts = self
            .auth()?
            .list_accounts(realm.as_deref(), parent.as_deref())?;
        Ok(accounts.into_iter().map(Into::into).collect())
    }

    fn create_account(&mut self, account: wit::NewAccount) -> WitResult<wit::Account> {
        Ok(self.auth_admin()?.create_account(account.into())?.into())
    }

    fn update_account(
        &mut self,
        login: String,
        update: wit::AccountUpdate,
    ) -> WitResult<wit::Account> {
        Ok(self
            .auth_admin()?
            .update_account(&login, update.into())?
            .into())
    }

    fn delete_account(&mut self, login: String) -> WitResult<()> {
        Ok(self.auth_admin()?.delete_account(&login)?)
    }

    fn list_realms(&mut self) -> WitResult<Vec<wit::Realm>> {
        Ok(self
            .auth()?
            .list_realms()?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    async fn verify_password(
        &mut self,
        login_or_email: String,
        password: String,
        realm: Option<String>,
        peer: String,
    ) -> WitResult<wit::Account> {
        let auth = self.auth()?;
        let check =
            move || auth.verify_password(&login_or_email, &password, realm.as_deref(), &peer);
        match tokio::task::spawn_blocking(check).await {
            Ok(result) => Ok(result?.into()),
            Err(_) => Err(wit::AuthError::Backend(
                "password check was interrupted".into(),
            )),
        }
    }

    fn add_key(
        &mut self,
        owner: String,
        name: String,
        openssh_key: String,
    ) -> WitResult<wit::SshKey> {
        Ok(self.auth()?.add_key(&owner, &name, &openssh_key)?.into())
    }

    fn list_keys(&mut self, owner: String) -> WitResult<Vec<wit::SshKey>> {
        Ok(self
            .auth()?
            .list_keys(&owner)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    fn get_key(
        &mut self,
        owner: String,
        name_or_fingerprint: String,
    ) -> WitResult<Option<wit::SshKey>> {
        Ok(self
            .auth()?
            .get_key(&owner, &name_or_fingerprint)?
            .map(Into::into))
    }

    fn delete_key(&mut self, owner: String, name_or_fingerprint: String) -> WitResult<()> {
        Ok(self.auth()?.delete_key(&owner, &name_or_fingerprint)?)
    }

    fn verify_signature(
        &mut self,
        key_id: String,
        algorithm: String,
        signing_string: Vec<u8>,
        signature: Vec<u8>,
        peer: String,
    ) -> WitResult<wit::Signer> {
        let signer = self.auth()?.verify_signature(
            &key_id,
            &algorithm,
            &signing_string,
            &signature,
            &peer,
        )?;
        Ok(signer.into())
    }

    fn issue_token(&mut self, request: wit::TokenRequest) -> WitResult<wit::IssuedToken> {
        Ok(self.auth()?.issue_token(request.into())?.into())
    }

    fn check_token(
        &mut self,
        value: String,
        scope: String,
        peer: String,
    ) -> WitResult<wit::TokenClaims> {
        Ok(self.auth()?.check_token(&value, &scope, &peer)?.into())
    }

    fn revoke_token(&mut self, id: String) -> WitResult<()> {
        Ok(self.auth()?.revoke_token(&id)?)
    }

    fn set_idle_ttl(&mut self, scope: String, seconds: u64) -> WitResult<()> {
        Ok(self.auth_admin()?.set_idle_ttl(&scope, seconds)?)
    }

    fn hmac_sha256(&mut self, key: Vec<u8>, message: Vec<u8>) -> Vec<u8> {
        super::hmac_sha256(&key, &message)
    }

    fn sha256(&mut self, data: Vec<u8>) -> Vec<u8> {
        super::sha256(&data)
    }

    fn constant_time_eq(&mut self, a: Vec<u8>, b: Vec<u8>) -> bool {
        super::constant_time_eq(&a, &b)
    }

    fn random_bytes(&mut self, len: u32) -> Vec<u8> {
        super::random_bytes(len)
    }

    fn rename_account(&mut self, login: String, new_login: String) -> WitResult<wit::Account> {
        Ok(self
            .auth_admin()?
            .rename_account(&login, &new_login)?
            .into())
    }

    fn seal(&mut self, plaintext: Vec<u8>) -> wasmtime::Result<Vec<u8>> {
        let auth = self
            .auth()
            .map_err(|_| wasmtime::Error::msg("auth is not granted"))?;
        auth.seal(&self.plugin.name, &plaintext).map_err(|e| {
            tracing::error!(plugin = %self.plugin.name, error = %e, "seal failed");
            wasmtime::Error::msg(format!("seal failed: {e}"))
        })
    }

    fn unseal(&mut self, sealed: Vec<u8>) -> WitResult<Vec<u8>> {
        Ok(self.auth()?.unseal(&self.plugin.name, &sealed)?)
    }
}

impl From<AuthError> for wit::AuthError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::NotFound(what) => wit::AuthError::NotFound(what),
            AuthError::InvalidCredentials => wit::AuthError::InvalidCredentials,
            AuthError::Disabled => wit::AuthError::Disabled,
            AuthError::Throttled(secs) => wit::AuthError::Throttled(secs),
            AuthError::Forbidden => wit::AuthError::Forbidden,
            AuthError::Invalid(what) => wit::AuthError::Invalid(what),
            AuthError::Conflict(what) => wit::AuthError::Conflict(what),
            AuthError::Backend(detail) => {
                tracing::error!(error = %detail, "auth backend failure");
                wit::AuthError::Backend("the identity store failed; see the kernel log".into())
            }
        }
    }
}

impl From<Account> for wit::Account {
    fn from(a: Account) -> Self {
        wit::Account {
            id: a.id,
            login: a.login,
            email: a.email,
            first_name: a.first_name,
            last_name: a.last_name,
            company: a.company,
            phone: a.phone,
            realm: a.realm,
            admin: a.admin,
            disabled: a.disabled,
            parent: a.parent,
            created: a.created,
            updated: a.updated,
        }
    }
}

impl From<wit::NewAccount> for NewAccount {
    fn from(a: wit::NewAccount) -> Self {
        NewAccount {
            login: a.login,
            email: a.email,
            password: a.password,
            first_name: a.first_name,
            last_name: a.last_name,
            company: a.company,
            phone: a.phone,
            realm: a.realm,
            admin: a.admin,
            parent: a.parent,
        }
    }
}

impl From<wit::AccountUpdate> for AccountUpdate {
    fn from(u: wit::AccountUpdate) -> Self {
        AccountUpdate {
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            company: u.company,
            phone: u.phone,
            disabled: u.disabled,
            admin: u.admin,
            password: u.password,
        }
    }
}

impl From<Realm> for wit::Realm {
    fn from(r: Realm) -> Self {
        wit::Realm {
            name: r.name,
            description: r.description,
            is_default: r.is_default,
        }
    }
}

impl From<SshKey> for wit::SshKey {
    fn from(k: SshKey) -> Self {
        wit::SshKey {
            name: k.name,
            key: k.key,
            fingerprint_md5: k.fingerprint_md5,
            fingerprint_sha256: k.fingerprint_sha256,
            owner: k.owner,
            created: k.created,
        }
    }
}

impl From<Signer> for wit::Signer {
    fn from(s: Signer) -> Self {
        wit::Signer {
            account: s.account.into(),
            key: s.key.into(),
        }
    }
}

impl From<wit::TokenRequest> for TokenRequest {
    fn from(r: wit::TokenRequest) -> Self {
        TokenRequest {
            owner: r.owner,
            scope: r.scope,
            binding: r.binding,
            ttl_seconds: r.ttl_seconds,
            idle_ttl_seconds: r.idle_ttl_seconds,
            description: r.description,
            format: match r.format {
                wit::TokenFormat::Opaque => TokenFormat::Opaque,
                wit::TokenFormat::IdUuid => TokenFormat::IdUuid,
                wit::TokenFormat::Alnum32 => TokenFormat::Alnum32,
            },
            one_use: r.one_use,
        }
    }
}

impl From<IssuedToken> for wit::IssuedToken {
    fn from(t: IssuedToken) -> Self {
        wit::IssuedToken {
            id: t.id,
            value: t.value,
            expires_at: t.expires_at,
        }
    }
}

impl From<TokenClaims> for wit::TokenClaims {
    fn from(c: TokenClaims) -> Self {
        wit::TokenClaims {
            id: c.id,
            owner: c.owner.into(),
            scope: c.scope,
            binding: c.binding,
            expires_at: c.expires_at,
            description: c.description,
        }
    }
}
