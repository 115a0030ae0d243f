//! The `auth` interface. Cryptographic helpers are served; identity-store
//! calls answer `unsupported` until the identity store lands.

use crate::primitives::unsupported;
use crate::runtime::bindings::tessera::kernel::auth::{
    Account, AccountUpdate, AuthError, Host, IssuedToken, NewAccount, Realm, Signer, SshKey,
    TokenClaims, TokenRequest,
};
use crate::runtime::state::InstanceState;

fn not_yet<T>() -> Result<T, AuthError> {
    Err(AuthError::Unsupported(unsupported("auth")))
}

impl Host for InstanceState {
    fn get_account(&mut self, _login: String) -> Result<Option<Account>, AuthError> {
        not_yet()
    }
    fn get_account_by_id(&mut self, _id: String) -> Result<Option<Account>, AuthError> {
        not_yet()
    }
    fn list_accounts(
        &mut self,
        _realm: Option<String>,
        _parent: Option<String>,
    ) -> Result<Vec<Account>, AuthError> {
        not_yet()
    }
    fn create_account(&mut self, _account: NewAccount) -> Result<Account, AuthError> {
        not_yet()
    }
    fn update_account(
        &mut self,
        _login: String,
        _update: AccountUpdate,
    ) -> Result<Account, AuthError> {
        not_yet()
    }
    fn delete_account(&mut self, _login: String) -> Result<(), AuthError> {
        not_yet()
    }
    fn list_realms(&mut self) -> Result<Vec<Realm>, AuthError> {
        not_yet()
    }
    fn verify_password(
        &mut self,
        _login_or_email: String,
        _password: String,
        _realm: Option<String>,
        _peer: String,
    ) -> Result<Account, AuthError> {
        not_yet()
    }
    fn add_key(
        &mut self,
        _owner: String,
        _name: String,
        _openssh_key: String,
    ) -> Result<SshKey, AuthError> {
        not_yet()
    }
    fn list_keys(&mut self, _owner: String) -> Result<Vec<SshKey>, AuthError> {
        not_yet()
    }
    fn get_key(
        &mut self,
        _owner: String,
        _name_or_fingerprint: String,
    ) -> Result<Option<SshKey>, AuthError> {
        not_yet()
    }
    fn delete_key(
        &mut self,
        _owner: String,
        _name_or_fingerprint: String,
    ) -> Result<(), AuthError> {
        not_yet()
    }
    fn verify_signature(
        &mut self,
        _key_id: String,
        _algorithm: String,
        _signing_string: Vec<u8>,
        _signature: Vec<u8>,
        _peer: String,
    ) -> Result<Signer, AuthError> {
        not_yet()
    }
    fn issue_token(&mut self, _request: TokenRequest) -> Result<IssuedToken, AuthError> {
        not_yet()
    }
    fn check_token(
        &mut self,
        _value: String,
        _scope: String,
        _peer: String,
    ) -> Result<TokenClaims, AuthError> {
        not_yet()
    }
    fn revoke_token(&mut self, _id: String) -> Result<(), AuthError> {
        not_yet()
    }
    fn set_idle_ttl(&mut self, _scope: String, _seconds: u64) -> Result<(), AuthError> {
        not_yet()
    }
    fn hmac_sha256(&mut self, key: Vec<u8>, message: Vec<u8>) -> Vec<u8> {
        super::auth::hmac_sha256(&key, &message)
    }
    fn sha256(&mut self, data: Vec<u8>) -> Vec<u8> {
        super::auth::sha256(&data)
    }
    fn constant_time_eq(&mut self, a: Vec<u8>, b: Vec<u8>) -> bool {
        super::auth::constant_time_eq(&a, &b)
    }
    fn random_bytes(&mut self, len: u32) -> Vec<u8> {
        super::auth::random_bytes(len)
    }
}
